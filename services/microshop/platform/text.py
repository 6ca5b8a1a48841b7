"""Text no database can hold (U+0000, lone surrogates, invalid UTF-8) refused at the edge, naming
the field, before any route or store sees it: PostgreSQL fails on it (a 500), SQLite stores it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from microshop.platform.context import request_id_var
from microshop.platform.errors import error_body, summary
from microshop.platform.server import replaying

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Location = tuple[str | int, ...]


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "text must not contain U+0000 (NUL)"
    return "text must not contain a lone surrogate (U+D800-U+DFFF)"


def _pairs(encoded: bytes, where: str) -> Iterator[tuple[Location, str]]:
    """(location, problem) of each name=value pair of a query string or form body."""
    for pair in encoded.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name_bytes = unquote_to_bytes(raw_name.replace(b"+", b" "))
        name = name_bytes.decode("utf-8", "replace")
        for part in (name_bytes, unquote_to_bytes(raw_value.replace(b"+", b" "))):
            try:
                problem = unstorable(part.decode("utf-8"))
            except UnicodeDecodeError:
                problem = "text must be valid UTF-8"
            if problem:
                yield (where, name), problem
                break


def _in_json(value: Any, location: Location) -> Iterator[tuple[Location, str]]:
    if isinstance(value, str):
        problem = unstorable(value)
        if problem:
            yield location, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable(key)
            if problem:
                yield (*location, key), problem
            yield from _in_json(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _in_json(item, (*location, index))


def _content_type(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value.split(b";", 1)[0].strip().lower())
    return b""


async def refuse_unstorable_path(request: Request) -> None:
    """App-wide dependency: 422 for unstorable text in a path parameter (only the route knows
    the parameters' names, so this runs once routing has found it, before any other
    dependency or the route itself). `async`: it only reads the path, and a sync dependency
    would cost every request a hop to the thread pool."""
    raw = unquote_to_bytes(request.scope.get("raw_path") or b"")
    try:
        raw.decode("utf-8")
        invalid_utf8 = False
    except UnicodeDecodeError:
        invalid_utf8 = True  # the server decoded it with U+FFFD in place of the bad bytes
    for name, value in request.path_params.items():
        if not isinstance(value, str):
            continue
        problem = unstorable(value)
        if problem is None and invalid_utf8 and "\ufffd" in value:
            problem = "text must be valid UTF-8"
        if problem is not None:
            raise RequestValidationError(
                [{"loc": ("path", name), "msg": problem, "type": "string_unstorable"}]
            )


class UnstorableText:
    """ASGI middleware: 422 for unstorable text in the query or a JSON or form body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = next(_pairs(scope["query_string"], "query"), None)
        body: bytes | None = None
        if found is None and scope["method"] in ("POST", "PUT", "PATCH"):
            body = await _read(receive)
            found = self._in_body(scope, body)
        if found is not None:
            await _refuse(scope, send, *found)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)

    def _in_body(self, scope: Scope, body: bytes) -> tuple[Location, str] | None:
        kind = _content_type(scope)
        if kind == b"application/x-www-form-urlencoded":
            return next(_pairs(body, "body"), None)
        if (kind == b"application/json" or kind.endswith(b"+json")) and b"\\u" in body:
            try:
                document = json.loads(body)
            except ValueError:
                return None  # not JSON: the route's own parsing says so
            return next(_in_json(document, ("body",)), None)
        return None


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse(scope: Scope, send: Send, location: Location, problem: str) -> None:
    errors = [{"loc": list(location), "msg": problem, "type": "string_unstorable"}]
    payload = json.dumps(error_body(summary(errors), request_id_var.get(), errors)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# The same rules for the OpenAPI document (JSON Schema patterns): text with no U+0000, and such
# text with one character that is not whitespace. Lone surrogates cannot travel in UTF-8 JSON.
STORABLE_PATTERN = r"^[^\x00]*$"
NOT_BLANK_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
# An id the services make (uuid4, lower-case hex).
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
