"""The storefront and API docs as the gateway serves them: headers, fingerprints, gzip, caching."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import httpx
import pytest

from microshop.gateway.assets import AssetBundle, AssetError
from microshop.gateway.storefront import PAGE_ROUTES, STOREFRONT

ASSET_URL = re.compile(r"/assets/[A-Za-z0-9_./-]+")
IMMUTABLE = "public, max-age=31536000, immutable"
PAGES = [
    route.replace("{sku}", "MUG-CLASSIC").replace("{order_id}", "abc") for route in PAGE_ROUTES
]


def csp_of(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    directives = [d.split() for d in policy.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def crawl(gateway: httpx.Client) -> dict[str, httpx.Response]:
    """Every asset the home page reaches, following references inside HTML, JS and CSS."""
    seen: dict[str, httpx.Response] = {}
    todo = ASSET_URL.findall(gateway.get("/").text)
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        response = gateway.get(url, headers={"accept-encoding": "identity"})
        seen[url] = response
        if response.headers["content-type"].startswith(("text/", "image/svg")):
            todo.extend(ASSET_URL.findall(response.text))
    return seen


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_the_storefront_with_its_security_headers(
    gateway: httpx.Client, path: str
) -> None:
    response = gateway.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/assets/app.' in response.text
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    csp = csp_of(response)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["require-trusted-types-for"] == ["'script'"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]


def test_the_pages_hold_no_inline_script_style_or_handler(gateway: httpx.Client) -> None:
    html = gateway.get("/").text

    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


def test_assets_are_named_by_their_content_and_cached_for_a_year(gateway: httpx.Client) -> None:
    assets = crawl(gateway)

    assert len(assets) > 10
    for url, response in assets.items():
        assert response.status_code == 200, url
        digest = re.search(r"\.([0-9a-f]{12})\.[a-z]+$", url)
        assert digest, url
        assert hashlib.sha256(response.content).hexdigest()[:12] == digest.group(1), url
        assert response.headers["cache-control"] == IMMUTABLE
        assert response.headers["x-content-type-options"] == "nosniff"
    types = {url.rsplit(".", 1)[1]: r.headers["content-type"] for url, r in assets.items()}
    assert types["js"] == "text/javascript; charset=utf-8"
    assert types["css"] == "text/css; charset=utf-8"
    assert types["svg"] == "image/svg+xml"


def test_every_source_file_is_reachable_from_the_home_page(gateway: httpx.Client) -> None:
    served = {re.sub(r"\.[0-9a-f]{12}(\.[a-z]+)$", r"\1", url) for url in crawl(gateway)}
    sources = {
        f"/assets/{p.relative_to(STOREFRONT).as_posix()}"
        for p in STOREFRONT.rglob("*")
        if p.is_file() and p.name != "index.html"
    }

    assert served == sources


def test_gzip_is_served_when_accepted_and_decodes_to_the_asset(gateway: httpx.Client) -> None:
    url = next(u for u in crawl(gateway) if u.endswith(".js") and "/app." in u)
    plain = gateway.get(url, headers={"accept-encoding": "identity"})
    raw = httpx.get(str(gateway.base_url.join(url)), headers={"accept-encoding": "gzip"})
    refused = gateway.get(url, headers={"accept-encoding": "gzip;q=0, identity"})

    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    assert raw.content == plain.content  # httpx decodes it
    assert int(raw.headers["content-length"]) < len(plain.content)
    assert raw.headers["etag"] != plain.headers["etag"]
    assert "content-encoding" not in plain.headers
    assert "content-encoding" not in refused.headers


def test_a_page_or_asset_the_client_has_is_not_sent_again(gateway: httpx.Client) -> None:
    first = gateway.get("/", headers={"accept-encoding": "identity"})
    again = gateway.get(
        "/", headers={"accept-encoding": "identity", "if-none-match": first.headers["etag"]}
    )

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_head_answers_the_headers_of_get(gateway: httpx.Client) -> None:
    get, head = gateway.get("/cart"), gateway.head("/cart")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-security-policy"] == get.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/assets/app.000000000000.js", "/assets/nothing", "/nowhere"])
def test_what_is_not_there_is_a_json_404(gateway: httpx.Client, path: str) -> None:
    response = gateway.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "detail" in response.json()


def test_the_api_stays_the_proxys(gateway: httpx.Client) -> None:
    response = gateway.get("/api/v1/products")

    assert response.json()["service"] == "orders"


def _sources(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in files}


def test_a_changed_image_renames_every_file_that_leads_to_it(tmp_path: Path) -> None:
    files = {
        "index.html": '<script type="module" src="./app.js"></script>',
        "app.js": 'import { picture } from "./pictures.js";',
        "pictures.js": 'export const picture = "./images/mug.svg";',
        "images/mug.svg": "<svg/>",
        "other.js": "export const x = 1;",
    }
    before = AssetBundle(_sources(tmp_path / "a", files), pages=("index.html",))
    after = AssetBundle(
        _sources(tmp_path / "b", files | {"images/mug.svg": "<svg><rect/></svg>"}),
        pages=("index.html",),
    )

    for name in ("images/mug.svg", "pictures.js", "app.js"):
        assert before.urls()[name] != after.urls()[name], name
    assert before.urls()["other.js"] == after.urls()["other.js"]
    assert before["index.html"].body != after["index.html"].body
    assert after.urls()["app.js"].encode() in after["index.html"].body
    assert after["pictures.js"].body.decode() == (
        f'export const picture = "{after.urls()["images/mug.svg"]}";'
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"app.js": 'import "./missing.js";'}, "app.js references ./missing.js"),
        (
            {"a.js": 'import "./b.js";', "b.js": 'import "./a.js";'},
            "reference cycle: a.js -> b.js -> a.js",
        ),
    ],
)
def test_broken_references_stop_the_gateway_at_start_up(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(AssetError, match=re.escape(message)):
        AssetBundle(_sources(tmp_path, files))


def test_vendored_files_are_served_as_they_are(tmp_path: Path) -> None:
    text = 'require("./not-ours.js")'
    bundle = AssetBundle(_sources(tmp_path, {"vendor/lib.js": text}), verbatim=("vendor/",))

    assert bundle["vendor/lib.js"].body == text.encode()
    assert gzip.decompress(bundle["vendor/lib.js"].gzipped or b"") == text.encode()


def test_the_api_docs_load_nothing_from_another_origin(gateway: httpx.Client) -> None:
    for path in ("/docs", "/redoc"):
        page = gateway.get(path)
        assert page.status_code == 200
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text), path
        urls = ASSET_URL.findall(page.text)
        assert urls, path
        for url in urls:
            asset = gateway.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["cache-control"] == IMMUTABLE
        csp = csp_of(page)
        assert csp["script-src"] == ["'self'"], path
        assert csp["frame-ancestors"] == ["'none'"], path


def test_redoc_gets_a_fresh_style_nonce_on_every_load(gateway: httpx.Client) -> None:
    first, second = gateway.get("/redoc"), gateway.get("/redoc")
    nonces = []
    for page in (first, second):
        (nonce,) = re.findall(r'nonce="([^"]+)"', page.text)
        assert f"'nonce-{nonce}'" in csp_of(page)["style-src-elem"]
        assert page.headers["cache-control"] == "no-store"
        nonces.append(nonce)

    assert nonces[0] != nonces[1]
    assert len(nonces[0]) >= 22
