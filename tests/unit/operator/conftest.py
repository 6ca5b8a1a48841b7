"""Fixtures for the operator's unit tests: the example Shops and the CRD as an API server sees it.

No API server runs here, so `crd_refusals` stands in for the two checks one makes on a Shop:
the openAPIV3Schema (as JSON Schema, after the server's defaulting) and the CEL
x-kubernetes-validations (evaluated with cel-python on the defaulted object).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "crds" / "shop.yaml"
EXAMPLES = ROOT / "manifests" / "examples"
EXAMPLE_FILES = ("shop-minimal.yaml", "shop.yaml")

Obj = dict[str, Any]


def load_example(name: str) -> Obj:
    shop: Obj = yaml.safe_load((EXAMPLES / name).read_text())
    return shop


def crd_schema() -> Obj:
    crd = yaml.safe_load(CRD_PATH.read_text())
    (version,) = crd["spec"]["versions"]
    schema: Obj = version["schema"]["openAPIV3Schema"]
    return schema


def as_json_schema(schema: Obj) -> Obj:
    """The structural schema as strict JSON Schema: unknown fields refused, as kubectl's
    default strict field validation does (x-kubernetes-* keywords are ignored by jsonschema)."""
    converted = copy.deepcopy(schema)

    def close(node: Obj) -> None:
        if "properties" in node:
            if "additionalProperties" not in node and node is not converted["properties"].get(
                "metadata"
            ):
                node["additionalProperties"] = False
            for child in node["properties"].values():
                close(child)
        if isinstance(node.get("additionalProperties"), dict):
            close(node["additionalProperties"])
        if isinstance(node.get("items"), dict):
            close(node["items"])

    close(converted)
    return converted


def apply_defaults(schema: Obj, value: Any) -> Any:
    """Structural defaulting as the API server does it: a missing field with a default gets
    it, and defaulted objects are defaulted in turn."""
    if not isinstance(value, dict):
        return value
    for name, child in (schema.get("properties") or {}).items():
        if name not in value and "default" in child:
            value[name] = copy.deepcopy(child["default"])
        if name in value:
            apply_defaults(child, value[name])
    if isinstance(schema.get("additionalProperties"), dict):
        for item in value.values():
            apply_defaults(schema["additionalProperties"], item)
    return value


def walk_rules(schema: Obj, value: Any, path: str = "") -> Iterator[tuple[str, Obj, Any]]:
    """(path, rule, self) for every x-kubernetes-validations rule that applies to `value`."""
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path or ".", rule, value
    if isinstance(value, dict):
        for name, child in (schema.get("properties") or {}).items():
            if name in value:
                yield from walk_rules(child, value[name], f"{path}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                yield from walk_rules(schema["additionalProperties"], item, f"{path}[{key}]")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from walk_rules(schema["items"], item, f"{path}[{index}]")


def cel_messages(schema: Obj, shop: Obj) -> list[str]:
    """Messages of the CEL rules the (already defaulted) Shop breaks, as on create: transition
    rules (those reading `oldSelf`) run on updates only (apiextensions-apiserver's CEL
    validator skips them without an old object); tests/operator checks those on the emulator."""
    environment = celpy.Environment()
    messages = []
    for _path, rule, value in walk_rules(schema, shop):
        if "oldSelf" in rule["rule"]:
            continue
        program = environment.program(environment.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if isinstance(result, celpy.CELEvalError):
            raise AssertionError(f"rule {rule['rule']!r} failed to evaluate: {result}")
        if not bool(result):
            messages.append(rule["message"])
    return messages


@pytest.fixture(scope="session")
def crd() -> Obj:
    loaded: Obj = yaml.safe_load(CRD_PATH.read_text())
    return loaded


@pytest.fixture(scope="session")
def schema() -> Obj:
    return crd_schema()


@pytest.fixture(scope="session")
def crd_refusals(schema: Obj) -> Callable[[Obj], list[str]]:
    """Every reason the API server would refuse a Shop: schema errors, then CEL messages."""
    validator = jsonschema.Draft7Validator(as_json_schema(schema))

    def refusals(shop: Obj) -> list[str]:
        defaulted = apply_defaults(schema, copy.deepcopy(shop))
        errors = [
            f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(defaulted)
        ]
        if errors:
            # The server checks CEL only on a schema-valid object.
            return errors
        return cel_messages(schema, defaulted)

    return refusals


@pytest.fixture(scope="session")
def defaulted(schema: Obj) -> Callable[[Obj], Obj]:
    return lambda shop: apply_defaults(schema, copy.deepcopy(shop))


@pytest.fixture
def make_shop() -> Callable[..., Obj]:
    """A Shop object around a spec, as a user would write it."""

    def make(spec: Obj | None = None, name: str = "shop", namespace: str = "shop") -> Obj:
        return {
            "apiVersion": "microshop.dev/v1alpha1",
            "kind": "Shop",
            "metadata": {"name": name, "namespace": namespace},
            "spec": copy.deepcopy(spec) if spec is not None else {},
        }

    return make


@pytest.fixture(params=EXAMPLE_FILES)
def example(request: pytest.FixtureRequest) -> Obj:
    """Each example Shop from manifests/examples, placed in a namespace as the API would."""
    shop = load_example(request.param)
    shop["metadata"]["namespace"] = "shop"
    return shop
