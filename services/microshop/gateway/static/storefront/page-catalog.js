// The home page: every product with its picture and price, and a button to add it.

import { cart } from "./cart.js";
import { mediaOf, products } from "./catalog.js";
import { h } from "./dom.js";
import { money } from "./money.js";
import { notify } from "./navigation.js";
import { fill, page, productImage } from "./view.js";

function card(product) {
  const media = mediaOf(product.sku);
  const path = `/products/${encodeURIComponent(product.sku)}`;
  const add = () => {
    cart.add(product.sku, 1);
    notify(`${product.name} added to your cart.`);
  };
  return h(
    "li",
    { class: "card" },
    productImage(media.image),
    h("h2", {}, h("a", { href: path, text: product.name })),
    h("p", { class: "price", text: money(product.price_cents, product.currency) }),
    h(
      "button",
      { type: "button", "aria-label": `Add to cart: ${product.name}`, on: { click: add } },
      "Add to cart",
    ),
  );
}

export async function render({ main, signal }) {
  const content = page(
    main,
    "The microshop store",
    h("p", { class: "lede", text: "Mugs, shirts and stickers for people who ship software." }),
  );
  await fill(content, signal, async () => {
    const all = await products();
    if (!all.length) return h("p", { text: "The catalog is empty right now." });
    return h("ul", { class: "product-grid", "aria-label": "Products" }, all.map(card));
  });
  return "Catalog";
}
