"""Server-side apply and managed fields, after sigs.k8s.io/structured-merge-diff and
k8s.io/apimachinery/pkg/util/managedfields.

Every write records who set which field in `metadata.managedFields` (fieldsV1): an apply
(`application/apply-patch+yaml`) makes its manager the owner of exactly the fields its
configuration names (typed/tofieldset.go); any other write makes its manager the owner of
what it changed and takes those fields from the others (merge/update.go Updater.Update).
An apply (Updater.Apply):

1. merges the configuration into the live object by the type's schema: structs and granular
   maps field by field, atomic maps and lists whole, `set` lists by value and `map` lists by
   their keys (containers by name, ports by containerPort and protocol, env by name) in the
   order typed/merge.go visitListItems keeps;
2. removes what this manager applied last time, no longer applies and nobody else owns
   (Updater.prune), so the server's defaulting then fills it in again: a Deployment whose only
   manager stops applying `replicas` gets 1;
3. compares the result with the live object: a field another manager owns whose value would
   change (or appear) is a conflict, 409 "Apply failed with N conflict(s)" as
   managedfields/internal/conflict.go words it, unless `force=true` takes it from them.

Types come from the Kubernetes OpenAPI (the `kubernetes-validate` package ships the 1.37
definitions, with x-kubernetes-list-type, -list-map-keys and -map-type) and from each CRD's
structural schema; a kind with neither is "deduced" (maps granular, lists atomic).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate

from .errors import ApiError
from .store import Body, clone

Schema = dict[str, Any]
PathElement = str  # "f:<field>", "k:<json of key fields>", "v:<json value>", "i:<index>"
FieldPath = tuple[PathElement, ...]
FieldSet = frozenset[FieldPath]

KUBE_VERSION = "1.37.0"
# Fields no manager owns (managedfields/internal/stripmeta.go) and the status of a kind with a
# status subresource, which main-endpoint writes reset (and the other way round).
STRIPPED = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata", "f:name"),
        ("f:metadata", "f:namespace"),
        ("f:metadata", "f:creationTimestamp"),
        ("f:metadata", "f:selfLink"),
        ("f:metadata", "f:uid"),
        ("f:metadata", "f:generation"),
        ("f:metadata", "f:managedFields"),
        ("f:metadata", "f:resourceVersion"),
        ("f:metadata", "f:deletionTimestamp"),
        ("f:metadata", "f:deletionGracePeriodSeconds"),
    }
)
# Key fields with a default the associative list uses when an item leaves them out
# (SMD getAssociativeKeyDefault reads it from the OpenAPI; the v2 definitions lack it).
KEY_DEFAULTS = {"protocol": "TCP"}


# -- types ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Type:
    """A node of a schema.Schema: a struct or map, a list, or a scalar."""

    kind: str  # "map", "list", "scalar"
    fields: dict[str, Type] = dataclasses.field(default_factory=dict)
    element: Type | None = None  # a map's values (granular maps), a list's items
    atomic: bool = False
    list_type: str = "atomic"  # "atomic", "set", "map"
    keys: tuple[str, ...] = ()

    def field(self, name: str) -> Type:
        found = self.fields.get(name)
        if found is not None:
            return found
        return self.element if self.element is not None else DEDUCED


DEDUCED = Type("map")
DEDUCED.element = DEDUCED  # untyped: maps granular all the way down, lists atomic
SCALAR = Type("scalar")


def _deduced_for(value: Any) -> Type:
    if isinstance(value, dict):
        return DEDUCED
    if isinstance(value, list):
        return ATOMIC_LIST
    return SCALAR


ATOMIC_LIST = Type("list", element=DEDUCED, list_type="atomic")


def type_of(node: Type, value: Any) -> Type:
    """The type to walk `value` with: a deduced type adapts to what the value is."""
    if node is DEDUCED:
        return _deduced_for(value)
    return node


@functools.cache
def _definitions() -> dict[str, Schema]:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    data: dict[str, Any] = json.loads(
        (root / f"v{KUBE_VERSION}-local" / "_definitions.json").read_text()
    )
    definitions: dict[str, Schema] = data["$defs"]
    return definitions


@functools.cache
def _by_kind() -> dict[tuple[str, str, str], str]:
    found: dict[tuple[str, str, str], str] = {}
    for name, schema in _definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            found[gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")] = name
    return found


@functools.cache
def builtin_type(group: str, version: str, kind: str) -> Type | None:
    name = _by_kind().get((group, version, kind))
    return None if name is None else _definition_type(name)


_DEFINED: dict[str, Type] = {}


def _definition_type(name: str) -> Type:
    found = _DEFINED.get(name)
    if found is None:
        # remembered before walking: definitions refer to themselves (JSONSchemaProps)
        found = _DEFINED[name] = Type("map")
        _fill(found, _definitions()[name], kubernetes=True)
    return found


def _fill(node: Type, schema: Schema, *, kubernetes: bool) -> None:
    resolved = _resolved(schema)
    built = _build(resolved, kubernetes=kubernetes)
    node.kind, node.fields, node.element = built.kind, built.fields, built.element
    node.atomic, node.list_type, node.keys = built.atomic, built.list_type, built.keys


def _resolved(schema: Schema) -> Schema:
    while "$ref" in schema and isinstance(schema["$ref"], str):
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**_definitions()[schema["$ref"].rsplit("/", 1)[-1]], **extra}
    for combined in ("allOf",):
        if combined in schema and len(schema[combined]) == 1:
            schema = {
                **_resolved(schema[combined][0]),
                **{k: v for k, v in schema.items() if k != combined},
            }
    return schema


def _types(schema: Schema) -> set[str]:
    found = schema.get("type")
    if isinstance(found, list):
        return {t for t in found if t != "null"}
    return {found} if isinstance(found, str) else set()


def _build(schema: Schema, *, kubernetes: bool) -> Type:
    """A Type from an OpenAPI (built-in definitions) or structural (CRD) schema node."""
    if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
        return SCALAR
    types = _types(schema)
    if "array" in types or (not types and "items" in schema):
        items = schema.get("items")
        element = _child(items, kubernetes) if isinstance(items, dict) else DEDUCED
        list_type = schema.get("x-kubernetes-list-type", "atomic")
        return Type(
            "list",
            element=element,
            list_type=list_type,
            keys=tuple(schema.get("x-kubernetes-list-map-keys") or ()),
        )
    if "object" in types or "properties" in schema or "additionalProperties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return DEDUCED
        node = Type("map", atomic=schema.get("x-kubernetes-map-type") == "atomic")
        for name, sub in (schema.get("properties") or {}).items():
            node.fields[name] = _child(sub, kubernetes)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            node.element = _child(additional, kubernetes)
        elif schema.get("x-kubernetes-preserve-unknown-fields") or additional is True:
            node.element = DEDUCED
        elif not node.fields:
            node.element = DEDUCED  # an untyped object (runtime.RawExtension, metadata: {})
        return node
    if not types and not kubernetes and not schema:
        return DEDUCED
    return SCALAR


def _child(schema: Schema, kubernetes: bool) -> Type:
    if kubernetes and "$ref" in schema:
        return _definition_type(schema["$ref"].rsplit("/", 1)[-1])
    return _build(_resolved(schema) if kubernetes else schema, kubernetes=kubernetes)


def crd_type(schema: Schema) -> Type:
    """A CRD version's structural schema; metadata is always ObjectMeta."""
    node = _build(schema, kubernetes=False)
    meta = _definition_type("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    if node.kind == "map" and node is not DEDUCED:
        node.fields["metadata"] = meta
    else:
        node = Type("map", fields={"metadata": meta}, element=DEDUCED)
    return node


def untyped() -> Type:
    node = Type("map", element=DEDUCED)
    node.fields["metadata"] = _definition_type("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    return node


# -- field sets (typed/tofieldset.go) ----------------------------------------------------------


def _key_element(item: Any, node: Type) -> PathElement:
    if node.list_type == "map" and isinstance(item, dict):
        keys = {}
        for key in node.keys:
            if key in item:
                keys[key] = item[key]
            elif key in KEY_DEFAULTS:
                keys[key] = KEY_DEFAULTS[key]
        return "k:" + json.dumps(keys, sort_keys=True, separators=(",", ":"))
    return "v:" + json.dumps(item, sort_keys=True, separators=(",", ":"))


def field_set(value: Any, node: Type, prefix: FieldPath = ()) -> set[FieldPath]:
    found: set[FieldPath] = set()
    _walk_set(value, node, prefix, found)
    return found


def _walk_set(value: Any, node: Type, path: FieldPath, found: set[FieldPath]) -> None:
    node = type_of(node, value)
    if node.kind == "map" and isinstance(value, dict):
        if node.atomic:
            found.add(path)
            return
        for key, child in value.items():
            sub = node.field(key)
            child_path = (*path, f"f:{key}")
            _walk_set(child, sub, child_path, found)
            if child is None or (isinstance(child, dict) and not child) or key not in node.fields:
                found.add(child_path)
    elif node.kind == "list" and isinstance(value, list):
        if node.list_type == "atomic":
            found.add(path)
            return
        for item in value:
            item_path = (*path, _key_element(item, node))
            found.add(item_path)
            if node.list_type == "map":
                _walk_set(item, node.element or DEDUCED, item_path, found)
    else:
        found.add(path)


def _owned(paths: Iterable[FieldPath]) -> set[FieldPath]:
    return {p for p in paths if p not in STRIPPED}


# frozenset of paths -> its fieldsV1 tree: most writes leave most managers' sets as they were.
_ENCODED: dict[frozenset[FieldPath], Body] = {}


def as_fields_v1(paths: Iterable[FieldPath]) -> Body:
    """The fieldsV1 tree: one key per path element, "." where a member has children (encoded
    once per distinct set; the tree is shared, as stored bodies are never changed in place)."""
    members = frozenset(paths)
    cached = _ENCODED.get(members)
    if cached is None:
        if len(_ENCODED) > 20_000:
            _ENCODED.clear()
        cached = _ENCODED[members] = _encode_fields_v1(members)
    return cached


def _encode_fields_v1(members: frozenset[FieldPath]) -> Body:
    root: Body = {}
    for path in sorted(members):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = root
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return root


def from_fields_v1(tree: Body, prefix: FieldPath = ()) -> set[FieldPath]:
    found: set[FieldPath] = set()
    for element, child in tree.items():
        if element == ".":
            found.add(prefix)
            continue
        path = (*prefix, element)
        if not child:
            found.add(path)
        else:
            found |= from_fields_v1(child, path)
    return found


# -- reading, merging and removing by path ---------------------------------------------------


def value_at(value: Any, path: FieldPath, node: Type) -> Any:
    for element in path:
        node = type_of(node, value)
        if element.startswith("f:"):
            if not isinstance(value, dict):
                return _MISSING
            name = element[2:]
            if name not in value:
                return _MISSING
            value, node = value[name], node.field(name)
        else:
            if not isinstance(value, list):
                return _MISSING
            match = next((item for item in value if _key_element(item, node) == element), _MISSING)
            if match is _MISSING:
                return _MISSING
            value, node = match, node.element or DEDUCED
    return value


_MISSING = object()


def merge(live: Any, config: Any, node: Type) -> Any:
    """typed/merge.go: the configuration over the live object, by the schema."""
    node = type_of(node, config if config is not None else live)
    if (
        node.kind == "map"
        and isinstance(config, dict)
        and isinstance(live, dict)
        and not node.atomic
    ):
        result = dict(live)
        for key, value in config.items():
            result[key] = (
                merge(live.get(key), value, node.field(key)) if key in live else clone(value)
            )
        return result
    if node.kind == "list" and isinstance(config, list) and isinstance(live, list):
        if node.list_type == "atomic":
            return clone(config)
        return _merge_list(live, config, node)
    return clone(config)


def _merge_list(live: list[Any], config: list[Any], node: Type) -> list[Any]:
    """visitListItems: shared items in the configuration's order, live-only items kept where
    they were, new items inserted after their preceding sibling."""
    element_type = node.element or DEDUCED
    lhs = [(_key_element(item, node), item) for item in live]
    rhs = [(_key_element(item, node), item) for item in config]
    lhs_index = {pe: item for pe, item in lhs}
    rhs_index = {pe: item for pe, item in rhs}
    shared = [pe for pe, _ in rhs if pe in lhs_index]
    next_shared = shared.pop(0) if shared else None
    merged_rhs: set[str] = set()
    out: list[Any] = []
    left, right = 0, 0

    def item_of(pe: str) -> Any:
        if node.list_type == "map" and pe in lhs_index and pe in rhs_index:
            return merge(lhs_index[pe], rhs_index[pe], element_type)
        return clone(rhs_index[pe]) if pe in rhs_index else clone(lhs_index[pe])

    while left < len(lhs) or right < len(rhs):
        if left < len(lhs) and right < len(rhs):
            pe = lhs[left][0]
            if pe == rhs[right][0]:
                merged_rhs.add(pe)
                out.append(item_of(pe))
                left, right = left + 1, right + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in rhs_index and next_shared is not None and next_shared != pe:
                left += 1
                continue
        if left < len(lhs):
            pe = lhs[left][0]
            if pe not in rhs_index:
                out.append(clone(lhs[left][1]))
                left += 1
                continue
            if pe in merged_rhs:
                left += 1
        if right < len(rhs):
            pe = rhs[right][0]
            merged_rhs.add(pe)
            out.append(item_of(pe))
            right += 1
    return out


def remove(value: Any, paths: set[FieldPath], node: Type, prefix: FieldPath = ()) -> Any:
    """typed/remove.go: drop the fields and items at `paths` (with what is under them)."""
    node = type_of(node, value)
    if isinstance(value, dict) and node.kind == "map":
        result = {}
        for key, child in value.items():
            path = (*prefix, f"f:{key}")
            if path in paths:
                continue
            result[key] = (
                remove(child, paths, node.field(key), path) if _below(path, paths) else child
            )
        return result
    if isinstance(value, list) and node.kind == "list" and node.list_type != "atomic":
        kept = []
        for item in value:
            path = (*prefix, _key_element(item, node))
            if path in paths:
                continue
            kept.append(
                remove(item, paths, node.element or DEDUCED, path) if _below(path, paths) else item
            )
        return kept
    return value


def _below(path: FieldPath, paths: set[FieldPath]) -> bool:
    length = len(path)
    return any(len(p) > length and p[:length] == path for p in paths)


# -- managers ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Manager:
    """A managedFields entry's identity (BuildManagerIdentifier: no apiVersion for appliers)."""

    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """conflict.go printManager."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


Managed = dict[tuple[str, str, str, str], tuple[Manager, set[FieldPath], str]]


_PARSED: dict[tuple[str, str], Managed] = {}


def read_managed(body: Body) -> Managed:
    """The object's managedFields as sets (parsed once per stored version)."""
    meta = body.get("metadata") or {}
    key = (str(meta.get("uid")), str(meta.get("resourceVersion")))
    cached = _PARSED.get(key)
    if cached is None:
        if len(_PARSED) > 50_000:
            _PARSED.clear()
        cached = _PARSED[key] = _parse_managed(body)
    return {identity: (m, set(paths), t) for identity, (m, paths, t) in cached.items()}


def _parse_managed(body: Body) -> Managed:
    managed: Managed = {}
    for entry in (body.get("metadata") or {}).get("managedFields") or ():
        manager = Manager(
            entry.get("manager", ""),
            entry.get("operation", "Update"),
            entry.get("apiVersion", ""),
            entry.get("subresource", ""),
        )
        managed[manager.identity] = (
            manager,
            from_fields_v1(entry.get("fieldsV1") or {}),
            entry.get("time", ""),
        )
    return managed


def write_managed(body: Body, managed: Managed) -> None:
    entries = []
    for manager, paths, time in managed.values():
        if not paths:
            continue
        entry: Body = {"manager": manager.manager, "operation": manager.operation,
                       "apiVersion": manager.api_version, "time": time,
                       "fieldsType": "FieldsV1", "fieldsV1": as_fields_v1(paths)}  # fmt: skip
        if manager.subresource:
            entry["subresource"] = manager.subresource
        entries.append(entry)
    # sortEncodedManagedFields: by operation (Apply before Update), then time, then manager
    entries.sort(
        key=lambda e: (
            e["operation"],
            e["time"],
            e["manager"],
            e["apiVersion"],
            e.get("subresource", ""),
        )
    )
    if entries:
        body["metadata"]["managedFields"] = entries
    else:
        body["metadata"].pop("managedFields", None)


def _named(paths: set[FieldPath]) -> set[FieldPath]:
    """fieldpath.Set.EnsureNamedFieldsAreMembers: the struct fields on the way to a member are
    members too, so a manager that stops applying a list or map gives up the field itself."""
    found = set(paths)
    for path in paths:
        for end in range(1, len(path)):
            if path[end - 1].startswith("f:"):
                found.add(path[:end])
    return found


def _path_text(path: FieldPath) -> str:
    """fieldpath.Path String: .spec.replicas, [name="app"], [=value]."""
    text = ""
    for element in path:
        if element.startswith("f:"):
            text += "." + element[2:]
        elif element.startswith("k:"):
            keys = json.loads(element[2:])
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif element.startswith("v:"):
            text += f"[={element[2:]}]"
        else:
            text += f"[{element[2:]}]"
    return text


def conflict_error(
    conflicts: list[tuple[Manager, FieldPath]], plural: str, group: str, name: str
) -> ApiError:
    """errors.NewApplyConflict with conflict.go's getConflictMessage."""
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {manager.describe()}: {_path_text(path)}"
        )
    else:
        by_manager: dict[str, list[str]] = {}
        for manager, path in conflicts:
            by_manager.setdefault(manager.describe(), []).append(_path_text(path))
        lines = []
        for described in sorted(by_manager):
            lines.append(f"conflicts with {described}:")
            lines += [f"- {p}" for p in by_manager[described]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(
        409,
        "Conflict",
        message,
        {"causes": [{"reason": "FieldManagerConflict", "message": f"conflict with {m.describe()}",
                     "field": _path_text(p)} for m, p in conflicts],
         "name": name, "group": group, "kind": plural},
    )  # fmt: skip


def compare(
    old: Body, new: Body, node: Type
) -> tuple[set[FieldPath], set[FieldPath], set[FieldPath]]:
    """typed/compare.go: (added, modified, removed) field paths from `old` to `new`, walking
    both objects together and skipping what is equal."""
    added: set[FieldPath] = set()
    modified: set[FieldPath] = set()
    removed: set[FieldPath] = set()
    if old != new:
        _compare(old, new, node, (), added, modified, removed)
    return added, modified, removed


def _entry_set(key: str, value: Any, node: Type, path: FieldPath, found: set[FieldPath]) -> None:
    """The paths one map entry contributes (visitMapItems)."""
    child_path = (*path, f"f:{key}")
    _walk_set(value, node.field(key), child_path, found)
    if value is None or (isinstance(value, dict) and not value) or key not in node.fields:
        found.add(child_path)


def _item_set(item: Any, node: Type, path: FieldPath, found: set[FieldPath]) -> None:
    item_path = (*path, _key_element(item, node))
    found.add(item_path)
    if node.list_type == "map":
        _walk_set(item, node.element or DEDUCED, item_path, found)


def _compare(
    old: Any,
    new: Any,
    node: Type,
    path: FieldPath,
    added: set[FieldPath],
    modified: set[FieldPath],
    removed: set[FieldPath],
) -> None:
    node = type_of(node, new if new is not None else old)
    if node.kind == "map" and not node.atomic and isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            if key not in new:
                _entry_set(key, old[key], node, path, removed)
            elif key not in old:
                _entry_set(key, new[key], node, path, added)
            elif old[key] != new[key]:
                child_path = (*path, f"f:{key}")
                child_node = node.field(key)
                a, b = old[key], new[key]
                empty = a is None or b is None or a == {} or b == {}
                if empty or (key not in node.fields and not isinstance(a, dict)):
                    if isinstance(a, dict) and isinstance(b, dict):
                        _compare(a, b, child_node, child_path, added, modified, removed)
                    else:
                        modified.add(child_path)
                else:
                    _compare(a, b, child_node, child_path, added, modified, removed)
        return
    if (
        node.kind == "list"
        and node.list_type != "atomic"
        and isinstance(old, list)
        and isinstance(new, list)
    ):
        before = {_key_element(item, node): item for item in old}
        after = {_key_element(item, node): item for item in new}
        for element, item in after.items():
            if element not in before:
                _item_set(item, node, path, added)
            elif node.list_type == "map" and before[element] != item:
                _compare(before[element], item, node.element or DEDUCED, (*path, element),
                         added, modified, removed)  # fmt: skip
        for element, item in before.items():
            if element not in after:
                _item_set(item, node, path, removed)
        return
    if old != new:
        modified.add(path)


def _scope(paths: set[FieldPath], subresource: str | None, has_status: bool) -> set[FieldPath]:
    """The fields a write may own: status only through /status, and not through the main
    endpoint of a kind with a status subresource (the strategies' GetResetFields)."""
    paths = _owned(paths)
    if subresource == "status":
        return {p for p in paths if p[:1] == ("f:status",)}
    if has_status:
        return {p for p in paths if p[:1] != ("f:status",)}
    return paths


def update(
    live: Body,
    new: Body,
    node: Type,
    manager: Manager,
    now: str,
    *,
    subresource: str | None,
    has_status: bool,
) -> None:
    """Updater.Update: the manager owns what it changed; the others lose it. Writes
    `new.metadata.managedFields`."""
    managed = read_managed(live)
    added, modified, removed = compare(live, new, node)
    changed = _scope(added | modified, subresource, has_status)
    gone = _scope(removed, subresource, has_status)
    for identity, (other, paths, time) in list(managed.items()):
        if identity != manager.identity:
            managed[identity] = (other, paths - changed - gone, time)
    _, mine, _ = managed.get(manager.identity, (manager, set(), now))
    if changed or manager.identity in managed:
        managed[manager.identity] = (
            manager,
            (mine - gone) | changed,
            now if changed else managed[manager.identity][2],
        )
    write_managed(new, managed)


def apply(
    live: Body,
    config: Body,
    node: Type,
    manager: Manager,
    now: str,
    *,
    force: bool,
    has_status: bool,
    plural: str,
    group: str,
) -> Body:
    """Updater.Apply on an existing object: the merged object with its managedFields set."""
    managed = read_managed(live)
    config_set = _scope(field_set(config, node), None, has_status)
    merged = merge(live, config, node)
    last = managed.get(manager.identity, (manager, set(), ""))[1]
    if config_set == last and merged == live:
        return live  # the same configuration again: nothing to change, nobody to ask
    others = {i: v for i, v in managed.items() if i != manager.identity}
    if last - config_set:
        owned_by_others: set[FieldPath] = set().union(*(p for _, p, _ in others.values()))
        forgotten = _named(last) - _named(config_set) - _named(owned_by_others)
        if forgotten:
            merged = remove(merged, forgotten, node)
    added, modified, removed = compare(live, merged, node)
    changing = _owned(added | modified)
    conflicts = [
        (other, path)
        for _, (other, paths, _) in sorted(others.items())
        for path in sorted(paths & changing)
    ]
    if conflicts and not force:
        raise conflict_error(conflicts, plural, group, live["metadata"]["name"])
    for identity, (other, paths, time) in others.items():
        managed[identity] = (other, paths - changing - _owned(removed), time)
    previous_time = managed.get(manager.identity, (manager, set(), ""))[2]
    changed = bool(added | modified | removed) or config_set != last
    managed[manager.identity] = (
        manager,
        config_set,
        now if changed or not previous_time else previous_time,
    )
    write_managed(merged, managed)
    return merged


def created(
    body: Body, source: Body, node: Type, manager: Manager, now: str, *, has_status: bool
) -> None:
    """A new object: its creator owns every field of `source` (a create: the defaulted object;
    an apply: exactly its configuration)."""
    paths = _scope(field_set(source, node), None, has_status)
    managed: Managed = {manager.identity: (manager, paths, now)} if paths else {}
    write_managed(body, managed)


def keep_timestamps_of_a_noop(old: Body, new: Body) -> None:
    """endpoints/handlers/fieldmanager/equality.go IgnoreManagedFieldsTimestampsTransformer: a
    write that changes nothing but managedFields times keeps the old times, so re-applying the
    same configuration is a no-op (no new resourceVersion)."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    old_entries = old_meta.get("managedFields") or []
    new_entries = new_meta.get("managedFields") or []
    if len(old_entries) != len(new_entries):
        return
    untimed = [{k: v for k, v in e.items() if k != "time"} for e in old_entries]
    if untimed != [{k: v for k, v in e.items() if k != "time"} for e in new_entries]:
        return
    rest_old = {**old, "metadata": {k: v for k, v in old_meta.items() if k != "managedFields"}}
    rest_new = {**new, "metadata": {k: v for k, v in new_meta.items() if k != "managedFields"}}
    if rest_old == rest_new and old_entries:
        new_meta["managedFields"] = old_entries
