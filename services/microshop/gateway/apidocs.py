"""The public API's docs, /docs (Swagger UI) and /redoc, with every script served by the gateway."""

from __future__ import annotations

import secrets
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from microshop.gateway.assets import AssetBundle, asset_response
from microshop.gateway.storefront import STATIC, mount_assets, page_headers

# fastapi-offline ships Swagger UI's and ReDoc's standalone bundles (we use only those files):
# the docs work with no internet and send nothing to a CDN.
VENDOR = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_PAGE, REDOC_PAGE = "docs/swagger.html", "docs/redoc.html"
NONCE_MARK = b"__CSP_NONCE__"

# Swagger UI runs under the storefront's policy, less Trusted Types (it sets innerHTML).
SWAGGER_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# ReDoc (styled-components) writes <style> elements at run time: they carry the page's nonce,
# except two the bundle writes without one, allowed by hash (the empty one, and a fixed rule
# set). It sets style attributes, and runs its search in a worker made from a blob. Its sidebar
# shows Redocly's logo from their CDN; img-src keeps that from loading (ReDoc hides it then).
REDOC_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
)


def redoc_csp(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"style-src-elem 'self' 'nonce-{nonce}' {' '.join(REDOC_STYLE_HASHES)}",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data:",
            "worker-src blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def mount_api_docs(app: FastAPI) -> None:
    """Serve the docs pages; the app must be made with FastAPI's own docs off (they use a CDN)."""
    bundle = AssetBundle.from_directories(
        {"docs/": STATIC / "docs", "vendor/": VENDOR},
        pages=(SWAGGER_PAGE, REDOC_PAGE),
        verbatim=("vendor/",),
    )
    swagger, redoc = bundle[SWAGGER_PAGE], bundle[REDOC_PAGE]
    swagger_headers = page_headers(SWAGGER_CSP)
    router = APIRouter()

    @router.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    def read_swagger(request: Request) -> Response:
        return asset_response(request, swagger, swagger_headers, "no-cache")

    @router.api_route("/redoc", methods=["GET", "HEAD"], include_in_schema=False)
    def read_redoc(request: Request) -> Response:
        # A fresh nonce each time: this page is never cached or revalidated.
        nonce = secrets.token_urlsafe(18)
        body = redoc.body.replace(NONCE_MARK, nonce.encode())
        return Response(
            b"" if request.method == "HEAD" else body,
            media_type=redoc.media_type,
            headers={**page_headers(redoc_csp(nonce)), "Cache-Control": "no-store"},
        )

    app.include_router(router)
    mount_assets(app, bundle)
