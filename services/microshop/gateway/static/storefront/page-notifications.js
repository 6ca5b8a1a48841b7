// Notifications: what the shop told the person (an order was paid), newest first; the unread
// ones marked "New" until the person marks them read, which clears them from the header count.

import { api } from "./api.js";
import { h, hidden, replace } from "./dom.js";
import { errorMessage } from "./forms.js";
import { dateTime } from "./money.js";
import { sessionEnded } from "./navigation.js";
import { unread } from "./unread.js";
import { fill, page } from "./view.js";

const PAGE_SIZE = 50;

function item(notification) {
  const isNew = notification.read_at === null;
  const state = h("span", { class: isNew ? "status status-new" : "", text: isNew ? "New" : "" });
  const problem = h("div", { class: "field-error", role: "alert" });
  const actions = h("p", { class: "hint" });
  const node = h(
    "li",
    { class: `notification${isNew ? " unread" : ""}` },
    h("p", {}, state, isNew ? " " : null, notification.message),
    actions,
    problem,
  );

  async function markRead(event) {
    const button = event.currentTarget;
    button.disabled = true;
    replace(problem);
    try {
      await api(`/notifications/${encodeURIComponent(notification.id)}/read`, { method: "POST" });
    } catch (error) {
      if (error.sessionEnded) return sessionEnded();
      button.disabled = false;
      replace(problem, errorMessage(error));
      return;
    }
    node.classList.remove("unread");
    replace(state);
    state.className = "";
    unread.markedRead();
    button.remove();
    // The button had the focus: keep it in this notification, not lost to the page's start.
    node.querySelector("a").focus();
  }

  replace(
    actions,
    dateTime(notification.created_at),
    " · ",
    h("a", { href: `/orders/${encodeURIComponent(notification.order_id)}` }, "See the order"),
    isNew
      ? [
          " ",
          h(
            "button",
            { type: "button", class: "secondary small", on: { click: markRead } },
            "Mark as read",
            hidden(`: ${notification.message}`),
          ),
        ]
      : null,
  );
  return node;
}

export async function render({ main, signal }) {
  const content = page(main, "Notifications");
  await fill(content, signal, async () => {
    const result = await api(`/notifications?limit=${PAGE_SIZE}`);
    if (!result.items.length)
      return h("p", { text: "Nothing yet: you will hear here when an order is paid." });
    return [
      result.total > result.items.length
        ? h("p", { class: "hint", text: `The newest ${result.items.length} of ${result.total}.` })
        : null,
      h("ul", { class: "notifications", "aria-label": "Notifications" }, result.items.map(item)),
    ];
  });
  return "Notifications";
}
