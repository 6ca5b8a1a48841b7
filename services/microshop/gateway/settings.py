"""The gateway's configuration: where each service lives and how long to wait for it."""

from __future__ import annotations

from pydantic import Field

from microshop.platform.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Read once from MICROSHOP_* variables at start-up and passed to `create_app`."""

    users_url: str = "http://127.0.0.1:8081"
    orders_url: str = "http://127.0.0.1:8082"
    payments_url: str = "http://127.0.0.1:8083"
    notifications_url: str = "http://127.0.0.1:8084"
    # Whole upstream exchange (connect, send, response headers and body).
    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    # An upstream that does not accept a connection this fast is treated as unavailable.
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # Size of the one shared upstream connection pool (all services together).
    max_connections: int = Field(default=512, ge=1)
    # Kept below uvicorn's default keep-alive (5 s) so the gateway never reuses a connection
    # the upstream is about to close.
    keepalive_seconds: float = Field(default=4.0, gt=0)
    # Request bodies are buffered (the API carries small JSON); larger ones are refused with 413.
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    # Per-upstream budget of GET /readyz; the checks run concurrently.
    readiness_timeout_seconds: float = Field(default=1.0, gt=0)

    def upstreams(self) -> dict[str, str]:
        """Service name -> base URL, in the order the routes are documented."""
        return {
            "users": self.users_url,
            "orders": self.orders_url,
            "payments": self.payments_url,
            "notifications": self.notifications_url,
        }
