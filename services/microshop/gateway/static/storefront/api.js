// The one way the page talks to the shop: JSON over /api/v1, the bearer token when there is
// one, and every failure turned into an ApiError that says what a person can do about it.

import { session } from "./session.js";

export class ApiError extends Error {
  constructor({ status, message, fields = {}, retryAfter = null, requestId = null }) {
    super(message);
    this.status = status;
    this.fields = fields; // field name -> message, for a 422 about particular inputs
    this.retryAfter = retryAfter; // seconds, from Retry-After (429, 503)
    this.requestId = requestId;
  }

  // The token was refused: the person has to log in again.
  get sessionEnded() {
    return this.status === 401 && this.authenticated === true;
  }
}

// Retry-After is seconds or an HTTP date (RFC 9110 10.2.3).
function retryAfterSeconds(value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

// "Value error, unknown payment method" -> "Unknown payment method".
function sentence(text) {
  const plain = String(text)
    .replace(/^Value error, /, "")
    .trim();
  return plain.charAt(0).toUpperCase() + plain.slice(1);
}

// FastAPI's validation errors: a list of {loc: ["body", "email"], msg}; the field is the last
// name in loc ("items", 0, "quantity" -> "quantity"), a header is named as sent.
function fieldErrors(detail) {
  const fields = {};
  const general = [];
  for (const error of detail) {
    const loc = Array.isArray(error.loc) ? error.loc : [];
    const names = loc.slice(1).filter((part) => typeof part === "string");
    const name = names.length ? names[names.length - 1] : null;
    const message = sentence(error.msg || "Invalid value");
    if (name && !(name in fields)) fields[name] = message;
    else if (!name) general.push(message);
  }
  return { fields, general };
}

const GENERIC = {
  0: "The shop could not be reached. Check your connection and try again.",
  401: "Please log in to continue.",
  403: "You are not allowed to do that.",
  404: "That could not be found.",
  409: "That conflicts with something already saved.",
  413: "That request is too large.",
  422: "Some details need fixing.",
  429: "Too many attempts.",
  502: "The shop answered with something unexpected. Please try again.",
  503: "The shop is busy or briefly unavailable. Please try again.",
  504: "The shop took too long to answer. Please try again.",
};

function errorFrom(response, body, requestId) {
  const status = response.status;
  const detail = body && typeof body === "object" ? body.detail : null;
  let message = GENERIC[status] || (status >= 500 ? GENERIC[503] : "That did not work.");
  let fields = {};
  // A 422 lists its problems in `errors` (while the services move to that body, the list may
  // still come as `detail`).
  const problems =
    body && Array.isArray(body.errors) ? body.errors : Array.isArray(detail) ? detail : null;
  if (problems) {
    const parsed = fieldErrors(problems);
    fields = parsed.fields;
    if (parsed.general.length) message = parsed.general.join(" ");
  } else if (typeof detail === "string" && detail && status < 500 && status !== 429) {
    // A 429 is said the same way whatever the service's words: how long to wait (below).
    message = sentence(detail);
  }
  return new ApiError({
    status,
    message,
    fields,
    retryAfter: retryAfterSeconds(response.headers.get("Retry-After")),
    requestId: requestId || (body && body.request_id) || null,
  });
}

// `anonymous`: send no token even when logged in (logging in again must not end the session).
export async function api(
  path,
  { method = "GET", json, form, headers = {}, anonymous = false } = {},
) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (form !== undefined) {
    init.body = new URLSearchParams(form);
  }
  const token = anonymous ? null : session.token;
  if (token) init.headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError({ status: 0, message: GENERIC[0] });
  }
  let body = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) {
    body = await response.json().catch(() => null);
  }
  if (response.ok) return body;
  const error = errorFrom(response, body, response.headers.get("X-Request-ID"));
  error.authenticated = Boolean(token);
  if (error.sessionEnded) session.forget();
  throw error;
}

// Every list endpoint answers a page: {items, total, limit, offset}.
export function itemsOf(page) {
  return Array.isArray(page) ? page : page.items;
}
