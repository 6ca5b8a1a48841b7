"""User rules: how emails are compared, what a password may be, how credentials are checked."""

from __future__ import annotations

from functools import cache

from microshop.platform.auth import hash_password, password_needs_rehash, verify_password

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 8
# argon2 takes any length, but an unbounded one lets a caller make every login expensive.
PASSWORD_MAX_LENGTH = 128
NAME_MAX_LENGTH = 100

EMAIL_TAKEN = "a user with this email already exists"
BAD_CREDENTIALS = "incorrect email or password"
USER_GONE = "user not found"


def normalise_email(email: str) -> str:
    """Emails are unique regardless of case: stored and looked up in this one form."""
    return email.strip().lower()


@cache
def _dummy_hash() -> str:
    return hash_password("not-a-password-anyone-has")


def credentials_match(password_hash: str | None, password: str) -> bool:
    """Check a password against the stored hash, or against a dummy one for an unknown user.

    Verifying either way keeps the answer's timing the same, so it does not tell whether the
    email is registered.
    """
    if password_hash is None:
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return password_needs_rehash(password_hash)
