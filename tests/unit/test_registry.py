"""The service registry is the one list of services: the folders, the gateway and the operator's
copy (it cannot import the services package) all agree with it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter

from microshop import registry
from microshop.gateway.routes import is_public, service_for
from microshop.gateway.settings import GatewaySettings
from microshop.platform.settings import DatabaseSettings, ServiceSettings
from microshop_operator import constants as c
from microshop_operator.builders import build_children

PACKAGE = Path(registry.__file__).parent
Obj = dict[str, Any]


def test_every_service_folder_is_in_the_registry_and_every_entry_has_its_folder() -> None:
    folders = {p.parent.name for p in PACKAGE.glob("*/app.py")}

    assert folders == set(registry.NAMES)


@pytest.mark.parametrize("service", registry.SERVICES, ids=registry.NAMES)
def test_each_entry_names_a_settings_class_and_an_app_factory_that_exist(
    service: registry.Service,
) -> None:
    settings = service.settings_class()

    assert issubclass(settings, ServiceSettings)
    assert issubclass(settings, DatabaseSettings) == (service.database is not None)
    assert callable(importlib.import_module(service.app.partition(":")[0]).create_app)
    if service is not registry.GATEWAY:
        api = importlib.import_module(service.api_module)
        assert any(isinstance(v, APIRouter) for v in vars(api).values())


def test_routes_and_ports_are_each_given_once() -> None:
    prefixes = [prefix for s in registry.SERVICES for prefix in s.routes]
    offsets = [s.port_offset for s in registry.SERVICES]

    assert len(prefixes) == len(set(prefixes))
    assert len(offsets) == len(set(offsets))
    assert registry.SERVICES[-1] is registry.GATEWAY  # started last, in front of the others


@pytest.mark.parametrize("service", registry.BACKENDS, ids=lambda s: s.name)
def test_the_gateway_routes_each_prefix_to_its_service(service: registry.Service) -> None:
    for prefix in service.routes:
        assert service_for(prefix) == service.name
        assert service_for(f"{prefix}/anything") == service.name


def test_the_gateway_opens_exactly_the_public_routes_of_the_registry() -> None:
    for service in registry.BACKENDS:
        for route in service.public:
            for method in route.methods:
                assert is_public(method, route.path)
                assert is_public(method, f"{route.path}/x") == route.subtree
            assert not is_public("DELETE", route.path)
    assert not is_public("GET", "/api/v1/orders")
    assert not is_public("GET", "/api/v1/users/me")


def test_the_gateway_has_an_upstream_setting_for_every_service() -> None:
    settings = GatewaySettings()

    assert list(settings.upstreams()) == [s.name for s in registry.BACKENDS]
    for service in registry.BACKENDS:
        assert settings.upstreams()[service.name].endswith(f":{8080 + service.port_offset}")


# -- the operator's copy ---------------------------------------------------------------------


def test_the_operators_service_lists_match_the_registry() -> None:
    assert c.SERVICES == registry.NAMES
    assert registry.GATEWAY.name == c.GATEWAY
    assert tuple(s.name for s in registry.BACKENDS) == c.BACKEND_SERVICES
    assert {s.name: s.database for s in registry.SERVICES if s.database} == c.DATABASE_ENGINES
    assert tuple(s.name for s in registry.SERVICES if s.database) == c.DATABASE_SERVICES
    assert tuple(s.name for s in registry.SERVICES if s.bus) == c.BUS_SERVICES
    assert ServiceSettings.model_fields["port"].default == c.SERVICE_PORT


def _children() -> list[Obj]:
    shop = {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": c.KIND,
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {},
    }
    return build_children(shop)


def _env(deployment: Obj) -> set[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"] for e in container.get("env", [])}


def test_the_operator_gives_each_service_what_the_registry_says_it_uses() -> None:
    children = _children()
    deployments = {o["metadata"]["name"]: o for o in children if o["kind"] == "Deployment"}

    for service in registry.SERVICES:
        env = _env(deployments[f"shop-{service.name}"])
        assert ("MICROSHOP_DATABASE_URL" in env) == (service.database is not None), service.name
        assert ("MICROSHOP_BUS_URL" in env) == service.bus, service.name
        assert ("MICROSHOP_JWT_PRIVATE_KEY" in env) == service.signs_tokens, service.name


def test_the_gateway_reads_every_route_the_operator_configures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    children = _children()
    [routes] = [o for o in children if o["metadata"]["name"] == "shop-gateway-routes"]
    for name, value in routes["data"].items():
        monkeypatch.setenv(name, value)

    upstreams = GatewaySettings().upstreams()

    assert upstreams == {s.name: f"http://shop-{s.name}:8080" for s in registry.BACKENDS}
