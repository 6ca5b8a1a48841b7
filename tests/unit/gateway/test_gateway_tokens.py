"""The gateway remembers verified tokens, but never past their expiry nor for other bytes."""

from __future__ import annotations

import time

import pytest

from microshop.gateway.tokens import VerifiedTokens
from microshop.platform.auth import InvalidToken, KeyPair, Principal, TokenIssuer, TokenVerifier


def test_a_remembered_token_is_refused_once_it_expires(keys: KeyPair) -> None:
    token = TokenIssuer(keys.private_pem, ttl_seconds=1).issue(Principal("u-1", "a@x.com"))
    # No clock-skew leeway, so the verifier refuses what the memory no longer vouches for.
    tokens = VerifiedTokens(TokenVerifier(keys.public_pem, leeway_seconds=0))
    tokens.check(f"Bearer {token}".encode())

    time.sleep(1.05)

    with pytest.raises(InvalidToken):
        tokens.check(f"Bearer {token}".encode())


def test_a_token_with_another_signature_is_verified_afresh(keys: KeyPair) -> None:
    token = TokenIssuer(keys.private_pem, ttl_seconds=60).issue(Principal("u-1", "a@x.com"))
    tokens = VerifiedTokens(TokenVerifier(keys.public_pem))
    tokens.check(f"Bearer {token}".encode())
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    with pytest.raises(InvalidToken):
        tokens.check(f"Bearer {tampered}".encode())
