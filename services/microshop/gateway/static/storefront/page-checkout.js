// Checkout: the cart priced by the catalog, a test payment method, and one order however
// often the button is pressed. The Idempotency-Key belongs to what is being bought: the same
// cart and method (a double click, a retry after an error, a reload) send the same key, so
// the shop makes one order; a changed cart gets a new key.

import { api } from "./api.js";
import { cart, pricedCart } from "./cart.js";
import { products } from "./catalog.js";
import { h, uniqueId } from "./dom.js";
import { formAlert, onSubmit } from "./forms.js";
import { money } from "./money.js";
import { navigate, sessionEnded } from "./navigation.js";
import { PAYMENT_METHODS } from "./payment-methods.js";
import { session } from "./session.js";
import { fill, page } from "./view.js";

const ATTEMPT = "microshop.checkout";

// A random UUID (v4). crypto.randomUUID exists only on HTTPS and localhost; a shop reached
// over plain HTTP inside a cluster still gets keys.
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return [
    hex.slice(0, 8),
    hex.slice(8, 12),
    hex.slice(12, 16),
    hex.slice(16, 20),
    hex.slice(20),
  ].join("-");
}

function keyFor(items, paymentMethod) {
  const what = JSON.stringify({
    user: session.user && session.user.id,
    items: [...items].sort((a, b) => a.sku.localeCompare(b.sku)),
    paymentMethod,
  });
  try {
    const saved = JSON.parse(sessionStorage.getItem(ATTEMPT) || "null");
    if (saved && saved.what === what) return saved.key;
  } catch {
    // A damaged entry is the same as none.
  }
  const key = newKey();
  sessionStorage.setItem(ATTEMPT, JSON.stringify({ what, key }));
  return key;
}

function paymentChoices() {
  const errorId = uniqueId("payment-error");
  const noteId = uniqueId("payment-note");
  return h(
    "fieldset",
    { class: "payment-methods", "aria-describedby": `${noteId} ${errorId}` },
    h("legend", { text: "Payment method" }),
    h("p", {
      class: "hint",
      id: noteId,
      text: "These are test payment methods: no real card is charged and no money moves.",
    }),
    PAYMENT_METHODS.map((method, index) => {
      const id = uniqueId("pm");
      const describedBy = `${id}-what`;
      return h(
        "div",
        { class: "choice" },
        h("input", {
          type: "radio",
          name: "payment_method",
          id,
          value: method.id,
          checked: index === 0,
          "aria-describedby": describedBy,
        }),
        h(
          "label",
          { for: id },
          h("span", { class: "choice-label", text: method.label }),
          h("span", {
            class: `outcome ${method.outcome.includes("fails") ? "fails" : "succeeds"}`,
            text: method.outcome,
          }),
        ),
        h(
          "p",
          { class: "hint", id: describedBy },
          method.description,
          " ",
          h("code", { text: method.id }),
        ),
      );
    }),
    h("p", { class: "field-error", id: errorId }),
  );
}

function summary(priced) {
  return h(
    "section",
    { class: "order-summary", "aria-labelledby": "summary-heading" },
    h("h2", { id: "summary-heading", text: "Your order" }),
    h(
      "ul",
      { class: "summary-lines" },
      priced.lines.map((line) =>
        h(
          "li",
          {},
          h("span", { text: `${line.quantity} × ${line.product.name}` }),
          h("span", { text: money(line.totalCents, line.product.currency) }),
        ),
      ),
    ),
    h(
      "p",
      { class: "total" },
      "Total ",
      h("strong", { text: money(priced.totalCents, priced.currency) }),
    ),
    h("p", {}, h("a", { href: "/cart" }, "Change the cart")),
  );
}

export async function render({ main, signal }) {
  const content = page(main, "Check out");
  await fill(content, signal, async () => {
    const priced = pricedCart(await products());
    if (!priced.lines.length) {
      return h("p", {}, "Your cart is empty. ", h("a", { href: "/" }, "Browse the catalog"));
    }
    const form = h(
      "form",
      { class: "checkout", novalidate: true },
      paymentChoices(),
      formAlert(),
      h(
        "button",
        { type: "submit", class: "primary" },
        `Place order · ${money(priced.totalCents, priced.currency)}`,
      ),
    );
    onSubmit(
      form,
      async (data) => {
        const items = cart.lines().map(({ sku, quantity }) => ({ sku, quantity }));
        const paymentMethod = data.get("payment_method");
        const order = await api("/orders", {
          method: "POST",
          json: { items, payment_method: paymentMethod },
          headers: { "Idempotency-Key": keyFor(items, paymentMethod) },
        });
        sessionStorage.removeItem(ATTEMPT);
        cart.clear();
        // No notice of its own: the order page's status line says it is placed and is
        // replaced by how it ended, so nothing on that page can go stale.
        await navigate(`/orders/${encodeURIComponent(order.id)}`);
      },
      {
        pending: "Placing your order…",
        onError: (error) => {
          if (error.sessionEnded) {
            sessionEnded();
            return true;
          }
          // The key was used for other contents (another tab changed the cart): the next
          // try is a new order.
          if (error.status === 409) sessionStorage.removeItem(ATTEMPT);
          return false;
        },
      },
    );
    return [summary(priced), form];
  });
  return "Checkout";
}
