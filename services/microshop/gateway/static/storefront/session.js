// Who is logged in. The access token lives in this tab only (memory, and sessionStorage so a
// reload keeps it); never in a cookie, never in localStorage; log out forgets it everywhere.

const KEY = "microshop.session";
const listeners = new Set();

function read() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (saved && typeof saved.token === "string" && saved.expiresAt > Date.now()) return saved;
  } catch {
    // A damaged entry is the same as none.
  }
  sessionStorage.removeItem(KEY);
  return null;
}

let current = read();

function changed() {
  for (const listener of listeners) listener(current);
}

export const session = {
  get token() {
    if (current && current.expiresAt <= Date.now()) this.forget();
    return current ? current.token : null;
  },
  get user() {
    return current ? current.user : null;
  },
  get signedIn() {
    return this.token !== null;
  },
  start(token, expiresInSeconds, user) {
    current = { token, expiresAt: Date.now() + expiresInSeconds * 1000, user };
    sessionStorage.setItem(KEY, JSON.stringify(current));
    changed();
  },
  forget() {
    current = null;
    sessionStorage.removeItem(KEY);
    changed();
  },
  onChange(listener) {
    listeners.add(listener);
  },
};
