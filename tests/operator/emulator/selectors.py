"""Label and field selectors as the API server parses and matches them.

Label selectors follow k8s.io/apimachinery/pkg/labels/selector.go (Lexer, Parser.parse,
Requirement.Matches): equality (`=`, `==`, `!=`), set-based (`in`, `notin`), existence
(`key`, `!key`) and `gt`/`lt`, joined by commas. A selector that does not parse is the
same 400 BadRequest "unable to parse requirement: ..." the server answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import ApiError, bad_request

# Tokens of labels/selector.go's lexer.
_SPECIAL = set("=!(),")
_WHITESPACE = set(" \t\r\n")
_KEYWORDS = {"in": "in", "notin": "notin"}
_SYMBOLS = ("!=", "==", "=", "!", "(", ")", ",")


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Requirement.Matches: NotIn and != also match objects without the label."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if not present:
            return False
        try:
            number = int(value or "")
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.operator == "gt" else number < bound


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> list[tuple[str, str]]:
        """The key=value pairs every match must carry: what a label index can narrow on."""
        return [
            (r.key, r.values[0])
            for r in self.requirements
            if r.operator in ("=", "in") and len(r.values) == 1
        ]

    @property
    def empty(self) -> bool:
        return not self.requirements


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
            continue
        if ch in _SPECIAL:
            for symbol in _SYMBOLS:
                if text.startswith(symbol, i):
                    tokens.append(("symbol", symbol))
                    i += len(symbol)
                    break
            continue
        start = i
        while i < len(text) and text[i] not in _SPECIAL and text[i] not in _WHITESPACE:
            i += 1
        word = text[start:i]
        tokens.append(("keyword", word) if word in _KEYWORDS else ("identifier", word))
    tokens.append(("end", ""))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.position = 0

    def peek(self, values: bool = False) -> tuple[str, str]:
        kind, literal = self.tokens[self.position]
        return ("identifier", literal) if values and kind == "keyword" else (kind, literal)

    def take(self, values: bool = False) -> tuple[str, str]:
        token = self.peek(values)
        self.position += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.peek(values=True)
            if kind == "identifier" or (kind, literal) == ("symbol", "!"):
                requirements.append(self.requirement())
                kind, literal = self.take(values=True)
                if kind == "end":
                    return requirements
                if (kind, literal) != ("symbol", ","):
                    raise _unparsable(f"found '{literal}', expected: ',' or 'end of string'")
                kind, literal = self.peek(values=True)
                if kind != "identifier" and (kind, literal) != ("symbol", "!"):
                    raise _unparsable(f"found '{literal}', expected: identifier after ','")
            elif kind == "end":
                return requirements
            else:
                raise _unparsable(f"found '{literal}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        kind, literal = self.take(values=True)
        if (kind, literal) == ("symbol", "!"):
            kind, key = self.take(values=True)
            if kind != "identifier":
                raise _requirement_error(f"found '{key}', expected: identifier")
            return Requirement(key, "!")
        key = literal
        kind, literal = self.peek()
        if kind == "end" or (kind, literal) == ("symbol", ","):
            return Requirement(key, "exists")
        operator = self.operator()
        if operator in ("in", "notin"):
            return Requirement(key, operator, self.value_set())
        kind, value = self.peek(values=True)
        if kind == "identifier":
            self.take(values=True)
        elif kind in ("end",) or (kind, value) == ("symbol", ","):
            value = ""
        else:
            raise _requirement_error(f"found '{value}', expected: identifier")
        if operator in ("gt", "lt"):
            try:
                int(value)
            except ValueError as exc:
                raise _requirement_error(
                    "values[0]: Invalid value: "
                    f"\"{value}\": for 'Gt', 'Lt' operators, the value must be an integer"
                ) from exc
        return Requirement(key, "=" if operator == "==" else operator, (value,))

    def operator(self) -> str:
        kind, literal = self.take()
        if kind == "keyword":
            return literal
        if kind == "identifier" and literal in ("gt", "lt"):
            return literal
        if kind == "symbol" and literal in ("=", "==", "!="):
            return literal
        raise _requirement_error(f"found '{literal}', expected: !=, =, ==, gt, in, lt, notin")

    def value_set(self) -> tuple[str, ...]:
        kind, literal = self.take()
        if (kind, literal) != ("symbol", "("):
            raise _requirement_error(f"found '{literal}' expected: '('")
        values: list[str] = []
        while True:
            kind, literal = self.take(values=True)
            if kind == "identifier":
                values.append(literal)
                kind, literal = self.take()
                if (kind, literal) == ("symbol", ")"):
                    break
                if (kind, literal) != ("symbol", ","):
                    raise _requirement_error(f"found '{literal}', expected: ',' or ')'")
            elif (kind, literal) == ("symbol", ")") and not values:
                break
            else:
                raise _requirement_error(f"found '{literal}', expected: ',', ')' or identifier")
        if not values:
            raise _requirement_error(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
            )
        return tuple(values)


def _unparsable(message: str) -> ApiError:
    return bad_request(message)


def _requirement_error(message: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {message}")


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_Parser(text).parse()))


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    """metadata.name / metadata.namespace field selectors (what every resource supports)."""

    terms: tuple[tuple[str, str, bool], ...] = ()  # (field, value, negated)

    def matches(self, body: Mapping[str, Any]) -> bool:
        meta = body.get("metadata") or {}
        fields = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
        return all((fields[key] == value) != negated for key, value, negated in self.terms)

    def name(self) -> str | None:
        """The one name an `metadata.name=` term pins, for a direct lookup."""
        for key, value, negated in self.terms:
            if key == "metadata.name" and not negated:
                return value
        return None


def parse_field_selector(text: str | None) -> FieldSelector:
    terms: list[tuple[str, str, bool]] = []
    for term in filter(None, (text or "").split(",")):
        negated = "!=" in term
        key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
        key = key.strip()
        if key not in ("metadata.name", "metadata.namespace"):
            raise bad_request(f"field label not supported: {key}")
        terms.append((key, value.strip(), negated))
    return FieldSelector(tuple(terms))


def selector_from_label_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: matchLabels are equalities, matchExpressions In, NotIn,
    Exists and DoesNotExist."""
    selector = selector or {}
    requirements = [
        Requirement(key, "=", (str(value),))
        for key, value in sorted((selector.get("matchLabels") or {}).items())
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        requirements.append(
            Requirement(
                expression["key"],
                operators[expression["operator"]],
                tuple(expression.get("values") or ()),
            )
        )
    return LabelSelector(tuple(requirements))
