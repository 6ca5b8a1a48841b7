"""The gateway's configuration: where each service lives and how long to wait for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, create_model

from microshop.platform.settings import ServiceSettings
from microshop.registry import BACKENDS


def _url_field(service: str) -> str:
    return f"{service}_url"


# One `<service>_url` field (MICROSHOP_<SERVICE>_URL) per service of the registry, defaulting to
# where standalone mode puts it next to a gateway on 8080.
# (mypy sees only the base: the fields are read by name, through `upstreams()`.)
if TYPE_CHECKING:
    _UpstreamSettings = ServiceSettings
else:
    _UpstreamSettings = create_model(
        "_UpstreamSettings",
        __base__=ServiceSettings,
        **{
            _url_field(service.name): (str, f"http://127.0.0.1:{8080 + service.port_offset}")
            for service in BACKENDS
        },
    )


class GatewaySettings(_UpstreamSettings):
    """Read once from MICROSHOP_* variables at start-up and passed to `create_app`."""

    # Whole upstream exchange (connect, send, response headers and body).
    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    # An upstream that does not accept a connection this fast is treated as unavailable.
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # Size of the one shared upstream connection pool (all services together).
    max_connections: int = Field(default=512, ge=1)
    # Kept below uvicorn's default keep-alive (5 s) so the gateway never reuses a connection
    # the upstream is about to close.
    keepalive_seconds: float = Field(default=4.0, gt=0)
    # Per-upstream budget of GET /readyz; the checks run concurrently.
    readiness_timeout_seconds: float = Field(default=1.0, gt=0)
    # Proxies whose X-Forwarded-For/-Proto name the caller (uvicorn's variable, and meaning:
    # addresses, networks, "*"); empty trusts none, for a gateway exposed directly.
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        validation_alias=AliasChoices("MICROSHOP_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS"),
    )

    def upstreams(self) -> dict[str, str]:
        """Service name -> base URL, in the order the routes are documented."""
        return {service.name: getattr(self, _url_field(service.name)) for service in BACKENDS}


def upstream_settings(urls: dict[str, str]) -> dict[str, Any]:
    """Service name -> base URL as the keyword arguments of GatewaySettings."""
    return {_url_field(name): url for name, url in urls.items()}
