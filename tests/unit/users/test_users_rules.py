"""User rules to the letter: the limits and the texts a caller is given."""

from __future__ import annotations

from microshop.platform.auth import hash_password
from microshop.users import domain


def test_limits_and_reasons_are_the_documented_ones() -> None:
    assert (
        domain.EMAIL_MAX_LENGTH,
        domain.PASSWORD_MIN_LENGTH,
        domain.PASSWORD_MAX_LENGTH,
        domain.NAME_MAX_LENGTH,
    ) == (254, 8, 128, 100)
    assert domain.EMAIL_TAKEN == "a user with this email already exists"
    assert domain.BAD_CREDENTIALS == "incorrect email or password"
    assert domain.USER_GONE == "user not found"


# argon2id with time_cost=1, memory_cost=8 KiB: parameters far below today's.
WEAK_HASH = (
    "$argon2id$v=19$m=8,t=1,p=1$Oh88K40jYoWdn+3XyejvTg$ipV/DsTgkjrnJq+V6x6Sd+gFcmor8mOvKIvSTQanFdc"
)


def test_a_fresh_hash_needs_no_rehash_and_an_old_one_does() -> None:
    assert domain.needs_rehash(hash_password("a password")) is False
    assert domain.needs_rehash(WEAK_HASH) is True
