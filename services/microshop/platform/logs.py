"""JSON logs, one event per line, with service, level, request id and trace ids; never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from opentelemetry import trace

from microshop.platform.context import request_id_var, service_var

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

REDACTED = "[redacted]"

_SECRET_NAMES = (
    r"password(?:_hash)?|passwd|pwd|secret|client_secret|(?:access_|refresh_|id_)?token|"
    r"authorization|api[_-]?key|private[_-]?key|cookie|set-cookie"
)

# Secrets by their shape, whatever put them in the line: a library's exception repr (aiohttp's
# carries the request headers), a database driver's message, a traceback's locals.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        "[redacted private key]",
    ),
    (re.compile(r"\$argon2(?:id|i|d)\$[^\s'\")}\]]*"), "[redacted password hash]"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), "[redacted token]"),
    (re.compile(r"\b([Bb]earer)\s+[\w.~+/=-]+"), r"\1 " + REDACTED),
    # Credentials in a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*):[^@\s/'\"]*@"), r"\1:" + REDACTED + "@"),
    # A secret by its name, dict or JSON style ('password': '…') or key=value (password=…).
    (
        re.compile(
            r"(?i)(['\"](?:" + _SECRET_NAMES + r")['\"]\s*:\s*)(?:'[^']*'|\"[^\"]*\"|[^\s,}\]]+)"
        ),
        r"\1'" + REDACTED + "'",
    ),
    (
        re.compile(r"(?i)(\b(?:" + _SECRET_NAMES + r")=)(?:'[^']*'|\"[^\"]*\"|[^\s&,;)}\]]+)"),
        r"\1" + REDACTED,
    ),
    # SQLAlchemy prints a failed statement's parameters after the SQL; engines hide them
    # (hide_parameters), and this catches an engine made without that.
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: " + REDACTED + "]"),
)


class Redactor:
    """Removes secrets from text: known values (the process's own keys and passwords) and
    anything shaped like one (tokens, password hashes, private keys, URL credentials)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Never show these values (too short ones would blank out ordinary words)."""
        values = set(self._values) | {s for s in secrets if len(s) >= 4}
        # Longest first, so a secret that contains another is removed whole.
        self._values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text


redact = Redactor()
"""The process's redactor: every formatter's; configure_logging and add_secrets give it values."""


def add_secrets(values: Iterable[object]) -> None:
    """Never log these configuration values' secrets (see secret_values)."""
    redact.add(secret_values(values))


def _safe_str(value: object) -> str:
    try:
        return value if isinstance(value, str) else str(value)
    except Exception as exc:  # a broken __str__ must not lose the line
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.service = service
        self.redact = redactor or redact

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _current_trace_ids()
        # Every line has the same keys (null when there is no request or span), so a log
        # pipeline can index them without guessing.
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": service_var.get() or self.service,
            "logger": record.name,
            "message": self.redact(_message(record)),
            "request_id": request_id_var.get(),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                event[key] = (
                    value
                    if value is None or isinstance(value, bool | int | float)
                    else self.redact(_safe_str(value))
                )
        if record.exc_info:
            event["exception"] = self.redact(_exception_text(self, record))
        if record.stack_info:
            event["stack"] = self.redact(record.stack_info)
        return json.dumps(event, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines (standalone and demo), with the same redaction as JSON lines."""

    def __init__(self, service: str, redactor: Redactor | None = None) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(message)s")
        self.redact = redactor or redact

    def format(self, record: logging.LogRecord) -> str:
        try:
            text = super().format(record)
        except Exception:  # a message whose arguments do not format
            text = f"{record.levelname} {_message(record)}"
        return self.redact(text)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        return f"{_safe_str(record.msg)} (arguments did not format)"


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    try:
        return formatter.formatException(record.exc_info)  # type: ignore[arg-type]
    except Exception:
        kind = record.exc_info[0] if record.exc_info else None
        return f"{getattr(kind, '__name__', kind)} (traceback could not be formatted)"


def _current_trace_ids() -> tuple[str | None, str | None]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def secret_values(values: Iterable[object]) -> list[str]:
    """What in configuration values is secret: each URL's password, each private key's lines."""
    secrets: list[str] = []
    for value in values:
        if not isinstance(value, str):
            continue
        match = re.match(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:([^@\s/]+)@", value, re.IGNORECASE)
        if match:
            secrets.append(match.group(1))
        if "PRIVATE KEY-----" in value:
            secrets.append(value.strip())
            secrets.extend(line.strip() for line in value.splitlines() if "-----" not in line)
    return secrets


def configure_logging(
    service: str, level: str = "INFO", fmt: str = "json", settings: Iterable[object] = ()
) -> None:
    """Send every log line of the process through one redacting formatter on stderr.

    `settings` are the process's configuration values: the secrets they hold (keys, passwords
    in URLs) never show in a line, even in a shape the patterns do not know. Exceptions that
    escape a thread or the main program are logged through the same formatter, not printed raw.
    """
    add_secrets(settings)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service, redact))
    else:
        handler.setFormatter(TextFormatter(service, redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    # uvicorn's access log repeats what our request middleware already records.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("pika").setLevel(logging.WARNING)


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    logging.getLogger("microshop").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("microshop").error(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
