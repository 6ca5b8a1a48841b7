// One order, watched live: its status moves from PENDING to PAID or PAYMENT_FAILED on the
// page by itself (polling, quick at first, then slower), announced to screen readers. The one
// status line is the page's only word on the order's state: a final state replaces "waiting".

import { api, itemsOf } from "./api.js";
import { cart } from "./cart.js";
import { h, replace } from "./dom.js";
import { dateTime, money } from "./money.js";
import { navigate, sessionEnded } from "./navigation.js";
import { failureReason, PAYMENT_METHODS } from "./payment-methods.js";
import { FINAL, statusBadge, statusSentence } from "./status.js";
import { unread } from "./unread.js";
import { fill, page } from "./view.js";

function methodName(id) {
  const method = PAYMENT_METHODS.find((m) => m.id === id);
  return method ? method.label : id;
}

function lines(order) {
  return h(
    "table",
    { class: "lines" },
    h("caption", { class: "visually-hidden", text: "Items in this order" }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Item", "Quantity", "Price", "Total"].map((label) =>
          h("th", { scope: "col", text: label }),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      order.items.map((line) =>
        h(
          "tr",
          {},
          h("th", { scope: "row", text: line.name }),
          h("td", { text: String(line.quantity) }),
          h("td", { text: money(line.unit_price_cents, order.currency) }),
          h("td", { text: money(line.line_total_cents, order.currency) }),
        ),
      ),
    ),
    h(
      "tfoot",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "row", colspan: 3, text: "Total" }),
        h("td", { text: money(order.total_cents, order.currency) }),
      ),
    ),
  );
}

function payment(records) {
  if (!records.length) return null;
  const record = records[0];
  const outcome =
    record.status === "SUCCEEDED" ? "charged" : `declined (${failureReason(record.failure_code)})`;
  return h(
    "p",
    { class: "payment" },
    `Payment: ${money(record.amount_cents, record.currency)} ${outcome}.`,
  );
}

function retryFailed(order) {
  const putBack = () => {
    for (const line of order.items) cart.add(line.sku, line.quantity);
    navigate("/checkout", { message: "The items are back in your cart." });
  };
  return h(
    "button",
    { type: "button", class: "primary", on: { click: putBack } },
    "Try again with another payment method",
  );
}

export async function render({ main, params, signal }) {
  const content = page(main, `Order ${params.orderId.slice(0, 8)}`);
  const live = h("div", { class: "order-status", role: "status", "aria-live": "polite" });
  const badgeSlot = h("p", { class: "badge-slot" });
  const after = h("div", { class: "after" });

  function show(order) {
    replace(badgeSlot, statusBadge(order));
    live.dataset.status = order.status;
    replace(
      live,
      h("p", { class: order.status === "PENDING" ? "pending" : "", text: statusSentence(order) }),
    );
  }

  // A paid order's notification is written by the notifications service about when the
  // order turns PAID, a moment before or after: for an order paid in the last minute, ask for
  // the unread count again for a few seconds, until it goes up, so the header shows it.
  async function awaitNotification(order) {
    if (Date.now() - Date.parse(order.updated_at) > 60_000) return;
    const before = await unread.refresh();
    for (let attempt = 0; attempt < 10 && !signal.aborted; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (signal.aborted || (await unread.refresh()) > before) return;
    }
  }

  async function settle(order) {
    if (order.status === "PAYMENT_FAILED") replace(after, retryFailed(order));
    if (order.status === "PAID") awaitNotification(order);
    try {
      const records = itemsOf(await api(`/payments?order_id=${encodeURIComponent(order.id)}`));
      if (!signal.aborted) after.prepend(payment(records) || "");
    } catch {
      // The order's own status already says how it ended.
    }
  }

  // Ask again until the order settles: every 0.5 s for the first 10 s, then every 2 s.
  async function watch(order, started) {
    let failures = 0;
    while (!FINAL.has(order.status) && !signal.aborted) {
      const elapsed = Date.now() - started;
      await new Promise((resolve) => setTimeout(resolve, elapsed < 10_000 ? 500 : 2_000));
      if (signal.aborted) return;
      try {
        order = await api(`/orders/${encodeURIComponent(order.id)}`);
        failures = 0;
        show(order);
      } catch (error) {
        if (error.sessionEnded) return sessionEnded();
        failures += 1;
        replace(
          live,
          h("p", { text: `${error.message} Still watching this order (attempt ${failures})…` }),
        );
      }
    }
    if (!signal.aborted) settle(order);
  }

  let loaded = null;
  await fill(content, signal, async () => {
    loaded = await api(`/orders/${encodeURIComponent(params.orderId)}`);
    show(loaded);
    return [
      badgeSlot,
      live,
      h(
        "dl",
        { class: "facts" },
        h("dt", { text: "Placed" }),
        h("dd", { text: dateTime(loaded.created_at) }),
        h("dt", { text: "Payment method" }),
        h("dd", { text: methodName(loaded.payment_method) }),
        h("dt", { text: "Order number" }),
        h("dd", {}, h("code", { text: loaded.id })),
      ),
      lines(loaded),
      after,
      h("p", {}, h("a", { href: "/orders" }, "All your orders")),
    ];
  });
  if (loaded) watch(loaded, Date.now());
  return `Order ${params.orderId.slice(0, 8)}`;
}
