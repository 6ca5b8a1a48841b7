"""Everything outside /api/v1 is the gateway's FastAPI app, run on the gateway's own server:
static files as a browser fetches them (whole, HEAD, revalidated, by range) and its lifespan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.staticfiles import StaticFiles

from microshop.gateway.app import create_app
from microshop.platform.auth import TokenVerifier

from .conftest import Upstreams, gateway_settings
from .support import GatewayThread

ASSET = bytes(range(256)) * 1000  # 256 kB: streamed in chunks by StaticFiles


@pytest.fixture(scope="module")
def site(
    upstreams: Upstreams, verifier: TokenVerifier, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    folder: Path = tmp_path_factory.mktemp("static")
    (folder / "app.js").write_bytes(ASSET)
    app = create_app(gateway_settings(upstreams), verifier)
    app.mount("/static", StaticFiles(directory=folder), name="static")
    with GatewayThread(app) as thread, httpx.Client(base_url=thread.url) as client:
        yield client


def test_a_static_file_is_served_whole(site: httpx.Client) -> None:
    response = site.get("/static/app.js")

    assert response.status_code == 200
    assert response.content == ASSET
    assert response.headers["content-length"] == str(len(ASSET))
    assert response.headers["x-request-id"]


def test_head_gives_the_length_and_no_body(site: httpx.Client) -> None:
    response = site.head("/static/app.js")

    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(ASSET))
    assert response.content == b""
    assert site.get("/healthz").json() == {"status": "ok"}  # the connection is still usable


def test_a_revalidation_is_304_without_a_body(site: httpx.Client) -> None:
    etag = site.get("/static/app.js").headers["etag"]

    response = site.get("/static/app.js", headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""


def test_a_range_is_206_with_just_those_bytes(site: httpx.Client) -> None:
    response = site.get("/static/app.js", headers={"Range": "bytes=1000-1999"})

    assert response.status_code == 206
    assert response.content == ASSET[1000:2000]
    assert response.headers["content-range"] == f"bytes 1000-1999/{len(ASSET)}"
