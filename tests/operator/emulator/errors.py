"""API errors as `Status` objects, worded as k8s.io/apimachinery/pkg/api/errors and field/errors.go.

A field error renders as `<path>: <Type>[: <value>][: <detail>]` (field.Error.ErrorBody); an
Invalid Status joins them as `<Kind>.<group> "<name>" is invalid: <error>` or `[<e1>, <e2>]`
(errors.NewInvalid with an aggregate).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# Values field.ErrorBody omits (field.OmitValueType): objects and arrays in CEL errors.
OMIT = object()


@dataclasses.dataclass
class ApiError(Exception):
    status: int
    reason: str
    message: str
    details: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"

    def as_status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.status,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclasses.dataclass(frozen=True)
class FieldError:
    """field.Error: Type is one of Invalid, Required, Forbidden, Unsupported value, ..."""

    kind: str
    path: str
    value: Any = OMIT
    detail: str = ""

    def body(self) -> str:
        text = self.kind
        valued = ("Invalid value", "Unsupported value", "Duplicate value", "Not found")
        if self.kind in valued and self.value is not OMIT:
            text += f": {_render(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.path}: {self.body()}"


def _render(value: Any) -> str:
    """ErrorBody's value: numbers and booleans as Go prints them, strings quoted, else JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def invalid_field(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("Invalid value", path, value, detail)


def forbidden_field(path: str, detail: str) -> FieldError:
    return FieldError("Forbidden", path, OMIT, detail)


def required_field(path: str, detail: str = "") -> FieldError:
    return FieldError("Required value", path, OMIT, detail)


def unsupported_field(path: str, value: Any, supported: list[str]) -> FieldError:
    quoted = ", ".join(json.dumps(s) for s in supported)
    return FieldError("Unsupported value", path, value, f"supported values: {quoted}")


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """errors.NewInvalid: 422 with one cause per field error."""
    qualified = f"{kind}.{group}" if group else kind
    unique: list[FieldError] = []
    for error in errors:
        if error not in unique:
            unique.append(error)
    joined = str(unique[0]) if len(unique) == 1 else "[" + ", ".join(map(str, unique)) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {joined}',
        {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": _cause_type(e.kind), "message": e.body(), "field": e.path}
                for e in unique
            ],
        },
    )


def _cause_type(kind: str) -> str:
    return {
        "Invalid value": "FieldValueInvalid",
        "Required value": "FieldValueRequired",
        "Forbidden": "FieldValueForbidden",
        "Unsupported value": "FieldValueNotSupported",
        "Duplicate value": "FieldValueDuplicate",
        "Too long": "FieldValueTooLong",
        "Too many": "FieldValueTooMany",
    }.get(kind, "FieldValueInvalid")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def not_found(plural: str, group: str, name: str | None) -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        {"name": name, "group": group, "kind": plural},
    )


def conflict(plural: str, group: str, name: str, message: str) -> ApiError:
    qualified = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": {message}',
        {"name": name, "group": group, "kind": plural},
    )


def forbidden(plural: str, group: str, name: str | None, message: str) -> ApiError:
    """errors.NewForbidden: `<resource>.<group> "<name>" is forbidden: <message>`."""
    qualified = f"{plural}.{group}" if group else plural
    prefix = f'{qualified} "{name}"' if name else qualified
    return ApiError(
        403,
        "Forbidden",
        f"{prefix} is forbidden: {message}",
        {"name": name or "", "group": group, "kind": plural},
    )
