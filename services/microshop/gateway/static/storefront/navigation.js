// Moving between pages without reloading: the page paths (the same as the gateway's page
// routes in storefront.py), history, the polite notice line, and where to go to log in.

import { h, replace } from "./dom.js";

export const PAGES = [
  { name: "catalog", pattern: /^\/$/ },
  { name: "product", pattern: /^\/products\/([^/]+)$/, params: ["sku"] },
  { name: "cart", pattern: /^\/cart$/ },
  { name: "checkout", pattern: /^\/checkout$/, signedIn: true },
  { name: "orders", pattern: /^\/orders$/, signedIn: true },
  { name: "order", pattern: /^\/orders\/([^/]+)$/, params: ["orderId"], signedIn: true },
  { name: "notifications", pattern: /^\/notifications$/, signedIn: true },
  { name: "login", pattern: /^\/login$/ },
  { name: "signup", pattern: /^\/signup$/ },
];

export function match(path) {
  for (const page of PAGES) {
    const found = page.pattern.exec(path);
    if (found) {
      const params = {};
      (page.params || []).forEach((name, i) => {
        params[name] = decodeURIComponent(found[i + 1]);
      });
      return { page, params };
    }
  }
  return null;
}

// A path of this shop, safe to go to after logging in (never another origin).
export function safeNext(value) {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//")) return "/";
  return match(new URL(value, location.origin).pathname) ? value : "/";
}

let drawPage = async () => {};
export function onNavigate(draw) {
  drawPage = draw;
}

export function notify(text) {
  replace(document.getElementById("notice"), h("p", { text }));
}

export async function navigate(to, { replace: replacing = false, message } = {}) {
  if (replacing) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  await drawPage({ focus: true });
  if (message) notify(message);
}

export function loginPath(next, ended = false) {
  return `/login?next=${encodeURIComponent(next)}${ended ? "&ended=1" : ""}`;
}

// The token was refused (expired, or the keys changed): log in again, then come back here.
export function sessionEnded() {
  return navigate(loginPath(location.pathname + location.search, true), { replace: true });
}
