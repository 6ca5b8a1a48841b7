// The storefront's entry: draws the page for the address, the header (cart count, unread
// notifications, who is logged in), and takes over same-shop links so pages change in place.

import { cart } from "./cart.js";
import { h, hidden, replace } from "./dom.js";
import { loginPath, match, navigate, onNavigate } from "./navigation.js";
import * as cartPage from "./page-cart.js";
import * as catalogPage from "./page-catalog.js";
import * as checkoutPage from "./page-checkout.js";
import * as loginPage from "./page-login.js";
import * as notificationsPage from "./page-notifications.js";
import * as orderPage from "./page-order.js";
import * as ordersPage from "./page-orders.js";
import * as productPage from "./page-product.js";
import * as signupPage from "./page-signup.js";
import { session } from "./session.js";
import { unread } from "./unread.js";

const VIEWS = {
  catalog: catalogPage,
  product: productPage,
  cart: cartPage,
  checkout: checkoutPage,
  orders: ordersPage,
  order: orderPage,
  notifications: notificationsPage,
  login: loginPage,
  signup: signupPage,
};

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const notice = document.getElementById("notice");
let current = null; // the drawn page's AbortController: stops its timers and late answers

function badge(count, label) {
  return count > 0 ? h("span", { class: "badge" }, String(count), hidden(` ${label}`)) : null;
}

function link(path, text, extra) {
  const here = location.pathname === path ? "page" : null;
  return h("li", {}, h("a", { href: path, "aria-current": here }, text, extra));
}

function drawNav() {
  const count = cart.count();
  const items = [
    link("/", "Catalog"),
    link("/cart", "Cart", badge(count, count === 1 ? "item" : "items")),
  ];
  if (session.signedIn) {
    items.push(link("/orders", "Orders"));
    items.push(link("/notifications", "Notifications", badge(unread.count, "unread")));
    items.push(
      h(
        "li",
        { class: "account" },
        h("span", { class: "who" }, hidden("Logged in as "), session.user ? session.user.name : ""),
        h("button", { type: "button", class: "link-button", on: { click: logOut } }, "Log out"),
      ),
    );
  } else {
    items.push(link("/login", "Log in"));
    items.push(link("/signup", "Sign up"));
  }
  replace(nav, items);
}

function logOut() {
  session.forget();
  // Whatever this tab kept for the person (a pending checkout's key) goes with the token.
  sessionStorage.clear();
  navigate("/", { message: "You are logged out." });
}

async function draw({ focus = false } = {}) {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const found = match(location.pathname);
  drawNav();
  notice.replaceChildren();
  unread.refresh();
  if (found && found.page.signedIn && !session.signedIn) {
    history.replaceState(null, "", loginPath(location.pathname + location.search));
    return draw({ focus });
  }
  let title = "Page not found";
  if (found) {
    title = await VIEWS[found.page.name].render({
      main,
      params: found.params,
      query: new URLSearchParams(location.search),
      signal: controller.signal,
    });
  } else {
    replace(
      main,
      h("h1", { tabindex: "-1", text: title }),
      h(
        "p",
        {},
        "There is nothing at this address. ",
        h("a", { href: "/" }, "Back to the catalog"),
      ),
    );
  }
  if (controller.signal.aborted) return;
  document.title = title ? `${title} · microshop` : "microshop";
  // After moving to another page, start from its heading (screen readers announce it).
  if (focus) (main.querySelector("h1") || main).focus();
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[href]");
  if (!anchor || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || !match(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => draw({ focus: true }));
cart.onChange(drawNav);
session.onChange(drawNav);
unread.onChange(drawNav);
onNavigate(draw);
draw();
