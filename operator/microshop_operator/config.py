"""The operator process's configuration: environment variables read once, at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from microshop_operator.apply import Retry


class OperatorConfig(BaseSettings):
    """`MICROSHOP_OPERATOR_*` variables; the defaults suit one replica on a real cluster."""

    model_config = SettingsConfigDict(env_prefix="MICROSHOP_OPERATOR_")

    # Every Shop is fully re-applied this often even when no event arrives: a safety net for
    # what no watch sees (a deleted generated Secret). Drift of a watched child is re-applied
    # at once by its watch; a re-apply costs ~60 requests, so hourly is ~0.02 requests/s/Shop.
    reconcile_interval_seconds: float = Field(default=3600, gt=0)
    # Full reconciles at once (more Shops wait their turn): bounds memory when many start.
    max_concurrent_reconciles: int = Field(default=16, gt=0)
    # A child's watch event waits this long for the rest of its burst before it is acted on.
    child_debounce_seconds: float = Field(default=0.1, ge=0)
    # Watches end server-side after this long and kopf re-watches; without a bound a watch
    # whose connection silently died is never noticed.
    watch_server_timeout_seconds: int = Field(default=300, gt=0)
    # The client gives up on a watch a little after the server should have ended it.
    watch_client_timeout_seconds: float = Field(default=330, gt=0)
    connect_timeout_seconds: float = Field(default=10, gt=0)
    request_timeout_seconds: float = Field(default=30, gt=0)
    # One API request that failed in a way worth repeating (429, 503, 504, a broken connection,
    # renewed credentials after a 401) is sent again up to this many times in all, waiting
    # first, doubling, up to max (tenacity); what still fails goes to the handler's retries.
    api_retry_attempts: int = Field(default=4, ge=1, le=20)
    api_retry_first_seconds: float = Field(default=0.2, gt=0)
    api_retry_max_seconds: float = Field(default=5, gt=0)
    # Handler retries: "not ready yet" and API failures are retried with this backoff.
    retry_backoff_seconds: float = Field(default=5, gt=0)
    # With a name, replicas elect a leader through kopf's peering objects (the peering CRDs
    # must be installed); without one, this replica assumes it is alone.
    peering_name: str | None = None
    # A replica's peering record counts as alive this long after its last keep-alive (kopf
    # renews it 5-10 s before it ends): the longest a standby waits to take over from a
    # replica that died without saying so. A replica that stops cleanly withdraws at once.
    peering_lifetime_seconds: int = Field(default=60, gt=0)
    # The pod's name (the chart passes POD_NAME): Events then say which replica acted.
    pod_name: str | None = Field(default=None, validation_alias="POD_NAME")
    # With a port, Prometheus metrics (reconciles by outcome, their duration) are served there.
    metrics_port: int | None = Field(default=None, gt=0, lt=65536)

    @property
    def api_retry(self) -> Retry:
        return Retry(
            attempts=self.api_retry_attempts,
            first_seconds=self.api_retry_first_seconds,
            max_seconds=self.api_retry_max_seconds,
        )
