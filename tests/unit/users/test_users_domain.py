"""User rules as plain functions: email comparison and credential checks."""

from __future__ import annotations

import pytest

from microshop.platform.auth import hash_password
from microshop.users.domain import credentials_match, normalise_email


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob@example.com ", "bob@example.com"),
    ],
)
def test_emails_are_compared_in_one_form(given: str, stored: str) -> None:
    assert normalise_email(given) == stored


def test_credentials_match_only_the_right_password() -> None:
    stored = hash_password("correct horse")

    assert credentials_match(stored, "correct horse")
    assert not credentials_match(stored, "wrong horse")


def test_an_unknown_user_never_matches() -> None:
    assert not credentials_match(None, "not-a-password-anyone-has")
