// Create an account, then log straight in.

import { api } from "./api.js";
import { logIn } from "./account.js";
import { h } from "./dom.js";
import { field, formAlert, onSubmit } from "./forms.js";
import { navigate, safeNext } from "./navigation.js";
import { page } from "./view.js";

export async function render({ main, query, signal }) {
  const next = safeNext(query.get("next"));
  const content = page(main, "Create an account");
  const form = h(
    "form",
    { class: "account-form", novalidate: true },
    field({ label: "Name", name: "name", autocomplete: "name" }),
    field({ label: "Email", name: "email", type: "email", autocomplete: "email" }),
    field({
      label: "Password",
      name: "password",
      type: "password",
      autocomplete: "new-password",
      hint: "At least 8 characters.",
    }),
    formAlert(),
    h("button", { type: "submit", class: "primary" }, "Create account"),
  );
  onSubmit(
    form,
    async (data) => {
      const email = String(data.get("email")).trim();
      const password = String(data.get("password"));
      await api("/users", {
        method: "POST",
        json: { name: String(data.get("name")), email, password },
      });
      await logIn(email, password);
      await navigate(next, { replace: true, message: "Welcome! Your account is ready." });
    },
    {
      pending: "Creating your account…",
      signal,
      onError: (error) => {
        // The one conflict here: the email has an account already. Say so at the email.
        if (error.status === 409) error.fields = { email: `${error.message}. Log in instead?` };
        return false;
      },
    },
  );
  const login = `/login${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`;
  content.replaceChildren(form, h("p", {}, "Have an account? ", h("a", { href: login }, "Log in")));
  return "Sign up";
}
