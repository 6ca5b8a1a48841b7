"""The gateway's verifier remembers verified tokens by the header bytes as they arrived, but
never past their expiry nor for other bytes."""

from __future__ import annotations

import time

import pytest

from microshop.platform.auth import InvalidToken, KeyPair, Principal, TokenIssuer, TokenVerifier


def test_a_remembered_token_is_refused_once_it_expires(keys: KeyPair) -> None:
    token = TokenIssuer(keys.private_pem, ttl_seconds=1).issue(Principal("u-1", "a@x.com"))
    # No clock-skew leeway, so the verifier refuses what the memory no longer vouches for.
    tokens = TokenVerifier(keys.public_pem, leeway_seconds=0)
    tokens.verify_header(f"Bearer {token}".encode())

    time.sleep(1.05)

    with pytest.raises(InvalidToken):
        tokens.verify_header(f"Bearer {token}".encode())


def test_a_token_with_another_signature_is_verified_afresh(keys: KeyPair) -> None:
    token = TokenIssuer(keys.private_pem, ttl_seconds=60).issue(Principal("u-1", "a@x.com"))
    tokens = TokenVerifier(keys.public_pem)
    tokens.verify_header(f"Bearer {token}".encode())
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    with pytest.raises(InvalidToken):
        tokens.verify_header(f"Bearer {tampered}".encode())
