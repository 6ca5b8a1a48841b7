// Notifications: what the shop told the person (an order was paid), newest first.

import { api, itemsOf } from "./api.js";
import { h } from "./dom.js";
import { dateTime } from "./money.js";
import { fill, page } from "./view.js";

function item(notification) {
  return h(
    "li",
    { class: "notification" },
    h("p", { text: notification.message }),
    h(
      "p",
      { class: "hint" },
      dateTime(notification.created_at),
      " · ",
      h("a", { href: `/orders/${encodeURIComponent(notification.order_id)}` }, "See the order"),
    ),
  );
}

export async function render({ main, signal }) {
  const content = page(main, "Notifications");
  await fill(content, signal, async () => {
    const notifications = itemsOf(await api("/notifications?limit=50"));
    if (!notifications.length)
      return h("p", { text: "Nothing yet: you will hear here when an order is paid." });
    return h(
      "ul",
      { class: "notifications", "aria-label": "Notifications" },
      notifications.map(item),
    );
  });
  return "Notifications";
}
