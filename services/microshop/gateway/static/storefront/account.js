// Logging in: the OAuth2 password form, then who the token belongs to.

import { api } from "./api.js";
import { session } from "./session.js";

export async function logIn(email, password) {
  const token = await api("/auth/token", {
    method: "POST",
    form: { username: email, password },
    anonymous: true,
  });
  session.start(token.access_token, token.expires_in, null);
  try {
    const me = await api("/users/me");
    session.start(token.access_token, token.expires_in, {
      id: me.id,
      name: me.name,
      email: me.email,
    });
  } catch (error) {
    session.forget();
    throw error;
  }
}
