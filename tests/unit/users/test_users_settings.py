"""The users service's settings and what it refuses to start without."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from microshop.platform.auth import KeyPair
from microshop.users.app import create_app
from microshop.users.settings import UsersSettings


def test_production_requires_the_private_key(keys: KeyPair) -> None:
    with pytest.raises(ValidationError, match="MICROSHOP_JWT_PRIVATE_KEY is required"):
        UsersSettings(environment="production", jwt_public_key=keys.public_pem)


def test_production_with_both_keys_is_accepted(keys: KeyPair) -> None:
    settings = UsersSettings(
        environment="production",
        jwt_public_key=keys.public_pem,
        jwt_private_key=keys.private_pem,
    )

    assert settings.access_token_ttl_seconds == 3600


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, keys: KeyPair) -> None:
    monkeypatch.setenv("MICROSHOP_JWT_PRIVATE_KEY", keys.private_pem)
    monkeypatch.setenv("MICROSHOP_ACCESS_TOKEN_TTL_SECONDS", "60")
    monkeypatch.setenv("MICROSHOP_DATABASE_URL", "sqlite:///elsewhere.db")

    settings = UsersSettings()

    assert settings.jwt_private_key == keys.private_pem
    assert settings.access_token_ttl_seconds == 60
    assert settings.database_url == "sqlite:///elsewhere.db"


def test_the_app_refuses_to_start_without_a_signing_key(keys: KeyPair) -> None:
    with pytest.raises(RuntimeError, match="MICROSHOP_JWT_PRIVATE_KEY is not set"):
        create_app(UsersSettings(jwt_public_key=keys.public_pem))
