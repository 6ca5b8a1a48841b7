"""The emulator's HTTP surface: routing, reads, watches and the write path of every request.

A write goes the way the API server's handlers take it (staging/src/k8s.io/apiserver
pkg/endpoints/handlers: create.go, update.go, patch.go, delete.go): decode, merge the patch,
default, admit, validate, record managed fields, store; reads and watches are served from
the store. Controllers write through the same path as the system (no authorisation).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
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

from . import discovery, fieldmanager, strategies
from .clock import Clock
from .controllers import Controllers
from .crd import CrdSchema
from .errors import ApiError, FieldError, already_exists, bad_request, conflict, invalid, not_found
from .rbac import Attributes, Authenticator, Authorizer, User, owner_references_admission
from .selectors import parse_field_selector, parse_label_selector
from .store import Body, Event, Resource, Store, Watcher, clone
from .workloads import Workloads

CRDS: Resource = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES: Resource = ("", "v1", "namespaces")
STORAGE_CLASSES: Resource = ("storage.k8s.io", "v1", "storageclasses")
STANDARD_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
# How many past changes a watch can resume from; older resourceVersions get 410 Gone.
WATCH_HISTORY = 10_000
FAULT_REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid",
                 429: "TooManyRequests", 503: "ServiceUnavailable"}  # fmt: skip
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# The identity controllers write as.
SYSTEM = "kube-controller-manager"
DEFAULT_STORAGE_CLASS = "standard"
IS_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


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


@dataclasses.dataclass
class RequestContext:
    """What one request's handling needs to know beyond its body: who asks, how strictly
    unknown fields are treated (the fieldValidation parameter), and the warnings to answer."""

    user: User | None = None  # None: the control plane itself, never authorised
    field_validation: str = "Ignore"
    warnings: list[str] = dataclasses.field(default_factory=list)


REQUEST: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("request")


def _context() -> RequestContext:
    try:
        return REQUEST.get()
    except LookupError:
        return RequestContext()


@dataclasses.dataclass(frozen=True)
class ServedRequest:
    """One request as the server saw it (what kmock's request log gave before)."""

    method: str
    path: str
    query: dict[str, str]
    user: str
    verb: str
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    time: float


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
    # How long the control plane takes to react to a change (0: at once, in the next tick).
    controller_latency_seconds: float = 0.0
    # Whether pods become Ready as soon as they run (else a test says which with `set_ready`).
    pods_ready: bool = True
    store: Store = attrs.field(init=False)
    controllers: Controllers = attrs.field(init=False)
    authenticator: Authenticator = attrs.field(factory=Authenticator, init=False)
    authorizer: Authorizer = attrs.field(init=False)
    workloads: Workloads = attrs.field(init=False)
    # What a controller's sync raised (a real one logs it and retries): tests assert it is empty.
    controller_errors: list[str] = attrs.field(factory=list, init=False)
    clock: Clock = attrs.field(factory=Clock, init=False)
    # (user, verb, "<group>/<plural>[/<subresource>]") -> count, for the benchmark's per-verb cost.
    requests_served: collections.Counter[tuple[str, str, str]] = attrs.field(
        factory=collections.Counter, init=False
    )
    selections: list[Selection] = attrs.field(factory=list, init=False)
    # Every resource request, in order (`emulator.requests`); bounded, oldest dropped first.
    requests: collections.deque[ServedRequest] = attrs.field(
        factory=lambda: collections.deque(maxlen=200_000), init=False
    )
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _types: dict[Resource, fieldmanager.Type] = attrs.field(factory=dict, init=False)
    _next_ip: int = attrs.field(default=10, init=False)
    _infos: dict[Resource, kmock.ResourceInfo] = attrs.field(factory=dict, init=False)
    # (resource, namespace, name) -> the body a client last created it with or applied
    _sent: dict[tuple[Resource, str | None, str], Body] = attrs.field(factory=dict, init=False)
    # (group, version, plural) of a custom resource -> its CRD's schema for that version
    _schemas: dict[Resource, CrdSchema] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = Store(self.watch_history)
        self.authorizer = Authorizer(self.store)
        self.controllers = Controllers(self, self.controller_latency_seconds)
        self.workloads = Workloads(self.controllers, pods_ready=self.pods_ready)
        self.controllers.listeners.append(self.workloads.notice)
        self.store.listeners.append(self.controllers.notice)
        self.resources.load_bundled()
        # A fresh cluster has these namespaces (kubectl and kopf expect "default") and, as kind
        # and most clouds do, a default StorageClass (here one that allows volume expansion).
        for name in ("default", "kube-system"):
            self._bootstrap(
                NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )
        self._bootstrap(
            STORAGE_CLASSES,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": DEFAULT_STORAGE_CLASS,
                    "annotations": {IS_DEFAULT_CLASS: "true"},
                },
                "provisioner": "emulator.microshop.dev/hostpath",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": True,
            },
        )

    def _bootstrap(self, resource: Resource, body: Body) -> None:
        body = self._new_object(body)
        self._prepare(resource, body, None)
        self.store.put(resource, body, "ADDED")

    async def __aenter__(self) -> ApiEmulator:
        await super().__aenter__()
        self.controllers.start(asyncio.get_running_loop())
        return self

    def system_update(
        self, resource: Resource, current: Body, new: Body, *, subresource: str | None = None
    ) -> Body:
        """A controller's write: the same path as a client's, as the system."""
        meta = current["metadata"]
        route = Route(resource, meta.get("namespace"), meta["name"], subresource)
        return self.update(route, current, new, manager=SYSTEM)

    def scale(self, resource: Resource, target: Body, replicas: int, *, manager: str) -> Body:
        """A write to the target's scale subresource, as an HPA or `kubectl scale` makes it."""
        meta = target["metadata"]
        route = Route(resource, meta.get("namespace"), meta["name"], "scale")
        scale = {"spec": {"replicas": replicas}}
        return self.update(route, target, _with_scale(target, scale), manager=manager)

    def system_create(self, resource: Resource, namespace: str | None, body: Body) -> Body:
        return self.create(Route(resource, namespace, None, None), body, manager=SYSTEM)

    # -- test support that no API server has -------------------------------------------------

    def fail(self, method: str, path_glob: str, status: int = 500, times: int | None = 1) -> None:
        """Answer the next `times` matching requests (None: all, until cleared) with `status`.

        Safe to call from the test's thread: list operations are atomic under the GIL.
        """
        self._faults.append(Fault(method.upper(), path_glob, status, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    def crash_loop(self, image: str, crashing: bool = True) -> None:
        """Pods running `image` never become ready: their container restarts in CrashLoopBackOff
        (a new version that does not start). `crashing=False` heals the image."""

        def change() -> None:
            if crashing:
                self.workloads.crashing_images.add(image)
            else:
                self.workloads.crashing_images.discard(image)
            self.workloads.resync_pods()

        self.controllers.call_soon_threadsafe(change)

    def set_ready(self, namespace: str, workload: str, ready: bool = True) -> None:
        """Whether the pods of a Deployment or StatefulSet pass their readiness probes (with
        `pods_ready=False` none does until a test says so: a database that does not answer yet)."""

        def change() -> None:
            self.workloads.readiness[namespace, workload] = ready
            self.workloads.resync_pods()

        self.controllers.call_soon_threadsafe(change)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (progress deadlines expire without waiting)."""

        def change() -> None:
            self.clock.advance(seconds)
            self.workloads.resync_deployments()

        self.controllers.call_soon_threadsafe(change)

    def selectors_for(self, plural: str, *, user: str | None = None) -> list[Selection]:
        """The lists and watches of `plural` the server was asked for (optionally by one user)."""
        return [
            s
            for s in list(self.selections)
            if s.resource[2] == plural and (user is None or s.user == user)
        ]

    def sent(self, plural: str, namespace: str | None, name: str) -> Body | None:
        """The body a client last created this object with or applied to it, as it was sent
        (before defaulting): what a test compares with what the client meant to write."""
        for (resource, ns, found), body in list(self._sent.items()):
            if (resource[2], ns, found) == (plural, namespace, name):
                return clone(body)
        return None

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
                user = self.authenticator.user_of(raw.headers.get("Authorization"))
                public = raw.path.rstrip("/") in ("/version", "/healthz", "/livez", "/readyz")
                if "system:authenticated" not in user.groups and not user.superuser and not public:
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'forbidden: User "{user.name}" cannot get path "{raw.path}"',
                    )
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

    def plural_of(self, api_version: str, kind: str) -> str | None:
        """The resource name a kind is served under (a RESTMapper lookup)."""
        group, _, version = api_version.rpartition("/")
        for resource in self.resources:
            served = (resource.group, resource.version) == (group, version) and resource.plural
            if served and self.resources[resource].kind == kind:
                return str(resource.plural)
        return None

    def issue_token(self, user: User) -> str:
        """A bearer token the emulator will authenticate as `user`."""
        return self.authenticator.issue(user)

    def type_of(self, resource: Resource) -> fieldmanager.Type:
        """The schema server-side apply merges by: the CRD's, else the built-in kind's."""
        found = self._types.get(resource)
        if found is None:
            schema = self._schemas.get(resource)
            if schema is not None:
                found = fieldmanager.crd_type(schema.schema)
            else:
                kind = str(self.info(resource).kind)
                found = (
                    fieldmanager.builtin_type(resource[0], resource[1], kind)
                    or fieldmanager.untyped()
                )
            self._types[resource] = found
        return found

    def info(self, resource: Resource) -> kmock.ResourceInfo:
        found = self._infos.get(resource)
        if found is None:  # kmock's lookup parses the key each time: remember the answers
            found = self._infos[resource] = self.resources[kmock.resource(*resource)]
        return found

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
        identity = self.authenticator.user_of(raw.headers.get("Authorization"))
        user = identity.name
        context = RequestContext(identity, params.get("fieldValidation") or "Warn")
        REQUEST.set(context)
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
        self.requests.append(
            ServedRequest(
                raw.method,
                raw.path,
                params,
                user,
                verb,
                route.resource,
                route.namespace,
                route.name,
                route.subresource,
                self.clock.time(),
            )
        )
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
        if route.subresource not in (None, "status", "scale"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if (
            route.subresource is not None
            and route.subresource not in self.info(route.resource).subresources
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        named = route.name
        if verb in ("list", "watch") and named is None:  # requestinfo.go: a name selector names
            named = parse_field_selector(params.get("fieldSelector")).name()
        self.authorizer.check(
            Attributes(
                identity,
                verb,
                route.group,
                route.plural,
                route.subresource or "",
                self.namespace_of(route),
                named,
            )
        )
        if watching:
            return await self._watch(route, params, raw)
        if raw.method == "GET" and route.name is None:
            return self._json(self._list(route, params))
        if raw.method == "GET":
            return self._json(self._read(route))
        if raw.method == "POST" and route.name is None:
            body = _load(text)
            made = self.create(route, clone(body), manager=_manager(params, raw))
            self._sent[
                route.resource, made["metadata"].get("namespace"), made["metadata"]["name"]
            ] = body
            return self._json(made, 201)
        if raw.method == "PUT" and route.name is not None:
            return self._json(self._replace(route, _load(text), _manager(params, raw)))
        if raw.method == "PATCH" and route.name is not None:
            return self._json(self._patch(route, content_type, text, params, raw))
        if raw.method == "DELETE" and route.name is not None:
            options = _load(text) if text.strip() else {}
            policy = options.get("propagationPolicy") or params.get("propagationPolicy")
            if options.get("orphanDependents") is True:
                policy = "Orphan"
            return self._json(self._delete(route, policy))
        raise ApiError(405, "MethodNotAllowed", raw.method)

    @staticmethod
    def _json(body: Body, status: int = 200) -> aiohttp.web.Response:
        response = aiohttp.web.Response(
            body=json.dumps(body, separators=(",", ":")).encode(),
            status=status,
            content_type="application/json",
        )
        for warning in _context().warnings:  # RFC 7234 warning headers, as the apiserver sends
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            response.headers.add("Warning", f'299 - "{escaped}"')
        return response

    # -- reading ----------------------------------------------------------------------------

    def namespace_of(self, route: Route) -> str | None:
        return route.namespace if self.info(route.resource).namespaced else None

    def _current(self, route: Route, name: str | None = None) -> Body | None:
        name = name or route.name
        if not name:
            raise bad_request("name is required")
        return self.store.get(route.resource, self.namespace_of(route), name)

    def _read(self, route: Route) -> Body:
        current = self._current(route)
        if current is None:
            raise not_found(route.plural, route.group, route.name)
        if route.subresource == "scale":
            return _scale_of(current)
        return current

    def _list(self, route: Route, params: dict[str, str]) -> Body:
        info = self.info(route.resource)
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
                "kind": self.info(route.resource).kind,
                "metadata": {
                    "resourceVersion": str(position),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        }

    # -- the write path ---------------------------------------------------------------------

    def _new_object(self, body: Body) -> Body:
        meta = body.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.clock.stamp()
        meta["generation"] = 1
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        return body

    def create(
        self, route: Route, body: Body, *, manager: str = SYSTEM, applied: Body | None = None
    ) -> Body:
        """POST to a collection, or an apply that finds nothing (`applied`: its configuration)."""
        info = self.info(route.resource)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise ApiError(
                422, "Invalid", "metadata.name: Required value: name or generateName is required"
            )
        if info.namespaced:
            if route.namespace is None:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on"
                    " the request"
                )
            meta["namespace"] = route.namespace
            self._namespace_must_accept(route.namespace)
        else:
            meta.pop("namespace", None)
        if self._current(route, meta["name"]) is not None:
            raise already_exists(route.plural, route.group, meta["name"])
        body["apiVersion"] = _api_version(route.resource)
        body["kind"] = info.kind
        if "status" in info.subresources:
            body.pop("status", None)  # status is set through its own endpoint only
        meta.pop("managedFields", None)
        body = self._new_object(body)
        self._coerce(route.resource, body)
        self._prepare(route.resource, body, None)
        self._admit(route.resource, body, None)
        errors = self._validate(route.resource, body, None)
        if errors:
            raise invalid(info.kind, route.group, meta["name"], errors)
        operation = "Apply" if applied is not None else "Update"
        fieldmanager.created(
            body,
            applied if applied is not None else body,
            self.type_of(route.resource),
            fieldmanager.Manager(manager, operation, body["apiVersion"]),
            self.clock.stamp(),
            has_status="status" in info.subresources,
        )
        if route.resource == CRDS:
            body["status"] = self._serve_crd(body)
        return self.store.put(route.resource, body, "ADDED").body

    def _namespace_must_accept(self, namespace: str) -> None:
        """NamespaceLifecycle admission: no new objects in a namespace that is missing or going."""
        found = self.store.get(NAMESPACES, None, namespace)
        if found is None:
            raise not_found("namespaces", "", namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being"
                " terminated",
            )

    def _replace(self, route: Route, body: Body, manager: str) -> Body:
        current = self._current(route)
        if current is None:
            raise not_found(route.plural, route.group, route.name)
        if route.subresource == "scale":
            return _scale_of(
                self.update(route, current, _with_scale(current, body), manager=manager)
            )
        return self.update(route, current, body, manager=manager)

    def _patch(
        self,
        route: Route,
        content_type: str,
        text: str,
        params: dict[str, str],
        raw: aiohttp.web.BaseRequest,
    ) -> Body:
        current = self._current(route)
        if content_type == "application/apply-patch+yaml":
            manager = params.get("fieldManager")
            if not manager:
                raise bad_request("PATCH requests with apply content type require fieldManager")
            config = _load_yaml(text)
            if not isinstance(config, dict):
                raise bad_request("the apply configuration must be an object")
            schema = self._schemas.get(route.resource)
            if schema is not None:  # unknown fields of an applied config are never merged
                self._coerce_config(schema, config)
            self._sent[route.resource, self.namespace_of(route), str(route.name)] = clone(config)
            if current is None:
                identity = _context().user
                if identity is not None:  # an apply that creates is authorised as a create
                    self.authorizer.check(
                        Attributes(
                            identity,
                            "create",
                            route.group,
                            route.plural,
                            "",
                            self.namespace_of(route),
                            route.name,
                        )
                    )
                return self.create(route, clone(config), manager=manager, applied=config)
            info = self.info(route.resource)
            config.setdefault("metadata", {}).pop("managedFields", None)
            merged = fieldmanager.apply(
                current,
                config,
                self.type_of(route.resource),
                fieldmanager.Manager(manager, "Apply", current["apiVersion"]),
                self.clock.stamp(),
                force=params.get("force") in ("true", "1"),
                has_status="status" in info.subresources,
                plural=route.plural,
                group=route.group,
            )
            return self.update(route, current, merged, manager=manager, applied=True)
        if current is None:
            raise not_found(route.plural, route.group, route.name)
        target = _scale_of(current) if route.subresource == "scale" else current
        if content_type == "application/json-patch+json":
            try:
                patched = jsonpatch.apply_patch(target, json.loads(text))
            except jsonpatch.JsonPatchTestFailed as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            patched = _merge(target, _load(text))
        else:
            raise ApiError(415, "UnsupportedMediaType", content_type)
        manager = _manager(params, raw)
        if route.subresource == "scale":
            return _scale_of(
                self.update(route, current, _with_scale(current, patched), manager=manager)
            )
        return self.update(route, current, patched, manager=manager)

    def update(
        self,
        route: Route,
        current: Body,
        new: Body,
        *,
        manager: str = SYSTEM,
        applied: bool = False,
    ) -> Body:
        """A replace of `current` by `new`, as PUT (and every patch after merging) does;
        `applied`: `new` is the result of an apply, with its managedFields already set."""
        info = self.info(route.resource)
        has_status = "status" in info.subresources
        if route.subresource == "status":
            # Only status and metadata change here: the rest is shared with the stored version
            # (stored bodies are never changed in place), not copied, but for a custom
            # resource, whose decoding below prunes and defaults in place.
            status = new.get("status")
            new = {**current, "metadata": clone(current["metadata"])}
            if route.resource in self._schemas:
                new = clone(new)
            new.pop("status", None)
            if status is not None:
                new["status"] = clone(status)
        elif route.subresource == "scale":
            new = clone(new)  # _with_scale made the whole object with only spec.replicas changed
        elif route.subresource == "finalize":  # a namespace's spec.finalizers, nothing else
            finalizers = (new.get("spec") or {}).get("finalizers") or []
            new = clone(current)
            new.setdefault("spec", {})["finalizers"] = finalizers
        else:
            new = clone(new)
            if has_status:  # status changes only through its subresource
                new.pop("status", None)
                if "status" in current:
                    new["status"] = clone(current["status"])

        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        old_meta = current["metadata"]
        wanted_version = meta.get("resourceVersion")
        if wanted_version and wanted_version != old_meta["resourceVersion"]:
            raise conflict(
                route.plural,
                route.group,
                str(old_meta["name"]),
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
            else:
                meta.pop(field, None)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
            if field in old_meta:
                meta[field] = old_meta[field]
        if not applied:  # what a client sends as managedFields is not taken as the truth
            meta.pop("managedFields", None)
            if "managedFields" in old_meta:
                meta["managedFields"] = old_meta["managedFields"]
        new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
        self._coerce(route.resource, new)
        if route.subresource != "status":
            self._prepare(route.resource, new, current)
        if _desired_part(new, has_status) != _desired_part(current, has_status):
            meta["generation"] = old_meta.get("generation", 0) + 1
        self._admit(route.resource, new, current)
        errors = self._validate(route.resource, new, current, route.subresource)
        if errors:
            raise invalid(info.kind, route.group, old_meta["name"], errors)
        if not applied:
            fieldmanager.update(
                current,
                new,
                self.type_of(route.resource),
                fieldmanager.Manager(
                    manager, "Update", current["apiVersion"], route.subresource or ""
                ),
                self.clock.stamp(),
                subresource=route.subresource,
                has_status=has_status,
            )
        fieldmanager.keep_timestamps_of_a_noop(current, new)
        if new == current:
            return current  # a no-op write changes nothing, not even the resourceVersion
        if route.resource == CRDS and route.subresource is None:
            self._unserve_crd(current)  # an edited CRD serves its new versions and schemas
            new["status"] = self._serve_crd(new)
        if "deletionTimestamp" in meta and _finalized(route.resource, new):
            return self.remove(route.resource, new)  # the last finalizer is gone
        return self.store.put(route.resource, new, "MODIFIED").body

    def _delete(self, route: Route, policy: str | None) -> Body:
        current = self._current(route)
        if current is None:
            raise not_found(route.plural, route.group, route.name)
        return self.delete(route.resource, current, policy)

    def delete(self, resource: Resource, current: Body, policy: str | None = None) -> Body:
        """DELETE, with the garbage-collection finalizers the store adds for the policy
        (apiserver pkg/registry/generic/registry/store.go deletionFinalizersForGarbageCollection,
        markAsDeleting)."""
        meta = current["metadata"]
        if resource == NAMESPACES:
            return self._delete_namespace(current)
        finalizers = [
            f for f in meta.get("finalizers") or [] if f not in ("orphan", "foregroundDeletion")
        ]
        policy = policy or _default_policy(meta.get("finalizers") or [])
        if policy == "Orphan":
            finalizers.append("orphan")
        elif policy == "Foreground":
            finalizers.append("foregroundDeletion")
        if not finalizers:
            return self.remove(resource, current)
        if "deletionTimestamp" in meta and finalizers == list(meta.get("finalizers") or []):
            return current
        marked = clone(current)
        if "deletionTimestamp" not in meta and meta.get("generation"):
            marked["metadata"]["generation"] = meta["generation"] + 1
        marked["metadata"].setdefault("deletionTimestamp", self.clock.stamp())
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        marked["metadata"]["finalizers"] = finalizers
        return self.store.put(resource, marked, "MODIFIED").body

    def _delete_namespace(self, current: Body) -> Body:
        """The namespace registry's Delete: a namespace with spec.finalizers turns Terminating and
        the namespace controller empties it first (pkg/registry/core/namespace/storage)."""
        if current["metadata"].get("deletionTimestamp"):
            return current
        if not (current.get("spec") or {}).get("finalizers"):
            return self.remove(NAMESPACES, current)
        marked = clone(current)
        marked["metadata"]["deletionTimestamp"] = self.clock.stamp()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        marked["status"] = {"phase": "Terminating"}
        return self.store.put(NAMESPACES, marked, "MODIFIED").body

    def remove(self, resource: Resource, last: Body) -> Body:
        """Delete for real (the garbage collector then sees the DELETED event)."""
        meta = last["metadata"]
        gone = self.store.remove(resource, last).body
        self._sent.pop((resource, meta.get("namespace"), meta["name"]), None)
        if resource == CRDS:
            self._unserve_crd(last)
        return gone

    # -- per-kind rules -----------------------------------------------------------------------

    def _prepare(self, resource: Resource, body: Body, old: Body | None) -> None:
        """Defaulting (the registry strategies' PrepareForCreate/Update and SetDefaults_*)."""
        group, _, plural = resource
        if resource == NAMESPACES and old is None:
            strategies.default_namespace(body)
        elif (group, plural) == ("apps", "deployments"):
            strategies.default_deployment(body)
        elif (group, plural) == ("apps", "statefulsets"):
            strategies.default_statefulset(body)
        elif (group, plural) == ("", "services"):
            strategies.default_service(body, old, self._allocate_cluster_ip)
        elif (group, plural) == ("", "persistentvolumeclaims"):
            strategies.default_claim(body)
        elif (group, plural) == ("", "secrets"):
            strategies.fold_string_data(body)
        elif (group, plural) == ("networking.k8s.io", "networkpolicies"):
            strategies.default_network_policy(body)

    def _allocate_cluster_ip(self) -> str:
        self._next_ip += 1
        address = strategies.SERVICE_CIDR[self._next_ip]
        return str(address)

    def _admit(self, resource: Resource, new: Body, old: Body | None) -> None:
        """The admission plugins that matter for what the operator writes."""
        group, _, plural = resource
        identity = _context().user
        if identity is not None:
            meta = new["metadata"]
            owner_references_admission(
                self.authorizer,
                identity,
                Attributes(
                    identity,
                    "update" if old else "create",
                    group,
                    plural,
                    "",
                    meta.get("namespace"),
                    meta.get("name"),
                ),
                new,
                old,
                self.plural_of,
            )
        if (group, plural) == ("", "persistentvolumeclaims"):
            if old is None:
                self._default_storage_class(new)
            else:
                self._admit_claim_resize(new, old)

    def _default_storage_class(self, claim: Body) -> None:
        """DefaultStorageClass admission (plugin/pkg/admission/storage/storageclass/setdefault):
        a claim without storageClassName gets the class annotated as the default."""
        spec = claim.setdefault("spec", {})
        if "storageClassName" in spec:
            return
        for storage_class in self.store.all(STORAGE_CLASSES):
            annotations = storage_class["metadata"].get("annotations") or {}
            if annotations.get(IS_DEFAULT_CLASS) == "true":
                spec["storageClassName"] = storage_class["metadata"]["name"]
                return

    def _admit_claim_resize(self, new: Body, old: Body) -> None:
        """PersistentVolumeClaimResize admission (plugin/pkg/admission/storage/persistentvolume/
        resize/admission.go Validate, allowResize): a claim grows only when bound and when its
        StorageClass says allowVolumeExpansion."""
        requested = ((new.get("spec") or {}).get("resources", {}).get("requests") or {}).get(
            "storage"
        )
        before = ((old.get("spec") or {}).get("resources", {}).get("requests") or {}).get("storage")
        if not requested or not before:
            return
        if strategies.parse_quantity(requested) <= strategies.parse_quantity(before):
            return
        name = old["metadata"]["name"]
        if (old.get("status") or {}).get("phase") != "Bound":
            raise ApiError(
                403,
                "Forbidden",
                f'persistentvolumeclaims "{name}" is forbidden: Only bound persistent volume'
                " claims can be expanded",
            )
        class_name = (new.get("spec") or {}).get("storageClassName") or ""
        old_class = (old.get("spec") or {}).get("storageClassName") or ""
        storage_class = self.store.get(STORAGE_CLASSES, None, class_name) if class_name else None
        if (
            not class_name
            or class_name != old_class
            or storage_class is None
            or storage_class.get("allowVolumeExpansion") is not True
        ):
            raise ApiError(
                403,
                "Forbidden",
                f'persistentvolumeclaims "{name}" is forbidden: only dynamically provisioned pvc '
                "can be resized and the storageclass that provisions the pvc must support resize",
                {"name": name, "group": "", "kind": "persistentvolumeclaims"},
            )

    def _coerce_config(self, schema: CrdSchema, config: Body) -> None:
        unknown = schema.prune(config)
        context = _context()
        if unknown and context.field_validation == "Strict":
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in unknown)
            )
        if context.field_validation == "Warn":
            context.warnings += [f'unknown field "{path}"' for path in unknown]

    def _coerce(self, resource: Resource, body: Body) -> None:
        """A custom resource's decoding: prune what its schema does not declare (refused under
        fieldValidation=Strict, warned about under Warn), then apply the schema's defaults."""
        schema = self._schemas.get(resource)
        if schema is None:
            return
        unknown = schema.prune(body)
        context = _context()
        if unknown and context.field_validation == "Strict":
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in unknown)
            )
        if context.field_validation == "Warn":
            context.warnings += [f'unknown field "{path}"' for path in unknown]
        schema.default(body)

    def _validate(
        self, resource: Resource, new: Body, old: Body | None, subresource: str | None = None
    ) -> list[FieldError]:
        group, _, plural = resource
        key = (group, plural)
        errors: list[FieldError] = []
        schema = self._schemas.get(resource)
        if schema is not None:
            errors += schema.validate(new, old, only="status" if subresource == "status" else None)
        if key == ("apps", "deployments"):
            errors += strategies.validate_deployment(new)
            if old is not None:
                errors += strategies.validate_deployment_update(new, old)
        elif key == ("apps", "statefulsets"):
            errors += strategies.validate_statefulset(new)
            if old is not None:
                errors += strategies.validate_statefulset_update(new, old)
        elif key == ("", "services") and old is not None:
            errors += strategies.validate_service_update(new, old)
        elif key == ("", "persistentvolumeclaims") and old is not None:
            errors += strategies.validate_claim_update(new, old)
        elif key == ("", "secrets") and old is not None:
            errors += strategies.validate_immutable_data(new, old, ("data",))
        elif key == ("", "configmaps") and old is not None:
            errors += strategies.validate_immutable_data(new, old, ("data", "binaryData"))
        return errors

    # -- CustomResourceDefinitions ----------------------------------------------------------

    def _serve_crd(self, crd: Body) -> Body:
        self._infos.clear()
        self._types.clear()
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema:
                self._schemas[spec["group"], version["name"], names["plural"]] = CrdSchema(schema)
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
        self._infos.clear()
        spec = crd.get("spec", {})
        for version in spec.get("versions", []):
            resource = kmock.resource(spec["group"], version["name"], spec["names"]["plural"])
            if resource in self.resources:
                del self.resources[resource]
            self._schemas.pop((spec["group"], version["name"], spec["names"]["plural"]), None)


# -- pure helpers ------------------------------------------------------------------------------


def _load(text: str) -> Body:
    try:
        body = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise bad_request(str(exc)) from exc
    if not isinstance(body, dict):
        raise bad_request("expected an object")
    return body


def _load_yaml(text: str) -> Any:
    """An apply body: JSON (what most clients send, and valid YAML) parsed as JSON, the rest with
    libyaml when it is there (pure-Python YAML costs tens of milliseconds per object)."""
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader) or {}
    except yaml.YAMLError as exc:
        raise bad_request(f"error decoding YAML: {exc}") from exc


def _manager(params: dict[str, str], raw: aiohttp.web.BaseRequest) -> str:
    """The field manager: the fieldManager parameter, else the client's user agent up to '/'
    (apiserver pkg/endpoints/handlers/rest.go prefixFromUserAgent)."""
    if params.get("fieldManager"):
        return params["fieldManager"]
    agent = raw.headers.get("User-Agent", "")
    return agent.split("/", 1)[0][:128] or "unknown"


def _finalized(resource: Resource, body: Body) -> bool:
    if body["metadata"].get("finalizers"):
        return False
    return resource != NAMESPACES or not (body.get("spec") or {}).get("finalizers")


def _default_policy(finalizers: list[str]) -> str:
    """shouldOrphanDependents / shouldDeleteDependentsInForeground with no options: an existing
    GC finalizer decides, else background."""
    if "orphan" in finalizers:
        return "Orphan"
    if "foregroundDeletion" in finalizers:
        return "Foreground"
    return "Background"


def _scale_of(body: Body) -> Body:
    """The autoscaling/v1 Scale of a Deployment or StatefulSet (the scale subresource)."""
    meta = body["metadata"]
    status = body.get("status") or {}
    selector = ((body.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (body.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


def _with_scale(current: Body, scale: Body) -> Body:
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int):
        raise ApiError(422, "Invalid", "spec.replicas: Invalid value: must be an integer")
    updated = clone(current)
    updated.setdefault("spec", {})["replicas"] = replicas
    wanted = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted:
        updated["metadata"]["resourceVersion"] = wanted
    return updated


def _api_version(resource: Resource) -> str:
    return f"{resource[0]}/{resource[1]}" if resource[0] else resource[1]


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
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result
