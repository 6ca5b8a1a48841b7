"""ServiceAccounts: one identity per service, with no API token (the services never call it)."""

from __future__ import annotations

from microshop_operator import constants as c
from microshop_operator.builders.meta import Obj, ShopContext


def component_of(service: str) -> str:
    return c.COMPONENT_GATEWAY if service == c.GATEWAY else c.COMPONENT_SERVICE


def build_service_account(ctx: ShopContext, service: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": ctx.metadata(ctx.names.service(service), service, component_of(service)),
        "automountServiceAccountToken": False,
    }
