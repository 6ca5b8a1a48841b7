"""Settings of the users service (environment, prefix MICROSHOP_)."""

from __future__ import annotations

from pydantic import Field, model_validator

from microshop.platform.settings import DatabaseSettings


class UsersSettings(DatabaseSettings):
    database_url: str = "sqlite:///./data/users.db"
    # PEM of the Ed25519 private key that signs access tokens; only this service holds it.
    jwt_private_key: str = ""
    access_token_ttl_seconds: int = Field(default=3600, gt=0)

    @model_validator(mode="after")
    def _private_key_required_in_production(self) -> UsersSettings:
        if self.environment == "production" and not self.jwt_private_key:
            raise ValueError("MICROSHOP_JWT_PRIVATE_KEY is required when environment=production")
        return self
