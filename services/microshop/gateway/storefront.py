"""The storefront: its pages at `/`, its fingerprinted assets, and the headers that guard them."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from microshop.gateway.assets import (
    ASSET_HEADERS,
    ASSET_PREFIX,
    IMMUTABLE,
    AssetBundle,
    asset_response,
)
from microshop.platform.errors import NotFound

STATIC = Path(__file__).parent / "static"
STOREFRONT = STATIC / "storefront"
INDEX = "index.html"

# The pages a person can land on (bookmarks, reloads, shared links); the browser-side router
# draws each one. Anything else stays the gateway's JSON 404.
PAGE_ROUTES = (
    "/",
    "/products/{sku}",
    "/cart",
    "/checkout",
    "/orders",
    "/orders/{order_id}",
    "/notifications",
    "/login",
    "/signup",
)

# Everything the pages load comes from this origin, no script or style is inline, and the
# DOM sinks that turn strings into markup are closed (Trusted Types with no policy allowed),
# so an injected string can never become script.
STOREFRONT_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)


def page_headers(csp: str) -> dict[str, str]:
    """Headers of every HTML page the gateway serves (the storefront's and the API docs')."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # For browsers that predate frame-ancestors.
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": ("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    }


def mount_assets(app: FastAPI, bundle: AssetBundle) -> None:
    """Serve `bundle` under /assets/ (several bundles share the route: the first that has it)."""
    bundles: list[AssetBundle] | None = getattr(app.state, "asset_bundles", None)
    if bundles is not None:
        bundles.append(bundle)
        return
    bundles = app.state.asset_bundles = [bundle]
    router = APIRouter()

    @router.api_route(
        ASSET_PREFIX + "{path:path}", methods=["GET", "HEAD"], include_in_schema=False
    )
    def read_asset(path: str, request: Request) -> Response:
        for candidate in bundles:
            asset = candidate.by_url(ASSET_PREFIX + path)
            if asset is not None:
                return asset_response(request, asset, ASSET_HEADERS, IMMUTABLE)
        raise NotFound(f"no asset {ASSET_PREFIX}{path}")

    app.include_router(router)


def mount_storefront(app: FastAPI) -> None:
    """The storefront's pages and assets on the gateway (the API stays under /api/v1)."""
    bundle = AssetBundle.from_directories({"": STOREFRONT}, pages=(INDEX,))
    index = bundle[INDEX]
    headers = page_headers(STOREFRONT_CSP)
    router = APIRouter()

    def read_page(request: Request) -> Response:
        # no-cache: revalidated on every load (a 304 when unchanged), so a new release's asset
        # names are seen at once while the assets themselves are cached for a year.
        return asset_response(request, index, headers, "no-cache")

    for route in PAGE_ROUTES:
        router.add_api_route(route, read_page, methods=["GET", "HEAD"], include_in_schema=False)
    app.include_router(router)
    mount_assets(app, bundle)
