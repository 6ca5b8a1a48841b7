"""The emulator's HTTP surface: routing, reads, watches and the write path of every request."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import fnmatch
import json
import secrets
import uuid
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml

from . import discovery
from .clock import Clock
from .errors import ApiError, already_exists, bad_request, conflict, not_found
from .selectors import parse_field_selector, parse_label_selector
from .store import Body, Event, Resource, Store, Watcher

CRDS: Resource = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES: Resource = ("", "v1", "namespaces")
STANDARD_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
# How many past changes a watch can resume from; older resourceVersions get 410 Gone.
WATCH_HISTORY = 10_000
FAULT_REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid",
                 429: "TooManyRequests", 503: "ServiceUnavailable"}  # fmt: skip
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclasses.dataclass(frozen=True)
class Route:
    """What a resource URL addresses: /api[s]/<gv>[/namespaces/<ns>]/<plural>[/<name>[/<sub>]]."""

    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def group(self) -> str:
        return self.resource[0]

    @property
    def plural(self) -> str:
        return self.resource[2]


@dataclasses.dataclass
class Fault:
    """An injected failure: requests matching `method` and the `path` glob get `status`."""

    method: str
    path: str
    status: int
    times: int | None  # None: until cleared


@dataclasses.dataclass(frozen=True)
class Selection:
    """A list or watch as the server saw it, so a test can tell a filtered watch from a full one."""

    user: str
    verb: str
    resource: Resource
    namespace: str | None
    label_selector: str
    field_selector: str


@attrs.define(kw_only=True)
class ApiEmulator(kmock.KubernetesEmulator):
    """kmock's HTTP server and bundled resource list, with the API machinery of the package."""

    watch_history: int = WATCH_HISTORY
    store: Store = attrs.field(init=False)
    clock: Clock = attrs.field(factory=Clock, init=False)
    # (user, verb, "<group>/<plural>[/<subresource>]") -> count, for the benchmark's per-verb cost.
    requests_served: collections.Counter[tuple[str, str, str]] = attrs.field(
        factory=collections.Counter, init=False
    )
    selections: list[Selection] = attrs.field(factory=list, init=False)
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _applied: dict[tuple[Resource, str | None, str, str], Body] = attrs.field(
        factory=dict, init=False
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = Store(self.watch_history)
        self.resources.load_bundled()
        # A fresh cluster has these namespaces; kubectl and kopf expect "default" to exist.
        for name in ("default", "kube-system"):
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self.store.put(NAMESPACES, self._new_object(namespace), "ADDED")

    # -- test support that no API server has -------------------------------------------------

    def fail(self, method: str, path_glob: str, status: int = 500, times: int | None = 1) -> None:
        """Answer the next `times` matching requests (None: all, until cleared) with `status`.

        Safe to call from the test's thread: list operations are atomic under the GIL.
        """
        self._faults.append(Fault(method.upper(), path_glob, status, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    def selectors_for(self, plural: str, *, user: str | None = None) -> list[Selection]:
        """The lists and watches of `plural` the server was asked for (optionally by one user)."""
        return [
            s
            for s in list(self.selections)
            if s.resource[2] == plural and (user is None or s.user == user)
        ]

    def _injected(self, method: str, path: str) -> ApiError | None:
        for fault in list(self._faults):
            if fault.method != method or not fnmatch.fnmatchcase(path, fault.path):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    with contextlib.suppress(ValueError):
                        self._faults.remove(fault)
            return ApiError(
                fault.status,
                FAULT_REASONS.get(fault.status, "InternalError"),
                f"injected fault: {method} {path}",
            )
        return None

    # -- HTTP entry point -------------------------------------------------------------------

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            injected = self._injected(raw.method, raw.path)
            if injected is not None:
                raise injected
            route = self._route(raw.path)
            if route is None:
                return self._json(self._discovery(raw))
            if route.resource not in self._served():
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return await self._serve(route, raw)
        except ApiError as error:
            return self._json(error.as_status(), status=error.status)

    def _served(self) -> set[Resource]:
        return {
            (str(r.group), str(r.version), str(r.plural))
            for r in self.resources
            if r.plural and r.group is not None and r.version is not None
        }

    def _info(self, resource: Resource) -> kmock.ResourceInfo:
        return self.resources[kmock.resource(*resource)]

    def _discovery(self, raw: aiohttp.web.BaseRequest) -> Body:
        parts = [part for part in raw.path.split("/") if part]
        found: Body | None = None
        if parts == ["version"]:
            found = dict(discovery.SERVER_VERSION)
        elif parts == ["api"]:
            found = discovery.api_versions()
        elif parts == ["apis"]:
            found = discovery.group_list(self.resources)
        elif len(parts) == 2 and parts[0] == "api":
            found = discovery.resource_list(self.resources, "", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            found = discovery.group(self.resources, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            found = discovery.resource_list(self.resources, parts[1], parts[2])
        elif not parts:
            found = {"paths": ["/api", "/api/v1", "/apis", "/version"]}
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return found

    @staticmethod
    def _route(path: str) -> Route | None:
        parts = [part for part in path.split("/") if part]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        # /api/v1/namespaces/<ns>/<plural>... is namespaced; /api/v1/namespaces[/<name>] is not.
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        return Route(
            resource=(group, version, rest[0]),
            namespace=namespace,
            name=rest[1] if len(rest) > 1 else None,
            subresource="/".join(rest[2:]) or None,
        )

    async def _serve(
        self, route: Route, raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        params = dict(raw.query)
        user = self._authenticate(raw)
        content_type = raw.headers.get("Content-Type", "").split(";")[0].strip()
        if raw.body_exists and "json" not in content_type and "yaml" not in content_type:
            # kubectl's typed commands try protobuf first and fall back to JSON on 415.
            raise ApiError(415, "UnsupportedMediaType", content_type)
        text = await raw.text()
        watching = raw.method == "GET" and params.get("watch") in ("true", "1")
        if raw.method == "GET":
            verb = "watch" if watching else "list" if route.name is None else "get"
        else:
            verb = VERBS.get(raw.method, raw.method.lower())
        sub = f"/{route.subresource}" if route.subresource else ""
        self.requests_served[user, verb, f"{route.group}/{route.plural}{sub}"] += 1
        if verb in ("list", "watch"):
            self.selections.append(
                Selection(
                    user,
                    verb,
                    route.resource,
                    route.namespace,
                    params.get("labelSelector", ""),
                    params.get("fieldSelector", ""),
                )
            )
        if watching:
            return await self._watch(route, params, raw)
        if raw.method == "GET" and route.name is None:
            return self._json(self._list(route, params))
        if raw.method == "GET":
            return self._json(self._read(route))
        if raw.method == "POST" and route.name is None:
            return self._json(await self._create(route, _load(text), params), status=201)
        if raw.method == "PUT" and route.name is not None:
            return self._json(await self._replace(route, _load(text), params))
        if raw.method == "PATCH" and route.name is not None:
            return self._json(await self._patch(route, content_type, text, params))
        if raw.method == "DELETE" and route.name is not None:
            options = _load(text) if text.strip() else {}
            policy = options.get("propagationPolicy") or params.get("propagationPolicy")
            return self._json(await self._delete(route, orphan=policy == "Orphan"))
        raise ApiError(405, "MethodNotAllowed", raw.method)

    def _authenticate(self, raw: aiohttp.web.BaseRequest) -> str:
        return "admin"

    @staticmethod
    def _json(body: Body, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.Response(
            body=json.dumps(body, separators=(",", ":")).encode(),
            status=status,
            content_type="application/json",
        )

    # -- reading ----------------------------------------------------------------------------

    def _namespace_of(self, route: Route) -> str | None:
        return route.namespace if self._info(route.resource).namespaced else None

    def _current(self, route: Route, name: str | None = None) -> Body | None:
        name = name or route.name
        if not name:
            raise _invalid("metadata.name: Required value")
        return self.store.get(route.resource, self._namespace_of(route), name)

    def _read(self, route: Route) -> Body:
        current = self._current(route)
        if current is None:
            raise not_found(route.plural, route.group, route.name)
        return current

    def _list(self, route: Route, params: dict[str, str]) -> Body:
        info = self._info(route.resource)
        items = self.store.select(
            route.resource,
            route.namespace,
            parse_label_selector(params.get("labelSelector")),
            parse_field_selector(params.get("fieldSelector")),
        )
        return {
            "apiVersion": _api_version(route.resource),
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(self.store.revision)},
            "items": items,
        }

    async def _watch(
        self, route: Route, params: dict[str, str], raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        fields = parse_field_selector(
            f"metadata.name={route.name}" if route.name else params.get("fieldSelector")
        )
        watcher = Watcher(
            route.resource,
            route.namespace,
            parse_label_selector(params.get("labelSelector")),
            fields,
        )
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        since = params.get("resourceVersion", "")
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        self.store.watch(watcher)  # from here on no change is missed
        try:
            async with asyncio.timeout(timeout):
                initial = params.get("sendInitialEvents") == "true"
                if since in ("", "0") or initial:  # "start at most recent": current state first
                    position = self.store.revision
                    for body in self.store.select(
                        route.resource, route.namespace, watcher.labels, watcher.fields
                    ):
                        await response.write(Event("ADDED", route.resource, body, 0).encoded())
                    if initial:  # streaming lists: a bookmark tells that the state is complete
                        await response.write(
                            (json.dumps(self._initial_events_end(route, position)) + "\n").encode()
                        )
                else:
                    position = int(since)
                    if self.store.forgotten(position):
                        await response.write((json.dumps(_gone(since)) + "\n").encode())
                        return response
                    for event in self.store.since(position, watcher):
                        await response.write(event.encoded())
                        position = event.revision
                while True:
                    event = await watcher.queue.get()
                    if event.revision > position:
                        await response.write(event.encoded())
        except TimeoutError:
            pass  # timeoutSeconds elapsed: end the stream cleanly, the client re-watches
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client went away
        finally:
            self.store.unwatch(watcher)
        return response

    def _initial_events_end(self, route: Route, position: int) -> Body:
        return {
            "type": "BOOKMARK",
            "object": {
                "apiVersion": _api_version(route.resource),
                "kind": self._info(route.resource).kind,
                "metadata": {
                    "resourceVersion": str(position),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        }

    # -- writing ----------------------------------------------------------------------------

    def _new_object(self, body: Body) -> Body:
        meta = body.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.clock.stamp()
        meta["generation"] = 1
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        return body

    async def _create(self, route: Route, body: Body, params: dict[str, str]) -> Body:
        info = self._info(route.resource)
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise _invalid("metadata.name: Required value: name or generateName is required")
        if info.namespaced:
            if route.namespace is None:
                raise _invalid("the namespace of the object must be in the URL")
            meta["namespace"] = route.namespace
        else:
            meta.pop("namespace", None)
        if self._current(route, meta["name"]) is not None:
            raise already_exists(route.plural, route.group, meta["name"])
        body["apiVersion"] = _api_version(route.resource)
        body["kind"] = info.kind
        if "status" in info.subresources:
            body.pop("status", None)  # status is set through its own endpoint only
        body = self._new_object(body)
        if route.resource == CRDS:
            body["status"] = self._serve_crd(body)
        return self.store.put(route.resource, body, "ADDED").body

    async def _replace(self, route: Route, body: Body, params: dict[str, str]) -> Body:
        current = self._read(route)
        return await self._update(route, current, body)

    async def _patch(
        self, route: Route, content_type: str, text: str, params: dict[str, str]
    ) -> Body:
        current = self._current(route)
        if content_type == "application/apply-patch+yaml":
            manager = params.get("fieldManager")
            if not manager:
                raise _invalid("fieldManager is required for apply patch")
            config = yaml.safe_load(text) or {}
            key = (route.resource, self._namespace_of(route), str(route.name), manager)
            previous = self._applied.get(key, {})
            self._applied[key] = copy.deepcopy(config)
            if current is None:
                return await self._create(route, config, params)
            patched = _merge(_forget(copy.deepcopy(current), previous, config), config)
        elif current is None:
            raise not_found(route.plural, route.group, route.name)
        elif content_type == "application/json-patch+json":
            try:
                patched = jsonpatch.apply_patch(current, json.loads(text))
            except jsonpatch.JsonPatchTestFailed as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise _invalid(str(exc)) from exc
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            patched = _merge(current, json.loads(text))
        else:
            raise ApiError(415, "UnsupportedMediaType", content_type)
        return await self._update(route, current, patched)

    async def _update(self, route: Route, current: Body, new: Body) -> Body:
        info = self._info(route.resource)
        has_status = "status" in info.subresources
        new = copy.deepcopy(new)
        if route.subresource == "status":
            new = {**copy.deepcopy(current), "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
        elif route.subresource is not None:
            raise ApiError(404, "NotFound", route.subresource)
        elif has_status:
            new = {field: value for field, value in new.items() if field != "status"}
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])

        meta, old_meta = new.setdefault("metadata", {}), current["metadata"]
        wanted_version = meta.get("resourceVersion")
        if wanted_version and wanted_version != old_meta["resourceVersion"]:
            raise conflict(
                route.plural,
                route.group,
                str(route.name),
                "the object has been modified; please apply your changes to the latest version"
                " and try again",
            )
        for field in (
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "namespace",
            "name",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
        meta.pop("deletionTimestamp", None)
        if "deletionTimestamp" in old_meta:
            meta["deletionTimestamp"] = old_meta["deletionTimestamp"]
        new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
        if _desired_part(new, has_status) != _desired_part(current, has_status):
            meta["generation"] = old_meta.get("generation", 0) + 1
        if new == current:
            return current  # a no-op write changes nothing, not even the resourceVersion
        if "deletionTimestamp" in meta and not meta.get("finalizers"):
            return await self._remove(route.resource, new)  # the last finalizer is gone
        return self.store.put(route.resource, new, "MODIFIED").body

    async def _delete(self, route: Route, *, orphan: bool = False) -> Body:
        current = self._read(route)
        return await self._delete_object(route.resource, current, orphan=orphan)

    async def _delete_object(
        self, resource: Resource, current: Body, *, orphan: bool = False
    ) -> Body:
        meta = current["metadata"]
        if meta.get("finalizers"):
            if "deletionTimestamp" in meta:
                return current
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = self.clock.stamp()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.store.put(resource, marked, "MODIFIED").body
        return await self._remove(resource, current, orphan=orphan)

    async def _remove(self, resource: Resource, last: Body, *, orphan: bool = False) -> Body:
        meta = last["metadata"]
        gone = self.store.remove(resource, last).body
        for key in [
            k for k in self._applied if k[:3] == (resource, meta.get("namespace"), meta["name"])
        ]:
            del self._applied[key]
        if resource == CRDS:
            self._unserve_crd(last)
        if not orphan:
            await self._collect_dependents(meta["uid"])
        return gone

    async def _collect_dependents(self, owner_uid: str) -> None:
        """Background cascading deletion: dependents whose ownerReferences name the owner go too."""
        for resource in self.store.resources():
            for body in self.store.all(resource):
                owners = body["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in owners):
                    current = self.store.get(
                        resource, body["metadata"].get("namespace"), body["metadata"]["name"]
                    )
                    if current is not None:
                        await self._delete_object(resource, current)

    # -- CustomResourceDefinitions ----------------------------------------------------------

    def _serve_crd(self, crd: Body) -> Body:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            self.resources[kmock.resource(spec["group"], version["name"], names["plural"])] = (
                kmock.ResourceInfo(
                    kind=names.get("kind"),
                    singular=names.get("singular") or names.get("kind", "").lower(),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    verbs=STANDARD_VERBS,
                    shortnames=names.get("shortNames", []),
                    categories=names.get("categories", []),
                    subresources=set(version.get("subresources") or {}),
                )
            )
        now = self.clock.stamp()
        return {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            "conditions": [
                {"type": kind, "status": "True", "reason": reason, "lastTransitionTime": now}
                for kind, reason in (
                    ("NamesAccepted", "NoConflicts"),
                    ("Established", "InitialNamesAccepted"),
                )
            ],
        }

    def _unserve_crd(self, crd: Body) -> None:
        spec = crd.get("spec", {})
        for version in spec.get("versions", []):
            resource = kmock.resource(spec["group"], version["name"], spec["names"]["plural"])
            if resource in self.resources:
                del self.resources[resource]


# -- pure helpers ------------------------------------------------------------------------------


def _load(text: str) -> Body:
    try:
        body = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise bad_request(str(exc)) from exc
    if not isinstance(body, dict):
        raise bad_request("expected an object")
    return body


def _api_version(resource: Resource) -> str:
    return f"{resource[0]}/{resource[1]}" if resource[0] else resource[1]


def _invalid(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _gone(since: str) -> Body:
    return {
        "type": "ERROR",
        "object": {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "code": 410,
            "reason": "Expired",
            "message": f"too old resource version: {since}",
        },
    }


def _desired_part(body: Body, has_status: bool) -> Body:
    """What `generation` counts: everything but metadata (and status, when it is a subresource)."""
    skipped = {"metadata", "status"} if has_status else {"metadata"}
    return {key: value for key, value in body.items() if key not in skipped}


def _merge(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _forget(target: Body, previous: Body, config: Body) -> Body:
    """Drop the fields a manager applied before but no longer applies (the apply simplification)."""
    for key, old_value in previous.items():
        if key not in config:
            if key not in ("apiVersion", "kind", "metadata"):
                target.pop(key, None)
        elif all(isinstance(v, dict) for v in (old_value, config[key], target.get(key))):
            _forget(target[key], old_value, config[key])
    return target
