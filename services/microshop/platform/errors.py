"""Domain errors: plain Python, raised by domain and store code, mapped to HTTP in web.py only."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of the errors a caller can fix or should know about; `detail` is shown to them."""

    def __init__(self, detail: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # When set, the answer carries Retry-After: the caller may try again after this long.
        self.retry_after_seconds = retry_after_seconds


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class Invalid(DomainError):
    pass


class Unauthorized(DomainError):
    pass


class TooManyRequests(DomainError):
    """The caller is throttled (e.g. after failed logins) until `retry_after_seconds`."""


class Unavailable(DomainError):
    """A dependency (database, bus) does not answer yet; the caller may retry later."""


def error_body(
    detail: str,
    request_id: str | None,
    errors: list[dict[str, Any]] | None = None,
    **more: Any,
) -> dict[str, Any]:
    """The body of every error a caller gets, from any process (platform/schemas.py documents
    it): `detail` says what is wrong, `request_id` finds its log lines, and a 422 about
    particular inputs lists them in `errors`, one `{"loc", "msg", "type"}` each."""
    body: dict[str, Any] = {"detail": detail, "request_id": request_id, **more}
    if errors is not None:
        body["errors"] = errors
    return body


def summary(errors: list[dict[str, Any]]) -> str:
    """One line naming each field and its problem: `body.email: value is not a valid email`."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in errors]
    return "; ".join(parts)[:1000] or "invalid request"
