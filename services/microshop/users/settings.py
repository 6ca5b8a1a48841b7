"""Settings of the users service (environment, prefix MICROSHOP_)."""

from __future__ import annotations

from pydantic import Field, model_validator

from microshop.platform.settings import DatabaseSettings


class UsersSettings(DatabaseSettings):
    database_url: str = "sqlite:///./data/users.db"
    # PEM of the Ed25519 private key that signs access tokens; only this service holds it.
    jwt_private_key: str = ""
    access_token_ttl_seconds: int = Field(default=3600, gt=0)
    # argon2 runs on this many threads (19 MiB each; the operator's 256Mi limit holds 2 with room
    # to spare) with this many more waiting; beyond that a login or sign-up is a 503.
    password_hashing_workers: int = Field(default=2, ge=1)
    password_hashing_queue: int = Field(default=32, ge=0)
    # Failed logins: so many in a row are free, per account and per client address; each one
    # after that blocks the key (429 + Retry-After) for the base, doubling up to the maximum.
    # A failure older than the window is forgotten.
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_client: int = Field(default=20, ge=1)
    login_backoff_base_seconds: float = Field(default=1.0, gt=0)
    login_backoff_max_seconds: float = Field(default=900.0, gt=0)
    login_failure_window_seconds: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _private_key_required_in_production(self) -> UsersSettings:
        if self.environment == "production" and not self.jwt_private_key:
            raise ValueError("MICROSHOP_JWT_PRIVATE_KEY is required when environment=production")
        return self
