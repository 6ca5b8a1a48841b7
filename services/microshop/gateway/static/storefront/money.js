// Prices travel as integer cents with their currency; only the page turns them into text.

const formats = new Map();

export function money(cents, currency) {
  if (!formats.has(currency)) {
    formats.set(currency, new Intl.NumberFormat("en", { style: "currency", currency }));
  }
  return formats.get(currency).format(cents / 100);
}

export function dateTime(iso) {
  return new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" }).format(
    new Date(iso),
  );
}
