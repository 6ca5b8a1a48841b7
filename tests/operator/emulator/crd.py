"""Custom resources held to their CRD's structural schema, as apiextensions-apiserver does.

On every write of a custom resource, in the API server's order:

1. pruning (pkg/apiserver/schema/pruning/algorithm.go): fields the schema does not declare
   are dropped unless `x-kubernetes-preserve-unknown-fields`; with `fieldValidation=Strict`
   that is a 400 "strict decoding error: unknown field ..." instead (customresource_handler.go
   schemaCoercingDecoder), with the default `Warn` a Warning header;
2. defaulting (pkg/apiserver/schema/defaulting/algorithm.go Default): a missing property
   with a `default` gets it, then defaulting goes on inside it;
3. OpenAPI validation (pkg/apiserver/validation kubeOpenAPIResultToFieldErrors) by
   `jsonschema`, each error worded as kube-openapi words it;
4. the `x-kubernetes-validations` CEL rules (pkg/apiserver/schema/cel/validation.go
   Validator.validate) by `cel-python`: `self` is the value at the rule's node; transition
   rules (those using `oldSelf`) run only on an update that has an old value to compare
   (correlated through object properties, maps and map-lists as MapIsCorrelatable and
   makeMapList do); rules without `oldSelf` on a value that did not change are ratcheted (not
   run), as CRDValidationRatcheting does. The Kubernetes `quantity()` library is provided.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from typing import Any

import celpy
import jsonschema
from celpy import celtypes

from .errors import OMIT, FieldError, forbidden_field, invalid_field, required_field
from .quantity import QuantityError, parse_quantity
from .store import clone

Body = dict[str, Any]
Schema = dict[str, Any]
_META_FIELDS = ("apiVersion", "kind", "metadata")
_BLOCKING = {"type", "enum", "required", "maxLength", "maxItems", "maxProperties"}
BLOCKED = (
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)


@dataclasses.dataclass(frozen=True)
class Rule:
    rule: str
    message: str
    message_expression: Any | None
    field_path: str
    reason: str | None
    program: Any
    uses_old_self: bool


class CrdSchema:
    """One served version's structural schema, compiled once when the CRD is created."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._validator = jsonschema.Draft7Validator(_as_json_schema(schema))
        self._rules: dict[int, list[Rule]] = {}
        self._env = celpy.Environment()
        self._compile(schema)

    def _compile(self, schema: Schema) -> None:
        rules = []
        for entry in schema.get("x-kubernetes-validations") or ():
            message_expression = entry.get("messageExpression")
            rules.append(
                Rule(
                    rule=entry["rule"],
                    message=(entry.get("message") or "").strip(),
                    message_expression=(
                        self._env.program(
                            self._env.compile(message_expression), functions=FUNCTIONS
                        )
                        if message_expression
                        else None
                    ),
                    field_path=entry.get("fieldPath") or "",
                    reason=entry.get("reason"),
                    program=self._env.program(
                        self._env.compile(entry["rule"]), functions=FUNCTIONS
                    ),
                    uses_old_self=bool(re.search(r"\boldSelf\b", entry["rule"])),
                )
            )
        if rules:
            self._rules[id(schema)] = rules
        for child in _children(schema):
            self._compile(child)

    # -- 1. pruning ---------------------------------------------------------------------------

    def prune(self, body: Body) -> list[str]:
        """Drop undeclared fields in place; return their paths (sorted, as the server lists)."""
        unknown: list[str] = []
        _prune(body, self.schema, "", unknown, root=True)
        return sorted(unknown)

    # -- 2. defaulting ------------------------------------------------------------------------

    def default(self, body: Body) -> None:
        _default(body, self.schema)

    # -- 3. and 4. validation -----------------------------------------------------------------

    def validate(
        self, body: Body, old: Body | None, *, only: str | None = None
    ) -> list[FieldError]:
        """Schema and CEL errors of `body` (an update compares with `old`); `only` limits both to
        one top-level field (a write to the status subresource validates status)."""
        new_part = _without_meta(body) if only is None else {only: body.get(only)}
        old_part = (
            None if old is None else (_without_meta(old) if only is None else {only: old.get(only)})
        )
        if old_part is not None and new_part == old_part:
            return []  # nothing validated changed: ratcheting leaves it as it was
        checked = {**{k: body[k] for k in _META_FIELDS if k in body}, **new_part}
        errors: list[FieldError] = []
        blocking = False
        for error in sorted(
            self._validator.iter_errors(checked), key=lambda e: list(e.absolute_path)
        ):
            found = _schema_error(error)
            if found is not None:
                errors.append(found)
                blocking = blocking or error.validator == "type"
        if blocking:
            return [*errors, invalid_field("<nil>", None, BLOCKED)]
        errors += self._cel(self.schema, checked, old, "")
        return errors

    def _cel(self, schema: Schema, value: Any, old: Any, path: str) -> list[FieldError]:
        if value is None:
            return []
        errors: list[FieldError] = []
        unchanged = old is not None and value == old
        for rule in self._rules.get(id(schema), ()):
            if rule.uses_old_self and old is None:
                continue  # a transition rule needs an old value
            if unchanged and not rule.uses_old_self:
                continue  # ratcheted
            errors += _evaluate(rule, schema, value, old, path)
        if isinstance(value, dict):
            properties = schema.get("properties") or {}
            additional = schema.get("additionalProperties")
            correlates = schema.get("x-kubernetes-map-type", "granular") in ("granular", "atomic")
            for key, child in value.items():
                sub = properties.get(key)
                if sub is None and isinstance(additional, dict):
                    sub = additional
                if sub is None or (path == "" and key in _META_FIELDS and key != "metadata"):
                    continue
                old_child = old.get(key) if isinstance(old, dict) and correlates else None
                child_path = f"{path}.{key}" if path else key
                if sub is additional:
                    child_path = f"{path}[{key}]"
                errors += self._cel(sub, child, old_child, child_path)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            keys = schema.get("x-kubernetes-list-map-keys") or []
            correlated: dict[tuple[Any, ...], Any] = {}
            if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
                correlated = {
                    tuple(item.get(k) for k in keys): item for item in old if isinstance(item, dict)
                }
            for index, item in enumerate(value):
                old_item = (
                    correlated.get(tuple(item.get(k) for k in keys))
                    if isinstance(item, dict)
                    else None
                )
                errors += self._cel(schema["items"], item, old_item, f"{path}[{index}]")
        return errors


def _evaluate(rule: Rule, schema: Schema, value: Any, old: Any, path: str) -> list[FieldError]:
    activation = {"self": celpy.json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = celpy.json_to_cel(old)
    field = path + rule.field_path if rule.field_path else path
    field = field.lstrip(".") or "<nil>"
    try:
        result = rule.program.evaluate(activation)
    except celpy.CELEvalError as error:
        return [
            invalid_field(
                field, OMIT, f"{error.args[0]} evaluating rule: {rule.message or rule.rule}"
            )
        ]
    if isinstance(result, celpy.CELEvalError):
        return [
            invalid_field(
                field, OMIT, f"{result.args[0]} evaluating rule: {rule.message or rule.rule}"
            )
        ]
    if result is True or result == celtypes.BoolType(True):
        return []
    detail = rule.message or f"failed rule: {rule.rule}"
    if rule.message_expression is not None:
        try:
            evaluated = str(rule.message_expression.evaluate(activation)).strip()
            if evaluated and "\n" not in evaluated:
                detail = evaluated
        except celpy.CELEvalError:
            pass
    shown = OMIT if schema.get("type") in ("object", "array") else value
    if rule.reason == "FieldValueForbidden":
        return [forbidden_field(field, detail)]
    if rule.reason == "FieldValueRequired":
        return [required_field(field, detail)]
    return [invalid_field(field, shown, detail)]


# -- schema walking ---------------------------------------------------------------------------


def _children(schema: Schema) -> list[Schema]:
    found = list((schema.get("properties") or {}).values())
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found.append(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        found += [s for s in schema.get(key) or () if isinstance(s, dict)]
    return found


def _prune(
    value: Any, schema: Schema | None, path: str, unknown: list[str], *, root: bool = False
) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(value, schema, path, unknown)
        return
    if isinstance(value, dict):
        if schema is None:
            for key in list(value):
                unknown.append(_join(path, key))
                del value[key]
            return
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        embedded = root or schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            if key in properties:
                _prune(value[key], properties[key], _join(path, key), unknown)
            elif isinstance(additional, dict):
                _prune(value[key], additional, _join(path, key), unknown)
            elif additional is True:
                continue
            else:
                unknown.append(_join(path, key))
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for index, item in enumerate(value):
            _prune(item, items if isinstance(items, dict) else None, f"{path}[{index}]", unknown)


def _skip_prune(value: Any, schema: Schema, path: str, unknown: list[str]) -> None:
    """Under preserve-unknown-fields only declared properties are pruned further."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, child in value.items():
            if key in properties:
                _prune(child, properties[key], _join(path, key), unknown)
            elif isinstance(schema.get("additionalProperties"), dict):
                _prune(child, schema["additionalProperties"], _join(path, key), unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _skip_prune(item, schema["items"], f"{path}[{index}]", unknown)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _default(value: Any, schema: Schema | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if "default" in sub and (
                key not in value or (value[key] is None and not sub.get("nullable"))
            ):
                value[key] = clone(sub["default"])
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            if key in properties:
                _default(child, properties[key])
            elif isinstance(additional, dict):
                _default(child, additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])


def _as_json_schema(schema: Schema) -> Schema:
    """The structural schema as JSON Schema: `nullable` as a "null" type, int-or-string as both,
    the Kubernetes extensions and formats left out (kube-openapi checks only a few)."""
    converted: Schema = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in (
            "default",
            "description",
            "example",
            "format",
        ):
            continue
        if key == "properties":
            converted[key] = {k: _as_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            converted[key] = _as_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            converted[key] = [_as_json_schema(v) for v in value]
        else:
            converted[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        converted["type"] = ["integer", "string"]
    if schema.get("nullable") and "type" in converted:
        types = converted["type"] if isinstance(converted["type"], list) else [converted["type"]]
        converted["type"] = [*types, "null"]
    converted.pop("nullable", None)
    return converted


def _without_meta(body: Body) -> Body:
    return {k: v for k, v in body.items() if k not in _META_FIELDS}


def _path(error: jsonschema.ValidationError) -> str:
    text = ""
    for step in error.absolute_path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               dict: "object", type(None): "null"}  # fmt: skip


def _schema_error(error: jsonschema.ValidationError) -> FieldError | None:
    """kubeOpenAPIResultToFieldErrors, with kube-openapi's wording (validation/errors)."""
    path = _path(error)
    shown = path or "<nil>"
    value, expected = error.instance, error.validator_value
    if error.validator == "required":
        missing = re.match(r"'([^']+)' is a required property", error.message)
        return required_field(_join(path, missing.group(1)) if missing else shown)
    if error.validator == "type":
        wanted = expected[0] if isinstance(expected, list) else expected
        actual = _TYPE_NAMES.get(type(value), "object")
        return FieldError(
            "Invalid value",
            shown,
            value,
            f"{shown} in body must be of type {wanted}: {json.dumps(actual)}",
        )
    if error.validator == "enum":
        quoted = ", ".join(json.dumps(s if isinstance(s, str) else json.dumps(s)) for s in expected)
        return FieldError("Unsupported value", shown, value, f"supported values: {quoted}")
    if error.validator == "minimum":
        return invalid_field(
            shown, value, f"{shown} in body should be greater than or equal to {expected}"
        )
    if error.validator == "maximum":
        return invalid_field(
            shown, value, f"{shown} in body should be less than or equal to {expected}"
        )
    if error.validator == "exclusiveMinimum":
        return invalid_field(shown, value, f"{shown} in body should be greater than {expected}")
    if error.validator == "exclusiveMaximum":
        return invalid_field(shown, value, f"{shown} in body should be less than {expected}")
    if error.validator == "pattern":
        return invalid_field(shown, value, f"{shown} in body should match '{expected}'")
    if error.validator == "maxLength":
        return FieldError("Too long", shown, OMIT, f"may not be more than {expected} bytes")
    if error.validator == "minLength":
        return invalid_field(
            shown, value, f"{shown} in body should be at least {expected} chars long"
        )
    if error.validator == "maxItems":
        return FieldError(
            "Too many", shown, OMIT, f"{len(value)}: must have at most {expected} items"
        )
    if error.validator == "minItems":
        return invalid_field(shown, value, f"{shown} in body should have at least {expected} items")
    if error.validator == "maxProperties":
        return FieldError(
            "Too many", shown, OMIT, f"{len(value)}: must have at most {expected} items"
        )
    if error.validator == "minProperties":
        return invalid_field(
            shown, value, f"{shown} in body should have at least {expected} properties"
        )
    return invalid_field(
        shown, value if not isinstance(value, dict | list) else OMIT, error.message
    )


# -- the Kubernetes CEL libraries the Shop's rules may use --------------------------------------


class Quantity(celtypes.StringType):
    """k8s.io/apiserver/pkg/cel/library/quantity.go: a resource quantity in CEL."""

    @functools.cached_property
    def amount(self) -> Any:
        return parse_quantity(str(self))


def _quantity(text: Any) -> Quantity:
    try:
        parse_quantity(str(text))
    except QuantityError as error:
        raise ValueError(str(error)) from error
    return Quantity(str(text))


def _is_quantity(text: Any) -> celtypes.BoolType:
    try:
        parse_quantity(str(text))
    except QuantityError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _compare(a: Quantity, b: Quantity) -> celtypes.IntType:
    return celtypes.IntType((a.amount > b.amount) - (a.amount < b.amount))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "compareTo": _compare,
    "isGreaterThan": lambda a, b: celtypes.BoolType(a.amount > b.amount),
    "isLessThan": lambda a, b: celtypes.BoolType(a.amount < b.amount),
    "asInteger": lambda a: celtypes.IntType(int(a.amount)),
    "asApproximateFloat": lambda a: celtypes.DoubleType(float(a.amount)),
    "sign": lambda a: celtypes.IntType((a.amount > 0) - (a.amount < 0)),
    "isInteger": lambda a: celtypes.BoolType(a.amount.denominator == 1),
}
