// Order history: newest first, ten at a time, each with its status and total.

import { api } from "./api.js";
import { h } from "./dom.js";
import { dateTime, money } from "./money.js";
import { statusBadge } from "./status.js";
import { fill, page } from "./view.js";

const PAGE_SIZE = 10;

function row(order) {
  const count = order.items.reduce((sum, line) => sum + line.quantity, 0);
  return h(
    "li",
    { class: "order-row" },
    h("a", { href: `/orders/${encodeURIComponent(order.id)}` }, `Order ${order.id.slice(0, 8)}`),
    h("span", { class: "when", text: dateTime(order.created_at) }),
    h("span", { class: "count", text: `${count} ${count === 1 ? "item" : "items"}` }),
    h("span", { class: "amount", text: money(order.total_cents, order.currency) }),
    statusBadge(order),
  );
}

export async function render({ main, query, signal }) {
  const content = page(main, "Your orders");
  const offset = Math.max(0, Number.parseInt(query.get("offset") || "0", 10) || 0);
  await fill(content, signal, async () => {
    const result = await api(`/orders?limit=${PAGE_SIZE}&offset=${offset}`);
    if (!result.items.length) {
      return h(
        "p",
        {},
        offset ? "No more orders. " : "You have no orders yet. ",
        h("a", { href: "/" }, "Browse the catalog"),
      );
    }
    const last = Math.min(offset + result.items.length, result.total);
    const pages = [];
    if (offset > 0)
      pages.push(
        h(
          "a",
          { href: `/orders?offset=${Math.max(0, offset - PAGE_SIZE)}`, rel: "prev" },
          "Newer orders",
        ),
      );
    if (last < result.total)
      pages.push(
        h("a", { href: `/orders?offset=${offset + PAGE_SIZE}`, rel: "next" }, "Older orders"),
      );
    return [
      h("p", { class: "hint", text: `Orders ${offset + 1}–${last} of ${result.total}` }),
      h("ul", { class: "order-list", "aria-label": "Orders" }, result.items.map(row)),
      pages.length ? h("nav", { class: "pages", "aria-label": "Order pages" }, pages) : null,
    ];
  });
  return "Orders";
}
