// The cart: each line priced from the catalog, quantities to change, lines to remove.

import { cart, MAX_QUANTITY, pricedCart } from "./cart.js";
import { mediaOf, products } from "./catalog.js";
import { h, hidden, replace, uniqueId } from "./dom.js";
import { money } from "./money.js";
import { notify } from "./navigation.js";
import { fill, page, productImage } from "./view.js";

function line(item, { changed, removed }) {
  const { product } = item;
  const id = uniqueId("quantity");
  const total = h("p", { class: "line-total", text: money(item.totalCents, product.currency) });
  const quantity = h("input", {
    id,
    type: "number",
    min: 1,
    max: MAX_QUANTITY,
    value: String(item.quantity),
    inputmode: "numeric",
    on: {
      change: (event) => {
        const wanted = Math.max(
          1,
          Math.min(Math.trunc(Number(event.target.value)) || 1, MAX_QUANTITY),
        );
        event.target.value = String(wanted);
        cart.set(product.sku, wanted);
        replace(total, money(product.price_cents * wanted, product.currency));
        changed();
      },
    },
  });
  const remove = () => {
    cart.remove(product.sku);
    notify(`${product.name} removed from your cart.`);
    removed();
  };
  return h(
    "li",
    { class: "cart-line" },
    productImage(mediaOf(product.sku).image, "", "product-image thumb"),
    h(
      "div",
      { class: "cart-line-name" },
      h("a", { href: `/products/${encodeURIComponent(product.sku)}`, text: product.name }),
      h("p", { class: "unit", text: `${money(product.price_cents, product.currency)} each` }),
    ),
    h(
      "div",
      { class: "cart-line-quantity" },
      h("label", { for: id }, "Quantity", hidden(` of ${product.name}`)),
      quantity,
    ),
    total,
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        "aria-label": `Remove ${product.name}`,
        on: { click: remove },
      },
      "Remove",
    ),
  );
}

export async function render({ main, signal }) {
  const content = page(main, "Your cart");
  const draw = () =>
    fill(content, signal, async () => {
      const catalog = await products();
      const priced = pricedCart(catalog);
      for (const sku of priced.gone) cart.remove(sku);
      const gone = priced.gone.length
        ? h("p", {
            class: "alert",
            role: "status",
            text: `No longer sold, so taken out of your cart: ${priced.gone.join(", ")}.`,
          })
        : null;
      if (!priced.lines.length) {
        return [
          gone,
          h("p", {}, "Your cart is empty. ", h("a", { href: "/" }, "Browse the catalog")),
        ];
      }
      const total = h("strong", { text: money(priced.totalCents, priced.currency) });
      const events = {
        changed: () => {
          const now = pricedCart(catalog);
          replace(total, money(now.totalCents, now.currency));
        },
        // The button that had focus is gone: continue from the page's heading.
        removed: () => draw().then(() => main.querySelector("h1").focus()),
      };
      return [
        gone,
        h(
          "ul",
          { class: "cart-lines", "aria-label": "Items in your cart" },
          priced.lines.map((item) => line(item, events)),
        ),
        h(
          "div",
          { class: "cart-summary" },
          h("p", { class: "total" }, "Total ", total),
          h("p", { class: "hint", text: "Prices are the catalog's current prices." }),
          h("a", { class: "button", href: "/checkout" }, "Check out"),
        ),
      ];
    });
  await draw();
  return "Cart";
}
