"""Log lines never carry a secret, whatever the message, the exception or the thread."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from sqlalchemy import Column, MetaData, String, Table, insert
from sqlalchemy.exc import IntegrityError
from yarl import URL

from microshop.platform import logs
from microshop.platform.auth import generate_key_pair, hash_password
from microshop.platform.db import make_engine
from microshop.platform.logs import JsonFormatter, Redactor, TextFormatter, secret_values

TOKEN = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTEiLCJleHAiOjE3MDAwMDAwMDB9"
    ".c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1ub2JvZHktbXVzdC1zZWU"
)
SIGNATURE = TOKEN.rsplit(".", 1)[1]
PASSWORD = "hunter2-correct-horse"
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"


def line_of(record: logging.LogRecord, formatter: logging.Formatter | None = None) -> str:
    return (formatter or JsonFormatter("users", Redactor())).format(record)


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("test", logging.WARNING, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {TOKEN}", SIGNATURE),
        ("authorization: bearer opaque-token-value-1234", "opaque-token-value-1234"),
        (f"token {TOKEN} refused", SIGNATURE),
        (f"stored {HASH} for the user", "aGFzaGhhc2hoYXNo"),
        ("postgresql+psycopg://shop:pg-pass-123@db:5432/users", "pg-pass-123"),
        ("amqp://guest:rabbit-pw@rabbitmq:5672/%2F", "rabbit-pw"),
        ("mongodb://orders:mongo-pw@orders-db:27017/orders", "mongo-pw"),
        (f"{{'email': 'a@example.com', 'password': '{PASSWORD}'}}", PASSWORD),
        (f'{{"password_hash": "{HASH}"}}', "c2FsdHNhbHRzYWx0"),
        (f"username=a%40example.com&password={PASSWORD}&scope=", PASSWORD),
        (f"{{'access_token': '{TOKEN}', 'token_type': 'bearer'}}", SIGNATURE),
        ("[parameters: ('id-1', 'a@example.com', 'Ada', 'secret-ish')]", "secret-ish"),
    ],
)
def test_a_secret_by_its_shape_is_redacted(text: str, secret: str) -> None:
    line = line_of(record("upstream said %s", text))

    assert secret not in line
    assert "[redacted" in line


def test_a_private_key_is_redacted_whole_or_cut_off() -> None:
    pem = generate_key_pair().private_pem
    body = "".join(pem.strip().splitlines()[1:-1])

    for text in (pem, pem[: len(pem) // 2]):
        assert body[:20] not in line_of(record("key: %s", text))


def test_ordinary_text_is_left_alone() -> None:
    text = (
        "invalid or missing access token: the token has expired; "
        "GET http://127.0.0.1:8081/healthz answered 503; payment_method=pm_card_visa"
    )

    assert json.loads(line_of(record("%s", text)))["message"] == text


def test_the_configured_secrets_are_redacted_whatever_their_shape() -> None:
    secrets = secret_values(
        [
            "postgresql+psycopg://shop:Plain%20Words@db/users",
            "amqp://shop:tr0ub4dor@rabbitmq/%2F",
            8080,
        ]
    )
    redactor = Redactor(secrets)

    line = line_of(record("the password was %s, then %s", "Plain%20Words", "tr0ub4dor"))
    assert "Plain%20Words" in line  # no shape gives it away...
    line = line_of(
        record("the password was %s, then %s", "Plain%20Words", "tr0ub4dor"),
        JsonFormatter("users", redactor),
    )
    assert "Plain%20Words" not in line and "tr0ub4dor" not in line  # ...but it is known


def test_an_aiohttp_error_does_not_leak_the_request_headers() -> None:
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {TOKEN}"}))
    info = aiohttp.RequestInfo(URL("http://users:8080/api/v1/users/me"), "GET", headers)
    error = aiohttp.ClientResponseError(info, (), status=400, message="Bad Request")
    assert SIGNATURE in repr(error)  # the hazard this layer exists for

    line = line_of(record("upstream users: bad gateway (%r)", error, exc=error))

    assert SIGNATURE not in line


def test_a_database_error_shows_neither_parameters_nor_hash(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/users.db")
    users = Table(
        "users", MetaData(), Column("email", String, unique=True), Column("password_hash", String)
    )
    users.metadata.create_all(engine)
    password_hash = hash_password(PASSWORD)
    row = {"email": "ada@example.com", "password_hash": password_hash}
    with engine.begin() as connection:
        connection.execute(insert(users), row)
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(insert(users), row)

    line = line_of(record("unhandled error", exc=caught.value), JsonFormatter("users"))
    event = json.loads(line)

    assert "UNIQUE constraint failed" in event["exception"]
    assert password_hash not in line and "$argon2" not in line
    assert "ada@example.com" not in line  # hide_parameters: the engine never prints them


def test_extra_fields_and_text_lines_are_redacted_too() -> None:
    log_record = record("saw a header")
    log_record.header = f"Bearer {TOKEN}"
    assert SIGNATURE not in line_of(log_record)
    text_line = TextFormatter("standalone", Redactor()).format(
        record("form: password=%s", "pw1234")
    )
    assert "pw1234" not in text_line


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """configure_logging on a captured stderr; the process's logging restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook, sys.stderr)
    captured = sys.stderr = io.StringIO()
    try:
        logs.configure_logging("users", "INFO", "json", ["amqp://u:configured-secret@h/"])
        yield captured
    finally:
        sys.stderr = saved[4]
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        sys.excepthook, threading.excepthook = saved[2], saved[3]
        logging.captureWarnings(False)


def test_an_exception_escaping_a_thread_is_logged_redacted(configured: io.StringIO) -> None:
    def work() -> None:
        raise RuntimeError(f"relay lost amqp://u:configured-secret@h/ with Bearer {TOKEN}")

    thread = threading.Thread(target=work, name="relay")
    thread.start()
    thread.join()

    out = configured.getvalue()
    event = json.loads(out.strip().splitlines()[-1])
    assert event["message"] == "uncaught exception in thread relay"
    assert "RuntimeError" in event["exception"]
    assert "configured-secret" not in out and SIGNATURE not in out


def test_a_configuration_error_names_the_problem_not_the_values() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MICROSHOP_")},
        "MICROSHOP_ENVIRONMENT": "production",
        "MICROSHOP_DATABASE_URL": "postgresql+psycopg://shop:startup-secret@db/users",
    }

    done = subprocess.run(
        [sys.executable, "-m", "microshop", "users"], env=env, capture_output=True, text=True
    )

    assert done.returncode == 2
    assert "MICROSHOP_JWT_PUBLIC_KEY is required" in done.stderr
    assert "startup-secret" not in done.stderr + done.stdout
