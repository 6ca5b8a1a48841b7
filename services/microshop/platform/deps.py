"""What routes are given through FastAPI dependencies: the verified caller and the service's store.

As in the full-stack FastAPI template's `api/deps.py`: a route names what it needs in its
signature (`principal: CurrentPrincipal`, `store: Store`) and never reads `app.state` itself.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from microshop.platform.auth import InvalidToken, Principal, TokenVerifier
from microshop.platform.errors import Unauthorized

S = TypeVar("S")


async def current_principal(request: Request) -> Principal:
    """The verified caller; every service checks the token itself and trusts no identity header.

    `async` although it does no I/O: a sync dependency costs a hop to the thread pool and back
    per request, more than the check itself once the verifier remembers the header."""
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify_header(request.headers.get("authorization"))
    except InvalidToken as exc:
        raise Unauthorized(f"invalid or missing access token: {exc}") from exc


async def current_store(request: Request) -> Any:
    """The store the service's runtime opened; a 503 while the database is not reachable yet."""
    return request.app.state.runtime.store


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
# `store: Store[PaymentStore]`: the route's service's store, of the type it names.
Store = Annotated[S, Depends(current_store)]
