"""The settings base every service's pydantic-settings class extends (prefix MICROSHOP_)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from microshop.platform import retry


class ServiceSettings(BaseSettings):
    """Read once at start-up from the environment and passed down; never looked up elsewhere."""

    model_config = SettingsConfigDict(env_prefix="MICROSHOP_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "0.0.0.0"
    port: int = 8080
    # Prometheus metrics are served here, on a port of their own, never on the public one
    # (0: not served). In Kubernetes the container port named `metrics`.
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # PEM of the Ed25519 public key that verifies access tokens.
    jwt_public_key: str = ""
    # Clock skew tolerated between pods on a token's exp, nbf and iat.
    token_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    # HTTP limits, enforced by the server before the app sees a request (platform/server.py).
    max_url_bytes: int = Field(default=8192, ge=256)
    max_header_field_bytes: int = Field(default=8192, ge=256)
    max_header_bytes: int = Field(default=32_768, ge=1024)
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    max_json_depth: int = Field(default=32, ge=1)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # Relay and consumer tuning, shared by every service with a bus.
    outbox_poll_seconds: float = 0.5
    # Consumers per queue side by side: a handler that waits on its database (a journalled
    # write each) then does not hold up the queue behind it. Unset: 4 on RabbitMQ (each with
    # its own connection and prefetch), 16 on the in-process bus (a thread each), where
    # SQLite's group commit (platform/groupcommit.py) takes every waiting delivery's change
    # into one transaction: at 64 orders in flight the standalone saga settled ~214 orders/s
    # with 4, 242-300 with 8, 267-271 with 16, 248-321 with 32 (docs/benchmarks.md).
    consumers_per_queue: int | None = Field(default=None, ge=1, le=32)
    consumer_max_attempts: int = 5
    consumer_retry_base_seconds: float = 0.5
    # Backoff (first wait, doubling up to a cap) while the database is not reachable at
    # start-up, while the relay cannot publish, and between a consumer's reconnects.
    startup_retry_first_seconds: float = Field(default=retry.STARTUP.first_seconds, gt=0)
    startup_retry_max_seconds: float = Field(default=retry.STARTUP.max_seconds, gt=0)
    relay_retry_first_seconds: float = Field(default=retry.RELAY.first_seconds, gt=0)
    relay_retry_max_seconds: float = Field(default=retry.RELAY.max_seconds, gt=0)
    bus_reconnect_first_seconds: float = Field(default=retry.BUS_RECONNECT.first_seconds, gt=0)
    bus_reconnect_max_seconds: float = Field(default=retry.BUS_RECONNECT.max_seconds, gt=0)
    # Where spans go (OTLP/HTTP, e.g. http://collector:4318); tracing is off when empty. The
    # standard OpenTelemetry variable is honoured, as the operator sets it.
    otlp_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices("MICROSHOP_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    )

    @property
    def startup_backoff(self) -> retry.Backoff:
        return retry.Backoff(self.startup_retry_first_seconds, self.startup_retry_max_seconds)

    @property
    def relay_backoff(self) -> retry.Backoff:
        return retry.Backoff(self.relay_retry_first_seconds, self.relay_retry_max_seconds)

    @property
    def bus_reconnect_backoff(self) -> retry.Backoff:
        return retry.Backoff(self.bus_reconnect_first_seconds, self.bus_reconnect_max_seconds)

    @model_validator(mode="after")
    def _keys_required_in_production(self) -> ServiceSettings:
        if self.environment == "production" and not self.jwt_public_key:
            raise ValueError("MICROSHOP_JWT_PUBLIC_KEY is required when environment=production")
        return self


class DatabaseSettings(ServiceSettings):
    """A service with its own database and the bus."""

    database_url: str = "sqlite:///./data/service.db"
    bus_url: str = "memory://"

    def consumers(self) -> int:
        """Consumers of each of the bus's queues: `consumers_per_queue`, or the bus's default."""
        if self.consumers_per_queue is not None:
            return self.consumers_per_queue
        return 16 if self.bus_url.startswith("memory://") else 4
