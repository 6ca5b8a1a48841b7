"""The gateway's cache of verified bearer tokens: a signature is checked once per token."""

from __future__ import annotations

import time

import jwt

from microshop.platform.auth import TokenVerifier


class VerifiedTokens:
    """Bearer tokens this gateway has verified, remembered until they expire.

    A client sends the same token with every request for its lifetime; checking its Ed25519
    signature once instead of every time takes the check off the hot path. The key is the whole
    header value as it arrived (bytes: a hit decodes nothing), signature included, so only the
    exact bytes that verified are let through, and never past their `exp`.
    """

    def __init__(self, verifier: TokenVerifier, max_entries: int = 10_000) -> None:
        self._verifier = verifier
        self._max_entries = max_entries
        self._expiry: dict[bytes, float] = {}

    def check(self, authorization: bytes | None) -> None:
        """Return if the header value carries a valid token; raise InvalidToken otherwise."""
        if authorization is not None:
            expires = self._expiry.get(authorization)
            if expires is not None:
                if time.time() < expires:
                    return
                del self._expiry[authorization]
        text = authorization.decode("latin-1") if authorization is not None else None
        self._verifier.verify_header(text)
        assert authorization is not None and text is not None  # a missing header is refused
        token = text.partition(" ")[2].strip()
        expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        if len(self._expiry) >= self._max_entries:
            self._expiry.pop(next(iter(self._expiry)))  # the oldest entry
        self._expiry[authorization] = expires
