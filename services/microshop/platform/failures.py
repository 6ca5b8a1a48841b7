"""Which failures are the infrastructure's (a database or broker away, a timeout, a failover)
rather than the code's: those never use up a message's tries and answer 503, not 500.

A handler or route that fails because its database is unreachable has nothing wrong with it or
with its input; retrying it five times in 7.5 s and dead-lettering it turns an ordinary outage
into lost orders. Only a failure no outage explains (a bug, a poison message) is the handler's.
The reasons returned here are short and fixed: they go into `/readyz` and HTTP answers, which
must never show an address or an exception's text (those go to the log).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pika.exceptions
import psycopg
import pymongo.errors
import sqlalchemy.exc

from microshop.platform.errors import Unavailable

UNREACHABLE = "database unreachable"
READ_ONLY = "database read-only (failover)"
TIMEOUT = "database timeout"
NOT_YET = "database not reachable yet"
BROKER = "broker unreachable"

# SQLSTATE classes and codes that mean "the server is away or cannot take this now" (PostgreSQL
# appendix A, Error Codes): 08 connection exception, 53 insufficient resources, 57P01-57P03
# shutdown / cannot connect now (starting up, in recovery), 25006 read-only transaction (a
# standby promoted elsewhere), 57014 query cancelled (statement_timeout).
_SQLSTATE_CLASSES = {"08": UNREACHABLE, "53": UNREACHABLE}
_SQLSTATES = {
    "57P01": UNREACHABLE,
    "57P02": UNREACHABLE,
    "57P03": UNREACHABLE,
    "25006": READ_ONLY,
    "57014": TIMEOUT,
}


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def infrastructure_failure(error: BaseException) -> str | None:
    """The reason, if `error` (or what caused it) is the infrastructure failing; else None."""
    for cause in _chain(error):
        reason = _reason(cause)
        if reason is not None:
            return reason
    return None


def _reason(error: BaseException) -> str | None:
    if isinstance(error, Unavailable):
        return NOT_YET
    reason = _sql_reason(error)
    if reason is not None:
        return reason
    reason = _mongo_reason(error)
    if reason is not None:
        return reason
    reason = _amqp_reason(error)
    if reason is not None:
        return reason
    if isinstance(error, TimeoutError):
        return TIMEOUT
    if isinstance(error, ConnectionError):
        return UNREACHABLE
    return None


def _sql_reason(error: BaseException) -> str | None:
    if isinstance(error, sqlalchemy.exc.TimeoutError):  # the pool had no connection to give
        return TIMEOUT
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return UNREACHABLE
    if isinstance(error, sqlalchemy.exc.DisconnectionError):
        return UNREACHABLE
    if isinstance(error, sqlite3.OperationalError):
        # SQLite's other operational errors (no such table, …) are the code's.
        return TIMEOUT if "locked" in str(error) or "busy" in str(error) else None
    if not isinstance(error, psycopg.Error):
        return None
    state = error.sqlstate
    if state is None:
        # No SQLSTATE: the client never got an answer (refused, reset, closed, timed out).
        return UNREACHABLE if isinstance(error, psycopg.OperationalError) else None
    return _SQLSTATES.get(state) or _SQLSTATE_CLASSES.get(state[:2])


def _mongo_reason(error: BaseException) -> str | None:
    if not isinstance(error, pymongo.errors.PyMongoError):
        return None
    if isinstance(error, pymongo.errors.NotPrimaryError):
        return READ_ONLY
    if isinstance(error, pymongo.errors.ConnectionFailure):
        return TIMEOUT if error.timeout else UNREACHABLE
    if error.timeout:
        return TIMEOUT
    if error.has_error_label("RetryableWriteError") or error.has_error_label(
        "TransientTransactionError"
    ):
        return UNREACHABLE
    return None


def _amqp_reason(error: BaseException) -> str | None:
    return BROKER if isinstance(error, pika.exceptions.AMQPConnectionError) else None
