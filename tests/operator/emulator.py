"""A small Kubernetes API for the operator tests: kmock's emulator plus what kopf and kubectl use.

kmock's ``KubernetesEmulator`` gives us the HTTP server, the API discovery documents
(``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``) built from a bundled list of
the built-in resources, the ``Status`` error format, and an in-memory store of objects with
their history (``emulator.objects[resource, namespace, name]``). Out of the box it merges dicts
and knows nothing of the API machinery's rules, so this subclass serves every request on a
resource path itself, with these behaviours (each has its own test in ``test_emulator.py``):

- lists of any scope (one namespace, all namespaces, cluster-scoped kinds such as namespaces),
  answered as ``<Kind>List`` with ``apiVersion`` and ``metadata.resourceVersion``; equality
  label selectors and the ``metadata.name``/``metadata.namespace`` field selectors;
- one cluster-wide ``resourceVersion`` counter, bumped on every write and never on a no-op;
  ``uid``, ``creationTimestamp``, ``generation`` (bumped when anything but ``metadata`` and
  ``status`` changes), ``generateName``; optimistic concurrency when a write names a
  ``resourceVersion``;
- watch streams (``?watch=true``) from a ``resourceVersion`` (or from "now" with the current
  objects as ``ADDED``; with ``sendInitialEvents`` closed by the ``initial-events-end``
  bookmark), ended after ``timeoutSeconds``; a too old version gets ``410 Gone``;
- the ``status`` subresource: writes to the main endpoint keep the stored status, writes to
  ``/status`` change only the status;
- JSON merge patch (RFC 7386), JSON patch (RFC 6902, including ``test``), and server-side apply;
- ``deletionTimestamp`` and finalizers; garbage collection of dependents by
  ``ownerReferences`` after their owner goes (background propagation; ``Orphan`` leaves them);
- CustomResourceDefinitions: creating one serves its resource (and marks it ``Established``).

Test support that no API server has: ``fail(method, path_glob, status, times)`` makes the next
``times`` requests (``None``: every one until ``clear_faults()``) whose method and path match
(``fnmatch`` glob on the URL path, query excluded) answer with an error ``Status`` of that
code and nothing else happens, so a test can make one child's write fail.

Honest limits, on purpose (the kind suite covers the real thing):

- Server-side apply is simplified to "create or replace the fields given": the applied
  config is deep-merged into the object (maps merge, lists and scalars replace), and fields
  that the same field manager applied last time but no longer lists are removed. There is
  no ``managedFields``, no per-field ownership between managers and so never a conflict;
  lists with merge keys (``containers`` by name) are replaced whole, not merged by key.
- A strategic merge patch is treated as a JSON merge patch (same caveat for lists).
- No validation at all: neither OpenAPI schemas (serve no ``/openapi``; use kubectl's
  ``--validate=false``) nor CRD schemas, defaults or CEL rules; no admission, no defaulting.
- No controllers: Deployments never get Pods, StatefulSets never get PVCs, namespaces are not
  required to exist and deleting one does not delete its contents; nothing sets status but
  clients. Garbage collection runs right after the owner is removed, within the same request.
- JSON and YAML bodies only: protobuf is answered 415, and kubectl's typed commands
  (``kubectl create namespace``, ``kubectl create deployment``) do not fall back to JSON;
  ``kubectl apply -f``, ``get``, ``patch``, ``wait`` and ``delete`` work.
- No authentication or authorisation, no ``dryRun``, no ``deletecollection``, no bookmarks
  but the one that ends ``sendInitialEvents`` (kubectl wait needs it), no ``Table`` output
  (kubectl prints lists itself), no pagination (``limit`` is ignored: one chunk).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import datetime
import fnmatch
import functools
import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml

Body = dict[str, Any]
ObjectKey = tuple[kmock.resource, str | None, str]

CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
STANDARD_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
# How many past changes a watch can resume from; older resourceVersions get 410 Gone.
WATCH_HISTORY = 10_000


@dataclasses.dataclass(frozen=True)
class Route:
    """What a resource URL addresses: /api[s]/<gv>[/namespaces/<ns>]/<plural>[/<name>[/<sub>]]."""

    resource: kmock.resource
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclasses.dataclass
class Fault:
    """An injected failure: requests matching `method` and the `path` glob get `status`."""

    method: str
    path: str
    status: int
    times: int | None  # None: until cleared


FAULT_REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid",
                 429: "TooManyRequests", 503: "ServiceUnavailable"}  # fmt: skip


@attrs.define(kw_only=True)
class ApiEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator with the API semantics described in this module's docstring."""

    watch_history: int = WATCH_HISTORY
    _revision: int = attrs.field(default=0, init=False)
    _changes: collections.deque[tuple[int, kmock.resource, Body]] = attrs.field(init=False)
    _changed: asyncio.Condition = attrs.field(factory=asyncio.Condition, init=False)
    _applied: dict[tuple[ObjectKey, str], Body] = attrs.field(factory=dict, init=False)
    _faults: list[Fault] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._changes = collections.deque(maxlen=self.watch_history)
        self.resources.load_bundled()
        # A fresh cluster has these namespaces; kubectl and kopf expect "default" to exist.
        for name in ("default", "kube-system"):
            self._revision += 1
            namespace = self._new_object(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )
            namespace["metadata"]["resourceVersion"] = str(self._revision)
            self.objects[kmock.resource("", "v1", "namespaces"), None, name] = namespace

    # -- discovery -------------------------------------------------------------------------

    async def _serve_version(self, request: kmock.Request) -> Any:
        """/api/v1 and /apis/<group>/<version>, shaped as kubectl's discovery client expects.

        kmock's version says ``groupVersion: /v1`` for the core group and gives subresources
        their parent's short names, which makes kubectl lose ``kubectl get ns``.
        """
        assert request.resource is not None
        group, version = request.resource.group, request.resource.version
        served = sorted(
            ((res, self.resources[res]) for res in self.resources if res.plural),
            key=lambda item: str(item[0].plural),
        )
        served = [
            (res, info) for res, info in served if (res.group, res.version) == (group, version)
        ]
        if not served and group != "":
            raise kmock.KubernetesResourceNotFoundError()
        entries: list[Body] = []
        for res, info in served:
            entries.append(
                {
                    "name": res.plural,
                    "singularName": info.singular or "",
                    "namespaced": bool(info.namespaced),
                    "kind": info.kind,
                    "verbs": sorted(info.verbs),
                    "shortNames": sorted(info.shortnames),
                    "categories": sorted(info.categories),
                }
            )
            for subresource in sorted(info.subresources):
                entries.append(
                    {
                        "name": f"{res.plural}/{subresource}",
                        "singularName": "",
                        "namespaced": bool(info.namespaced),
                        "kind": info.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "apiVersion": "v1",
            "kind": "APIResourceList",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries,
        }

    # -- fault injection (test support) -----------------------------------------------------

    def fail(self, method: str, path_glob: str, status: int = 500, times: int | None = 1) -> None:
        """Answer the next `times` matching requests (None: all, until cleared) with `status`.

        Safe to call from the test's thread: list operations are atomic under the GIL.
        """
        self._faults.append(Fault(method.upper(), path_glob, status, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    def _injected(self, method: str, path: str) -> kmock.KubernetesError | None:
        for fault in list(self._faults):
            if fault.method != method or not fnmatch.fnmatchcase(path, fault.path):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            return kmock.KubernetesError(
                status=fault.status,
                reason=FAULT_REASONS.get(fault.status, "InternalError"),
                message=f"injected fault: {method} {path}",
            )
        return None

    # -- HTTP entry point -------------------------------------------------------------------

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        injected = self._injected(raw.method, raw.path)
        if injected is not None:
            return await self._render_error(injected)
        route = self._route(raw.path)
        if route is None:  # discovery, /version and anything else: kmock's own behaviour
            return await super().__call__(raw)
        try:
            if route.resource not in self.resources:
                raise kmock.KubernetesNotFoundError(
                    reason="NotFound", message=f"the server could not find {raw.path}"
                )
            return await self._serve(route, raw)
        except kmock.KubernetesError as exc:
            return await self._render_error(exc)

    def _route(self, path: str) -> Route | None:
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
            resource=kmock.resource(group, version, rest[0]),
            namespace=namespace,
            name=rest[1] if len(rest) > 1 else None,
            subresource="/".join(rest[2:]) or None,
        )

    async def _serve(
        self, route: Route, raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        params = dict(raw.query)
        content_type = raw.headers.get("Content-Type", "").split(";")[0].strip()
        if raw.body_exists and "json" not in content_type and "yaml" not in content_type:
            # kubectl's typed commands try protobuf first and fall back to JSON on 415.
            raise kmock.KubernetesError(
                status=415, reason="UnsupportedMediaType", message=content_type
            )
        text = await raw.text()
        if raw.method == "GET" and params.get("watch") in ("true", "1"):
            return await self._watch(route, params, raw)
        if raw.method == "GET" and route.name is None:
            return self._json(self._list(route, params))
        if raw.method == "GET":
            return self._json(self._visible(route))
        if raw.method == "POST" and route.name is None:
            return self._json(await self._create(route, _load(text)), status=201)
        if raw.method == "PUT" and route.name is not None:
            return self._json(await self._replace(route, _load(text)))
        if raw.method == "PATCH" and route.name is not None:
            return self._json(await self._patch(route, content_type, text, params))
        if raw.method == "DELETE" and route.name is not None:
            options = _load(text) if text.strip() else {}
            policy = options.get("propagationPolicy") or params.get("propagationPolicy")
            return self._json(await self._delete(route, orphan=policy == "Orphan"))
        raise kmock.KubernetesError(status=405, reason="MethodNotAllowed", message=raw.method)

    @staticmethod
    def _json(body: Body, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.json_response(body, status=status)

    # -- reading ----------------------------------------------------------------------------

    def _key(self, route: Route, name: str | None = None) -> ObjectKey:
        namespaced = self.resources[route.resource].namespaced
        name = name or route.name
        if not name:
            raise _invalid("metadata.name: Required value")
        return (route.resource, route.namespace if namespaced else None, name)

    def _current(self, key: ObjectKey) -> Body | None:
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def _visible(self, route: Route) -> Body:
        current = self._current(self._key(route))
        if current is None:
            raise _not_found(route)
        return current

    def _matching(self, route: Route, params: dict[str, str]) -> Iterator[Body]:
        for (resource, namespace, _), obj in sorted(
            self.objects.items(), key=lambda item: (item[0][1] or "", item[0][2])
        ):
            if resource != route.resource or obj.deleted:
                continue
            if route.namespace is not None and namespace != route.namespace:
                continue
            body = obj.raw
            if _selected(body, params):
                yield copy.deepcopy(body)

    def _list(self, route: Route, params: dict[str, str]) -> Body:
        info = self.resources[route.resource]
        return {
            "apiVersion": _api_version(route.resource),
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(self._revision)},
            "items": list(self._matching(route, params)),
        }

    async def _watch(
        self, route: Route, params: dict[str, str], raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        _selected({}, params)  # refuse unsupported selectors before the stream starts
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        since = params.get("resourceVersion", "")
        if route.name:  # watching one object is watching the list with a name selector
            params = {**params, "fieldSelector": f"metadata.name={route.name}"}

        async def send(event: Body) -> None:
            await response.write(json.dumps(event).encode() + b"\n")

        try:
            async with asyncio.timeout(timeout):
                initial = params.get("sendInitialEvents") == "true"
                if since in ("", "0") or initial:  # "start at most recent": current state first
                    position = self._revision
                    for body in self._matching(route, params):
                        await send({"type": "ADDED", "object": body})
                    if initial:  # streaming lists: a bookmark tells that the state is complete
                        await send(self._initial_events_end(route, position))
                else:
                    position = int(since)
                    if self._changes and position < self._changes[0][0] - 1:
                        await send(_gone(since))
                        return response
                while True:
                    async with self._changed:
                        await self._changed.wait_for(functools.partial(self._moved_past, position))
                    for _, resource, event in self._changes_since(position):
                        if resource != route.resource:
                            continue
                        obj = event["object"]
                        namespace = obj["metadata"].get("namespace")
                        if route.namespace is not None and namespace != route.namespace:
                            continue
                        if _selected(obj, params):
                            await send(event)
                    position = self._revision
        except TimeoutError:
            pass  # timeoutSeconds elapsed: end the stream cleanly, the client re-watches
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client went away
        return response

    def _initial_events_end(self, route: Route, position: int) -> Body:
        return {
            "type": "BOOKMARK",
            "object": {
                "apiVersion": _api_version(route.resource),
                "kind": self.resources[route.resource].kind,
                "metadata": {
                    "resourceVersion": str(position),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        }

    def _changes_since(self, position: int) -> list[tuple[int, kmock.resource, Body]]:
        """The logged changes after `position`, oldest first, without scanning the whole log."""
        newer: list[tuple[int, kmock.resource, Body]] = []
        for change in reversed(self._changes):
            if change[0] <= position:
                break
            newer.append(change)
        return newer[::-1]

    def _moved_past(self, revision: int) -> bool:
        return self._revision > revision

    # -- writing ----------------------------------------------------------------------------

    def _new_object(self, body: Body) -> Body:
        meta = body.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        return body

    async def _store(self, key: ObjectKey, body: Body, event: str = "ADDED") -> Body:
        """Write one version: the single place where resourceVersion moves and watchers hear."""
        self._revision += 1
        body["metadata"]["resourceVersion"] = str(self._revision)
        if key in self.objects:
            self.objects[key].create(copy.deepcopy(body))
        else:
            self.objects[key] = copy.deepcopy(body)
        self._changes.append((self._revision, key[0], {"type": event, "object": body}))
        async with self._changed:
            self._changed.notify_all()
        return copy.deepcopy(body)

    async def _create(self, route: Route, body: Body) -> Body:
        info = self.resources[route.resource]
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        key = self._key(route, meta.get("name"))
        if info.namespaced:
            if route.namespace is None:
                raise _invalid("the namespace of the object must be in the URL")
            meta["namespace"] = route.namespace
        if self._current(key) is not None:
            raise kmock.KubernetesError(
                status=409,
                reason="AlreadyExists",
                message=f'{route.resource.plural} "{key[2]}" already exists',
            )
        body["apiVersion"] = _api_version(route.resource)
        body["kind"] = info.kind
        if "status" in info.subresources:
            body.pop("status", None)  # status is set through its own endpoint only
        body = self._new_object(body)
        if route.resource == CRDS:
            body["status"] = self._serve_crd(body)
        return await self._store(key, body)

    async def _replace(self, route: Route, body: Body) -> Body:
        key = self._key(route)
        current = self._current(key)
        if current is None:
            raise _not_found(route)
        return await self._update(route, key, current, body)

    async def _patch(
        self, route: Route, content_type: str, text: str, params: dict[str, str]
    ) -> Body:
        key = self._key(route)
        current = self._current(key)
        if content_type == "application/apply-patch+yaml":
            manager = params.get("fieldManager")
            if not manager:
                raise _invalid("fieldManager is required for apply patch")
            config = yaml.safe_load(text) or {}
            previous = self._applied.get((key, manager), {})
            self._applied[key, manager] = copy.deepcopy(config)
            if current is None:
                return await self._create(route, config)
            patched = _merge(_forget(copy.deepcopy(current), previous, config), config)
        elif current is None:
            raise _not_found(route)
        elif content_type == "application/json-patch+json":
            try:
                patched = jsonpatch.apply_patch(current, json.loads(text))
            except jsonpatch.JsonPatchTestFailed as exc:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise _invalid(str(exc)) from exc
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            patched = _merge(current, json.loads(text))
        else:
            raise kmock.KubernetesError(
                status=415, reason="UnsupportedMediaType", message=content_type
            )
        return await self._update(route, key, current, patched)

    async def _update(self, route: Route, key: ObjectKey, current: Body, new: Body) -> Body:
        info = self.resources[route.resource]
        has_status = "status" in info.subresources
        if route.subresource == "status":
            new = {**current, "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
        elif route.subresource is not None:
            raise kmock.KubernetesError(status=404, reason="NotFound", message=route.subresource)
        elif has_status:
            new = {field: value for field, value in new.items() if field != "status"}
            if "status" in current:
                new["status"] = current["status"]

        meta, old_meta = new.setdefault("metadata", {}), current["metadata"]
        wanted_version = meta.get("resourceVersion")
        if wanted_version and wanted_version != old_meta["resourceVersion"]:
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message="the object has been modified; apply your changes to the latest version",
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
            return await self._remove(key, new)  # the last finalizer is gone: delete for real
        return await self._store(key, new, "MODIFIED")

    async def _delete(self, route: Route, *, orphan: bool = False) -> Body:
        key = self._key(route)
        current = self._current(key)
        if current is None:
            raise _not_found(route)
        return await self._delete_key(key, current, orphan=orphan)

    async def _delete_key(self, key: ObjectKey, current: Body, *, orphan: bool = False) -> Body:
        meta = current["metadata"]
        if meta.get("finalizers"):
            if "deletionTimestamp" in meta:
                return current
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = 0
            return await self._store(key, current, "MODIFIED")
        return await self._remove(key, current, orphan=orphan)

    async def _remove(self, key: ObjectKey, last: Body, *, orphan: bool = False) -> Body:
        self._revision += 1
        last["metadata"]["resourceVersion"] = str(self._revision)
        self.objects[key].delete()
        for manager_key in [k for k in self._applied if k[0] == key]:
            del self._applied[manager_key]
        self._changes.append((self._revision, key[0], {"type": "DELETED", "object": last}))
        async with self._changed:
            self._changed.notify_all()
        if key[0] == CRDS:
            self._unserve_crd(last)
        if not orphan:
            await self._collect_dependents(last["metadata"]["uid"])
        return last

    async def _collect_dependents(self, owner_uid: str) -> None:
        """Background cascading deletion: dependents whose ownerReferences name the owner go too."""
        for key, obj in list(self.objects.items()):
            if obj.deleted:
                continue
            owners = obj.raw.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in owners):
                current = self._current(key)
                if current is not None:
                    await self._delete_key(key, current)

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
        now = _now()
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
        raise kmock.KubernetesError(status=400, reason="BadRequest", message=str(exc)) from exc
    if not isinstance(body, dict):
        raise kmock.KubernetesError(status=400, reason="BadRequest", message="expected an object")
    return body


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def _not_found(route: Route) -> kmock.KubernetesError:
    return kmock.KubernetesError(
        status=404,
        reason="NotFound",
        message=f'{route.resource.plural} "{route.name}" not found',
        details={"name": route.name, "kind": route.resource.plural},
    )


def _invalid(message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=422, reason="Invalid", message=message)


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


def _selected(body: Body, params: dict[str, str]) -> bool:
    """Equality-based label selectors and the metadata.name/namespace field selectors."""
    meta = body.get("metadata", {})
    labels = meta.get("labels") or {}
    for term in filter(None, params.get("labelSelector", "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term.strip() not in labels:
            return False
    fields = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
    for term in filter(None, params.get("fieldSelector", "").split(",")):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        if key.strip() not in fields:
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message=f"field selector not supported: {key}"
            )
        if (fields[key.strip()] == value.strip()) == negate:
            return False
    return True
