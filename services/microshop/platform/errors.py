"""Domain errors: plain Python, raised by domain and store code, mapped to HTTP in web.py only."""

from __future__ import annotations


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
