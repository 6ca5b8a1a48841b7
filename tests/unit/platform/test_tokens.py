"""Access tokens: small clock skew is tolerated, and a refusal says which check failed."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from microshop.platform.auth import (
    AUDIENCE,
    ISSUER,
    InvalidToken,
    KeyPair,
    TokenVerifier,
    generate_key_pair,
)
from microshop.platform.runtime import token_verifier
from microshop.platform.settings import ServiceSettings


def sign(keys: KeyPair, **changes: Any) -> str:
    now = int(time.time())
    claims = {"sub": "u-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    key = serialization.load_pem_private_key(keys.private_pem.encode(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]


def refusal(verifier: TokenVerifier, token: str) -> str | None:
    try:
        verifier.verify(token)
    except InvalidToken as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    ("skew", "expected"),
    [
        ({"exp": -10}, None),
        ({"exp": -60}, "the token has expired (exp)"),
        ({"nbf": 10}, None),
        ({"nbf": 60}, "the token is not valid yet (nbf)"),
        ({"iat": 10}, None),
        ({"iat": 60}, "the token was issued in the future (iat): check the clocks"),
    ],
)
def test_skew_within_the_leeway_is_tolerated_on_each_time_claim(
    keys: KeyPair, skew: dict[str, int], expected: str | None
) -> None:
    [(claim, offset)] = skew.items()
    token = sign(keys, **{claim: int(time.time()) + offset})

    assert refusal(TokenVerifier(keys.public_pem, leeway_seconds=30), token) == expected


def test_without_leeway_a_token_just_expired_is_refused(keys: KeyPair) -> None:
    token = sign(keys, exp=int(time.time()) - 10)

    assert refusal(TokenVerifier(keys.public_pem, leeway_seconds=0), token) == (
        "the token has expired (exp)"
    )


def test_the_leeway_comes_from_the_environment(
    keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSHOP_TOKEN_LEEWAY_SECONDS", "90")
    verifier = token_verifier(ServiceSettings(jwt_public_key=keys.public_pem))

    assert refusal(verifier, sign(keys, exp=int(time.time()) - 60)) is None


@pytest.mark.parametrize(
    ("token_of", "expected"),
    [
        (lambda keys: sign(keys, sub=None), "the token lacks the 'sub' claim"),
        (lambda keys: sign(keys, iat=None), "the token lacks the 'iat' claim"),
        (
            lambda keys: sign(keys, aud="another-shop"),
            "the token was not issued for this shop (aud)",
        ),
        (
            lambda keys: sign(keys, iss="someone-else"),
            "the token was not issued by this shop (iss)",
        ),
        (lambda keys: sign(keys, iat="yesterday"), "the token's issue time is not a time (iat)"),
        (
            lambda keys: sign(generate_key_pair()),
            "the token's signature does not verify: it was not signed by this shop",
        ),
        (
            lambda keys: jwt.encode({"sub": "u-1"}, "a shared secret", algorithm="HS256"),
            "the token is not signed with EdDSA",
        ),
        (lambda keys: "not-a-jwt", "the token is malformed"),
    ],
)
def test_a_refusal_names_the_check_that_failed(keys: KeyPair, token_of: Any, expected: str) -> None:
    assert refusal(TokenVerifier(keys.public_pem), token_of(keys)) == expected


class CountingVerifier(TokenVerifier):
    """Counts the signature checks it makes."""

    checks = 0

    def _claims(self, token: str) -> dict[str, Any]:
        self.checks += 1
        return super()._claims(token)


def test_a_header_is_verified_once_and_then_remembered_until_its_exp(keys: KeyPair) -> None:
    verifier = CountingVerifier(keys.public_pem, leeway_seconds=0)
    expires = int(time.time()) + 2
    header = f"Bearer {sign(keys, sub='u-7', exp=expires)}"

    first = [verifier.verify_header(header) for _ in range(3)]
    assert [p.user_id for p in first] == ["u-7"] * 3
    assert verifier.checks == 1

    # At its exp it is checked again, and refused like any expired token.
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify_header(header)
    assert verifier.checks == 2


def test_only_the_exact_header_that_verified_is_remembered(keys: KeyPair) -> None:
    verifier = CountingVerifier(keys.public_pem)
    token = sign(keys)
    verifier.verify_header(f"Bearer {token}")
    head, payload, signature = token.split(".")
    tampered = f"Bearer {head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"

    with pytest.raises(InvalidToken):
        verifier.verify_header(tampered)
    with pytest.raises(InvalidToken):
        verifier.verify_header(f"Basic {token}")
    with pytest.raises(InvalidToken):
        verifier.verify_header(None)
    assert verifier.checks == 2  # the first token, then the tampered one


def test_the_oldest_remembered_header_makes_room_for_a_new_one(keys: KeyPair) -> None:
    verifier = CountingVerifier(keys.public_pem, remembered=2)
    headers = [f"Bearer {sign(keys, sub=f'u-{n}')}" for n in range(3)]
    for header in headers:
        verifier.verify_header(header)

    verifier.verify_header(headers[2])
    verifier.verify_header(headers[1])
    assert verifier.checks == 3
    verifier.verify_header(headers[0])  # forgotten: checked again
    assert verifier.checks == 4
