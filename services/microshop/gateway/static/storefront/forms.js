// Forms and error messages: each API error is shown where it belongs. A 422 about a field sits
// under that field; anything else sits in the form's alert, with a wait (429) or a way to try
// again (503) when that is what helps.

import { h, hidden, replace, uniqueId } from "./dom.js";

const RETRYABLE = new Set([0, 502, 503, 504]);

export function field({ label, name, type = "text", autocomplete, hint, value, required = true }) {
  const id = uniqueId(name);
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const input = h("input", {
    id,
    name,
    type,
    autocomplete,
    value,
    required,
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" "),
  });
  return h(
    "div",
    { class: "field" },
    h("label", { for: id, text: label }),
    hint ? h("p", { class: "hint", id: hintId, text: hint }) : null,
    input,
    h("p", { class: "field-error", id: errorId }),
  );
}

function errorSlot(form, name) {
  const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
  if (!control) return null;
  const group = control.closest("fieldset") || control;
  const errorId = (group.getAttribute("aria-describedby") || "")
    .split(" ")
    .find((id) => id.endsWith("-error"));
  const slot = errorId ? document.getElementById(errorId) : null;
  return slot ? { control, group, slot } : null;
}

export function clearErrors(form) {
  for (const invalid of form.querySelectorAll("[aria-invalid]")) {
    invalid.removeAttribute("aria-invalid");
  }
  for (const slot of form.querySelectorAll(".field-error")) slot.replaceChildren();
  const alert = form.querySelector(".form-alert");
  if (alert) alert.replaceChildren();
}

// The message box for an error, with what to do next.
export function errorMessage(error, { retry, retryLabel = "Try again" } = {}) {
  const parts = [h("p", { text: error.message })];
  if (error.status === 429 && error.retryAfter !== null) {
    const seconds = error.retryAfter === 1 ? "1 second" : `${error.retryAfter} seconds`;
    parts[0] = h("p", { text: `${error.message} Please wait ${seconds}, then try again.` });
  }
  if (RETRYABLE.has(error.status) && retry) {
    parts.push(
      h("button", { type: "button", class: "secondary", on: { click: retry } }, retryLabel),
    );
  }
  if (error.requestId) {
    parts.push(h("p", { class: "reference" }, "Reference: ", h("code", { text: error.requestId })));
  }
  return parts;
}

// An error while drawing a page: a panel in place of the content.
export function errorPanel(error, retry) {
  return h("div", { class: "alert", role: "alert" }, errorMessage(error, { retry }));
}

function holdButton(button, seconds, signal) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.disabled = true;
  let left = seconds;
  const tick = () => {
    if (left <= 0 || (signal && signal.aborted)) {
      clearInterval(timer);
      button.disabled = false;
      button.textContent = label;
      return;
    }
    replace(button, `Wait ${left} s`, hidden(` before trying "${label}" again`));
    left -= 1;
  };
  const timer = setInterval(tick, 1000);
  tick();
}

// Show an ApiError on a form. `fieldNames` maps the API's field names to the form's inputs;
// a message about something the form has no input for goes to the form's alert.
export function showError(form, error, { fieldNames = {}, signal } = {}) {
  clearErrors(form);
  let first = null;
  let marked = 0;
  const elsewhere = [];
  for (const [apiName, message] of Object.entries(error.fields || {})) {
    const found = errorSlot(form, fieldNames[apiName] || apiName);
    if (!found) {
      elsewhere.push(h("p", { text: message }));
      continue;
    }
    found.group.setAttribute("aria-invalid", "true");
    if (found.control !== found.group) found.control.setAttribute("aria-invalid", "true");
    replace(found.slot, message);
    first = first || found.control;
    marked += 1;
  }
  const alert = form.querySelector(".form-alert");
  const submit = form.querySelector('button[type="submit"]');
  if (first) {
    const which = marked === 1 ? "the marked field" : `the ${marked} marked fields`;
    replace(alert, h("p", { text: `Please correct ${which}.` }), elsewhere);
    first.focus();
  } else if (elsewhere.length) {
    replace(alert, elsewhere);
  } else {
    replace(alert, errorMessage(error, { retry: () => form.requestSubmit() }));
    if (error.status === 429 && submit) holdButton(submit, error.retryAfter ?? 5, signal);
  }
}

// Run `action` on submit: one submission at a time (a double click submits once), the button
// busy meanwhile, errors shown on the form.
export function onSubmit(form, action, options = {}) {
  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    const submit = form.querySelector('button[type="submit"]');
    const label = submit.dataset.label || submit.textContent;
    submit.dataset.label = label;
    submit.setAttribute("aria-busy", "true");
    submit.textContent = options.pending || "Sending…";
    clearErrors(form);
    try {
      await action(new FormData(form));
    } catch (error) {
      if (!(error && "status" in error)) throw error;
      if (!(options.onError && options.onError(error) === true)) showError(form, error, options);
    } finally {
      busy = false;
      submit.removeAttribute("aria-busy");
      if (!submit.disabled) submit.textContent = label;
    }
  });
}

export function formAlert() {
  return h("div", { class: "form-alert", role: "alert" });
}
