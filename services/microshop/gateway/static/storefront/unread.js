// How many of the person's notifications are unread: the count beside "Notifications" in the
// header. The page total of the unread filter is the count; nothing else is fetched for it.

import { api } from "./api.js";
import { session } from "./session.js";

const listeners = new Set();
let count = 0;
let asked = 0; // which refresh is the latest: an older answer never overwrites a newer one

function set(value) {
  if (value === count) return;
  count = value;
  for (const listener of listeners) listener(count);
}

export const unread = {
  get count() {
    return session.signedIn ? count : 0;
  },
  // Ask the shop again; the count stays as it was when it cannot answer (the page that needs
  // the notifications says why, this badge does not).
  async refresh() {
    if (!session.signedIn) return set(0);
    const mine = ++asked;
    try {
      const page = await api("/notifications?unread=true&limit=1");
      if (mine === asked && session.signedIn) set(page.total);
    } catch {
      // Kept as it was: see above.
    }
    return count;
  },
  // One was marked read here: no need to ask.
  markedRead() {
    asked += 1;
    set(Math.max(0, count - 1));
  },
  onChange(listener) {
    listeners.add(listener);
  },
};

session.onChange(() => {
  if (!session.signedIn) set(0);
});
