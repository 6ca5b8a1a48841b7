"""Per-request context carried through logs and outgoing calls (the request id)."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def accept_or_make_request_id(value: str | None) -> str:
    """Keep a caller's X-Request-ID when it is a sane token, otherwise make a new one."""
    if value and _SAFE_REQUEST_ID.match(value):
        return value
    # 128 random bits as 32 hex digits, like uuid4().hex without the UUID object (a fifth of
    # the cost, measured on the gateway's hot path).
    return os.urandom(16).hex()


# The service whose request or message is being handled: five services share one process in
# standalone mode, and their log lines must still say whose they are.
service_var: ContextVar[str | None] = ContextVar("service", default=None)
