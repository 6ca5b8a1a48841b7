"""Static assets under content-hashed names: references rewritten, gzip, immutable caching."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

ASSET_PREFIX = "/assets/"

# A reference to another asset, written in the source as a quoted path from the bundle's root:
# `import { x } from "./cart.js"`, `url("./images/mug.svg")`, `"./images/mug.svg"` in a table.
# Only these are rewritten, so every other string in a file stays exactly as written.
_REFERENCE = re.compile(r"""(["'])\./([A-Za-z0-9_][A-Za-z0-9_./-]*)\1""")
_TEXT_SUFFIXES = {".html", ".js", ".css", ".svg", ".json", ".map"}
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
}
# Worth compressing: text. PNGs and the like are compressed already.
_GZIP_SUFFIXES = {".js", ".css", ".html", ".svg", ".json"}
# The name holds the content's hash, so a cached copy can never be stale.
IMMUTABLE = "public, max-age=31536000, immutable"
# Opened directly (an SVG in its own tab), an asset may run nothing and load nothing.
ASSET_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class AssetError(Exception):
    """The asset sources are inconsistent (a missing reference, a cycle): found at start-up."""


@dataclass(frozen=True)
class Asset:
    """One file as served: its final bytes, the URL that names their hash, its media type."""

    name: str
    url: str
    body: bytes
    media_type: str
    etag: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", f'"{hashlib.sha256(self.body).hexdigest()[:32]}"')

    @property
    def etag_gzip(self) -> str:
        return f'{self.etag[:-1]}-gzip"'

    @cached_property
    def gzipped(self) -> bytes | None:
        """The gzip body, made on first use (the docs bundles are megabytes) and then kept."""
        if Path(self.name).suffix not in _GZIP_SUFFIXES:
            return None
        # mtime=0: the same bytes give the same compressed bytes, whenever they are made.
        return gzip.compress(self.body, compresslevel=9, mtime=0)


def _media_type(name: str) -> str:
    suffix = Path(name).suffix
    return _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def _fingerprinted(name: str, body: bytes) -> str:
    path = Path(name)
    digest = hashlib.sha256(body).hexdigest()[:12]
    return f"{ASSET_PREFIX}{path.with_name(f'{path.stem}.{digest}{path.suffix}').as_posix()}"


def accepts_gzip(request: Request) -> bool:
    """True when Accept-Encoding allows gzip (a `q=0` refuses it)."""
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in {"gzip", "*"}:
            continue
        quality = params.strip().lower()
        return not (quality.startswith("q=") and float(quality[2:] or 0) == 0)
    return False


def not_modified(request: Request, etag: str) -> bool:
    candidates = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    return etag in candidates or "*" in candidates


class AssetBundle:
    """Source files (logical name -> path) served under `/assets/` by content hash.

    Text sources may reference each other as `"./name"`; each reference is replaced by the
    referenced asset's hashed URL before the referencing file is hashed, so changing an image
    changes the URL of the module that names it, and of the page that imports that module.
    Pages (the HTML entry points) are rewritten the same way but keep their own names: they are
    served at routes of their own, revalidated on every load. Sources under a `verbatim` prefix
    (vendored bundles, whose strings are none of our business) are served as they are.
    """

    def __init__(
        self,
        sources: Mapping[str, Path],
        pages: tuple[str, ...] = (),
        verbatim: tuple[str, ...] = (),
    ) -> None:
        self._raw = {name: path.read_bytes() for name, path in sources.items()}
        self._pages = set(pages)
        self._verbatim = verbatim
        missing = self._pages - set(self._raw)
        if missing:
            raise AssetError(f"pages without a source: {sorted(missing)}")
        self._assets: dict[str, Asset] = {}
        for name in self._raw:
            self._resolve(name, ())
        self._by_url = {a.url: a for n, a in self._assets.items() if n not in self._pages}

    @classmethod
    def from_directories(
        cls,
        roots: Mapping[str, Path],
        pages: tuple[str, ...] = (),
        verbatim: tuple[str, ...] = (),
    ) -> AssetBundle:
        """Every file below each root, named `<prefix><path from the root>`."""
        sources: dict[str, Path] = {}
        for prefix, root in roots.items():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    sources[prefix + path.relative_to(root).as_posix()] = path
        return cls(sources, pages, verbatim)

    def _resolve(self, name: str, chain: tuple[str, ...]) -> Asset:
        if name in self._assets:
            return self._assets[name]
        if name in chain:
            raise AssetError(f"reference cycle: {' -> '.join((*chain, name))}")
        body = self._raw[name]
        if Path(name).suffix in _TEXT_SUFFIXES and not name.startswith(self._verbatim):
            text = body.decode("utf-8")

            def replace(match: re.Match[str]) -> str:
                target = match.group(2)
                if target not in self._raw:
                    raise AssetError(f"{name} references ./{target}, which is not an asset")
                return (
                    f"{match.group(1)}{self._resolve(target, (*chain, name)).url}{match.group(1)}"
                )

            body = _REFERENCE.sub(replace, text).encode("utf-8")
        url = f"/{name}" if name in self._pages else _fingerprinted(name, body)
        asset = Asset(name=name, url=url, body=body, media_type=_media_type(name))
        self._assets[name] = asset
        return asset

    def __getitem__(self, name: str) -> Asset:
        """The asset (or page) by its source name."""
        return self._assets[name]

    def by_url(self, path: str) -> Asset | None:
        return self._by_url.get(path)

    def urls(self) -> dict[str, str]:
        """Source name -> served URL, for every asset that is not a page."""
        return {n: a.url for n, a in self._assets.items() if n not in self._pages}


def asset_response(
    request: Request, asset: Asset, headers: Mapping[str, str], cache_control: str
) -> Response:
    """The asset's bytes (gzip when accepted), or 304 when the client's copy is current.

    Each encoding is its own representation, so each has its own entity tag (RFC 9110 8.8.3).
    """
    gzipped = asset.gzipped if accepts_gzip(request) else None
    body, etag = (asset.body, asset.etag) if gzipped is None else (gzipped, asset.etag_gzip)
    common = {**headers, "Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding"}
    if gzipped is not None:
        common["Content-Encoding"] = "gzip"
    if not_modified(request, etag):
        return Response(status_code=304, headers=common)
    response = Response(
        b"" if request.method == "HEAD" else body, media_type=asset.media_type, headers=common
    )
    response.headers["Content-Length"] = str(len(body))
    return response
