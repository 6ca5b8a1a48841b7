// The cart: SKUs and quantities kept in this browser (localStorage), never prices. Prices and
// names come from the catalog each time the cart is shown, so the catalog stays the authority.

const KEY = "microshop.cart.v1";
export const MAX_QUANTITY = 100;
const listeners = new Set();

function valid(line) {
  return (
    line &&
    typeof line.sku === "string" &&
    line.sku.length > 0 &&
    Number.isInteger(line.quantity) &&
    line.quantity >= 1
  );
}

function read() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "[]");
    if (!Array.isArray(saved)) return [];
    return saved
      .filter(valid)
      .map((line) => ({ sku: line.sku, quantity: Math.min(line.quantity, MAX_QUANTITY) }));
  } catch {
    return [];
  }
}

function write(lines) {
  localStorage.setItem(KEY, JSON.stringify(lines));
  for (const listener of listeners) listener(lines);
}

// Another tab changed the cart: show the same cart here.
window.addEventListener("storage", (event) => {
  if (event.key === KEY) for (const listener of listeners) listener(read());
});

export const cart = {
  lines: read,
  count() {
    return read().reduce((sum, line) => sum + line.quantity, 0);
  },
  quantityOf(sku) {
    const line = read().find((l) => l.sku === sku);
    return line ? line.quantity : 0;
  },
  add(sku, quantity = 1) {
    const lines = read();
    const line = lines.find((l) => l.sku === sku);
    if (line) line.quantity = Math.min(line.quantity + quantity, MAX_QUANTITY);
    else lines.push({ sku, quantity: Math.min(quantity, MAX_QUANTITY) });
    write(lines);
  },
  set(sku, quantity) {
    const lines = read();
    const line = lines.find((l) => l.sku === sku);
    if (!line) return;
    line.quantity = Math.max(1, Math.min(quantity, MAX_QUANTITY));
    write(lines);
  },
  remove(sku) {
    write(read().filter((l) => l.sku !== sku));
  },
  clear() {
    write([]);
  },
  onChange(listener) {
    listeners.add(listener);
  },
};

// The cart's lines priced from the catalog; lines whose product is gone are left out and named.
export function pricedCart(products) {
  const bySku = new Map(products.map((p) => [p.sku, p]));
  const lines = [];
  const gone = [];
  for (const line of read()) {
    const product = bySku.get(line.sku);
    if (product) {
      lines.push({ ...line, product, totalCents: product.price_cents * line.quantity });
    } else gone.push(line.sku);
  }
  const currency = lines.length ? lines[0].product.currency : null;
  const totalCents = lines.reduce((sum, l) => sum + l.totalCents, 0);
  return { lines, gone, currency, totalCents };
}
