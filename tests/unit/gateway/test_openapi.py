"""The public OpenAPI document tells the truth (issue 11 point 6): every status an operation
answers with the one error schema the processes send, enums and patterns a client can build a
valid request from, an example for every request body, links for the stateful flow.

The bodies are checked against the document with jsonschema (the validator schemathesis uses
too): the document and `error_body` cannot drift apart unnoticed.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from microshop.gateway.openapi import build_public_schema
from microshop.orders.domain import CATALOG
from microshop.payment_methods import PAYMENT_METHODS
from microshop.platform.errors import error_body

SCHEMA, MISSING = build_public_schema("microshop", "1.0.0")
OPERATIONS = {
    f"{method.upper()} {path}": operation
    for path, item in SCHEMA["paths"].items()
    if path.startswith("/api/")
    for method, operation in item.items()
}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def validator(node: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**node, "components": SCHEMA["components"]})


def test_every_service_is_documented() -> None:
    assert MISSING == []
    assert len(OPERATIONS) == 10


# What every operation may answer: the gateway's limits and its upstream failures.
EVERY = {"408", "414", "431", "502", "503", "504"}
EXPECTED = {
    "POST /api/v1/users": {"201", "400", "409", "413", "415", "422"},
    "POST /api/v1/auth/token": {"200", "400", "401", "413", "415", "422", "429"},
    "GET /api/v1/users/me": {"200", "401"},
    "GET /api/v1/products": {"200", "422"},
    "POST /api/v1/orders": {"202", "400", "401", "409", "413", "415", "422"},
    "GET /api/v1/orders": {"200", "401", "422"},
    "GET /api/v1/orders/{order_id}": {"200", "401", "404", "422"},
    "GET /api/v1/payments": {"200", "401", "422"},
    "GET /api/v1/notifications": {"200", "401", "422"},
    "POST /api/v1/notifications/{notification_id}/read": {"200", "401", "404", "422"},
}


@pytest.mark.parametrize("operation", EXPECTED)
def test_every_status_an_operation_answers_is_documented(operation: str) -> None:
    assert set(OPERATIONS[operation]["responses"]) == EXPECTED[operation] | EVERY


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_error_status_has_the_one_error_schema(operation: str) -> None:
    for status, response in OPERATIONS[operation]["responses"].items():
        if status >= "400":
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (operation, status)


@pytest.mark.parametrize(
    "body",
    [
        error_body("Not Found", "0123abcd"),
        error_body(
            "body.email: Field required",
            "r-1",
            [{"loc": ["body", "email"], "msg": "Field required", "type": "missing"}],
        ),
        error_body("not ready: users", "r-2", failing={"users": "does not answer"}),
    ],
)
def test_the_bodies_the_processes_send_match_the_error_schema(body: dict[str, Any]) -> None:
    validator({"$ref": "#/components/schemas/Error"}).validate(body)


def test_fastapi_s_validation_error_schema_is_gone() -> None:
    assert not {"HTTPValidationError", "ValidationError"} & set(SCHEMA["components"]["schemas"])


def request_schema(operation: str) -> dict[str, Any]:
    content = OPERATIONS[operation]["requestBody"]["content"]
    return resolve(next(iter(content.values()))["schema"])


def test_payment_methods_and_skus_are_enums_of_what_the_shop_has() -> None:
    order = request_schema("POST /api/v1/orders")
    item = resolve(order["properties"]["items"]["items"])

    assert set(order["properties"]["payment_method"]["enum"]) == PAYMENT_METHODS
    assert set(item["properties"]["sku"]["enum"]) == {p.sku for p in CATALOG}
    assert order["properties"]["items"]["maxItems"] == len(CATALOG)


@pytest.mark.parametrize(
    ("items", "valid"),
    [
        ([{"sku": "MUG-CLASSIC", "quantity": 1}, {"sku": "TEE-LOGO-M", "quantity": 2}], True),
        ([{"sku": "MUG-CLASSIC", "quantity": 1}, {"sku": "MUG-CLASSIC", "quantity": 2}], False),
    ],
)
def test_one_line_per_sku_is_in_the_schema(items: list[dict[str, Any]], valid: bool) -> None:
    body = {"items": items, "payment_method": "pm_card_visa"}

    assert validator(request_schema("POST /api/v1/orders")).is_valid(body) is valid


@pytest.mark.parametrize(
    ("operation", "where", "name", "good", "bad"),
    [
        (
            "GET /api/v1/orders/{order_id}",
            "path",
            "order_id",
            "0b6d4b5e-8a51-4f0c-9a57-3f7c1c2d9e10",
            "42",
        ),
        ("GET /api/v1/payments", "query", "order_id", "0b6d4b5e-8a51-4f0c-9a57-3f7c1c2d9e10", "x"),
        ("POST /api/v1/orders", "header", "idempotency-key", "checkout-1", " padded "),
    ],
)
def test_ids_and_keys_have_patterns(
    operation: str, where: str, name: str, good: str, bad: str
) -> None:
    [parameter] = [
        p for p in OPERATIONS[operation]["parameters"] if (p["in"], p["name"]) == (where, name)
    ]
    schema = parameter["schema"]
    pattern = schema.get("pattern") or next(s["pattern"] for s in schema["anyOf"] if "pattern" in s)

    assert re.search(pattern, good) and not re.search(pattern, bad)


@pytest.mark.parametrize(
    "operation", [name for name, op in OPERATIONS.items() if "requestBody" in op]
)
def test_every_request_body_has_an_example_the_schema_accepts(operation: str) -> None:
    schema = request_schema(operation)

    assert schema["examples"]
    for example in schema["examples"]:
        validator(schema).validate(example)


def test_the_flow_is_linked_register_token_order_payment_notification() -> None:
    ids = {name: op["operationId"] for name, op in OPERATIONS.items()}

    def links(operation: str, status: str) -> set[str]:
        found = OPERATIONS[operation]["responses"][status].get("links", {})
        return {link["operationId"] for link in found.values()}

    assert ids["POST /api/v1/auth/token"] in links("POST /api/v1/users", "201")
    assert ids["GET /api/v1/users/me"] in links("POST /api/v1/auth/token", "200")
    assert {ids["GET /api/v1/orders/{order_id}"], ids["GET /api/v1/payments"]} <= links(
        "POST /api/v1/orders", "202"
    )
    assert ids["GET /api/v1/notifications"] in links("GET /api/v1/orders/{order_id}", "200")
    mark_read = ids["POST /api/v1/notifications/{notification_id}/read"]
    assert mark_read in links("GET /api/v1/notifications", "200")
