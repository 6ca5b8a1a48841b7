"""Access tokens (Ed25519-signed JWTs) and password hashes (argon2id)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"
ISSUER = "microshop-users"
AUDIENCE = "microshop"


class InvalidToken(Exception):
    """The bearer token is missing, malformed, badly signed or expired."""


@dataclass(frozen=True)
class Principal:
    """The caller a verified token names."""

    user_id: str
    email: str


class KeyPair(NamedTuple):
    """The Ed25519 key pair of a shop, as PEM: users signs with the private key."""

    private_pem: str
    public_pem: str


def generate_key_pair() -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem=private_pem, public_pem=public_pem)


def load_or_create_key_pair(directory: Path) -> KeyPair:
    """The standalone shop's signing keys, made once in its data directory and kept."""
    directory.mkdir(parents=True, exist_ok=True)
    private_file, public_file = directory / "jwt-private.pem", directory / "jwt-public.pem"
    if not private_file.exists():
        pair = generate_key_pair()
        private_file.write_text(pair.private_pem)
        private_file.chmod(0o600)
        public_file.write_text(pair.public_pem)
    return KeyPair(private_pem=private_file.read_text(), public_pem=public_file.read_text())


class TokenIssuer:
    """Signs access tokens; only the users service holds the private key."""

    def __init__(self, private_pem: str, ttl_seconds: int) -> None:
        self._key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        self.ttl_seconds = ttl_seconds

    def issue(self, principal: Principal) -> str:
        now = int(time.time())
        claims = {
            "sub": principal.user_id,
            "email": principal.email,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)  # type: ignore[arg-type]


class TokenVerifier:
    """Verifies access tokens with the public key; every service and the gateway hold one.

    `leeway_seconds` tolerates clock skew between the pod that issued a token and the one
    checking it, on `exp`, `nbf` and `iat` alike.

    A client sends the same token with every request for its lifetime, so `verify_header`
    checks a header's Ed25519 signature and claims once and then remembers whom it names, up to
    `remembered` headers, each until its `exp`: the check is taken off the hot path of every
    request after a token's first. The key is the whole header value, signature included, so
    only the exact bytes that verified are let through, and never past their `exp`.
    """

    def __init__(
        self, public_pem: str, leeway_seconds: float = 30.0, remembered: int = 10_000
    ) -> None:
        self._key = serialization.load_pem_public_key(public_pem.encode())
        self.leeway_seconds = leeway_seconds
        self._remembered = remembered
        # header value (str, or bytes as the gateway read it) -> (whom, exp)
        self._verified: dict[str | bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        return self._principal(self._claims(token))

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self.leeway_seconds,
                options={"require": ["sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(_refusal(exc)) from exc
        return claims

    @staticmethod
    def _principal(claims: dict[str, Any]) -> Principal:
        return Principal(user_id=str(claims["sub"]), email=str(claims.get("email", "")))

    def verify_header(self, authorization: str | bytes | None) -> Principal:
        """Verify an `Authorization: Bearer <token>` header value (once per header and `exp`).

        The value is remembered as it is given: the gateway passes the bytes as they arrived,
        so a header it has seen is found without decoding or hashing it as text."""
        if not authorization:
            raise InvalidToken("missing bearer token")
        known = self._verified.get(authorization)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            self._verified.pop(authorization, None)
        text = (
            authorization.decode("latin-1") if isinstance(authorization, bytes) else authorization
        )
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("expected 'Authorization: Bearer <token>'")
        claims = self._claims(token.strip())
        principal = self._principal(claims)
        with self._lock:
            if len(self._verified) >= self._remembered:
                self._verified.pop(next(iter(self._verified)))  # the oldest entry
            self._verified[authorization] = (principal, float(claims["exp"]))
        return principal


def _refusal(exc: jwt.PyJWTError) -> str:
    """Which check the token failed, in our words: PyJWT's own can echo decoding internals."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired (exp)"
    if isinstance(exc, jwt.ImmatureSignatureError):
        if "(iat)" in str(exc):
            return "the token was issued in the future (iat): check the clocks"
        return "the token is not valid yet (nbf)"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim!r} claim"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the token was not issued for this shop (aud)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the token was not issued by this shop (iss)"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "the token's issue time is not a time (iat)"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return f"the token is not signed with {ALGORITHM}"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify: it was not signed by this shop"
    return "the token is malformed"


# argon2id as OWASP's Password Storage Cheat Sheet recommends it: 19 MiB, 2 iterations, 1 lane.
# argon2-cffi's default (RFC 9106 "low memory", 64 MiB) made a burst of 16 logins take the users
# service past 1 GB; this cost is 19 MiB per hash in flight, and users bounds how many run at
# once (users/passwords.py). A stored hash with other parameters is rehashed at the next login.
ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM = 19_456, 2, 1
_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
