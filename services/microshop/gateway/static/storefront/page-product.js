// One product: picture, price, what it is, and a quantity to add to the cart.

import { cart, MAX_QUANTITY } from "./cart.js";
import { mediaOf, products } from "./catalog.js";
import { h, replace } from "./dom.js";
import { field } from "./forms.js";
import { money } from "./money.js";
import { notify } from "./navigation.js";
import { fill, page, productImage } from "./view.js";

export async function render({ main, params, signal }) {
  const content = page(main, "Product");
  const heading = main.querySelector("h1");
  let title = "Product";
  await fill(content, signal, async () => {
    const product = (await products()).find((p) => p.sku === params.sku);
    if (!product) {
      title = heading.textContent = "Product not found";
      return h(
        "p",
        {},
        `There is no product ${params.sku}. `,
        h("a", { href: "/" }, "See the catalog"),
      );
    }
    title = heading.textContent = product.name;
    const media = mediaOf(product.sku);
    const quantity = field({
      label: "Quantity",
      name: "quantity",
      type: "number",
      value: "1",
      autocomplete: "off",
    });
    const input = quantity.querySelector("input");
    Object.assign(input, { min: 1, max: MAX_QUANTITY, inputMode: "numeric" });
    const form = h(
      "form",
      {
        class: "add-form",
        novalidate: true,
        on: {
          submit: (event) => {
            event.preventDefault();
            const wanted = Number(input.value);
            const error = quantity.querySelector(".field-error");
            if (!Number.isInteger(wanted) || wanted < 1 || wanted > MAX_QUANTITY) {
              input.setAttribute("aria-invalid", "true");
              replace(error, `Enter a whole number from 1 to ${MAX_QUANTITY}.`);
              input.focus();
              return;
            }
            input.removeAttribute("aria-invalid");
            error.replaceChildren();
            cart.add(product.sku, wanted);
            notify(`${wanted} × ${product.name} added to your cart.`);
          },
        },
      },
      quantity,
      h("button", { type: "submit" }, "Add to cart"),
    );
    return h(
      "article",
      { class: "product" },
      productImage(media.image, "", "product-image large"),
      h(
        "div",
        { class: "product-info" },
        h("p", { class: "price", text: money(product.price_cents, product.currency) }),
        media.blurb ? h("p", { text: media.blurb }) : null,
        h("p", { class: "sku" }, "Item number ", h("code", { text: product.sku })),
        form,
        h(
          "p",
          {},
          h("a", { href: "/" }, "Back to the catalog"),
          " · ",
          h("a", { href: "/cart" }, "View your cart"),
        ),
      ),
    );
  });
  return title;
}
