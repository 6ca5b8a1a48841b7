// Log in, then go back to where the person was going (checkout, an order, ...).

import { logIn } from "./account.js";
import { h } from "./dom.js";
import { field, formAlert, onSubmit } from "./forms.js";
import { navigate, safeNext } from "./navigation.js";
import { page } from "./view.js";

export async function render({ main, query, signal }) {
  const next = safeNext(query.get("next"));
  const ended = query.get("ended") === "1";
  const intro = ended
    ? h("p", {
        class: "alert",
        role: "alert",
        text: "Your session has ended. Please log in again to continue.",
      })
    : next !== "/"
      ? h("p", { class: "lede", text: "Please log in to continue." })
      : null;
  const content = page(main, "Log in", intro);
  const form = h(
    "form",
    { class: "account-form", novalidate: true },
    field({ label: "Email", name: "email", type: "email", autocomplete: "email" }),
    field({
      label: "Password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
    }),
    formAlert(),
    h("button", { type: "submit", class: "primary" }, "Log in"),
  );
  onSubmit(
    form,
    async (data) => {
      await logIn(String(data.get("email")).trim(), String(data.get("password")));
      await navigate(next, { replace: true, message: "You are logged in." });
    },
    { pending: "Logging in…", fieldNames: { username: "email" }, signal },
  );
  const signup = `/signup${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`;
  content.replaceChildren(
    form,
    h("p", {}, "New here? ", h("a", { href: signup }, "Create an account")),
  );
  return "Log in";
}
