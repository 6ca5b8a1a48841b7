"""The control plane's loops, simplified, running in the emulator's event loop.

Each controller is level-triggered like its original in pkg/controller: an informer event
(every store change reaches `notice`) queues the key of the object to sync, and the sync
reads the current state and writes what should change, through the emulator's own write
path (as the system, without authorisation). A test can slow them down
(`controller_latency_seconds`) to see the races a real cluster has.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .quantity import parse_quantity
from .store import Body, Event, Resource, clone

if TYPE_CHECKING:
    from .server import ApiEmulator

NAMESPACES: Resource = ("", "v1", "namespaces")
CLAIMS: Resource = ("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES: Resource = ("storage.k8s.io", "v1", "storageclasses")

Sync = Callable[[str | None, str], None]
# The controllers' context: no request's user, so their writes are never authorised as one.
_SYSTEM = contextvars.Context()


class Controllers:
    """The work queue every controller shares: (controller, namespace, name), deduplicated."""

    def __init__(self, api: ApiEmulator, latency: float) -> None:
        self.api = api
        self.latency = latency
        self._pending: collections.OrderedDict[tuple[str, str | None, str], None] = (
            collections.OrderedDict()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._syncs: dict[str, Sync] = {
            "garbagecollector": self._sync_garbage,
            "namespace": self._sync_namespace,
            "volume": self._sync_volume,
        }
        self.listeners: list[Callable[[Resource, Body, bool], None]] = []

    def register(self, name: str, sync: Sync) -> None:
        self._syncs[name] = sync

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for resource in self.api.store.resources():
            for body in self.api.store.all(resource):
                self.notice(Event("ADDED", resource, body, 0))

    # -- the informer side ------------------------------------------------------------------

    def notice(self, event: Event) -> None:
        """Called for every change in the store: queue what must look at it."""
        body = event.body
        meta = body["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        resource = event.resource
        gc_finalizers = {"orphan", "foregroundDeletion"} & set(meta.get("finalizers") or ())
        if event.type == "DELETED" or (meta.get("deletionTimestamp") and gc_finalizers):
            self.enqueue("garbagecollector", None, meta["uid"])
        if event.type == "DELETED":  # an owner deleting in the foreground may be free now
            for ref in meta.get("ownerReferences") or ():
                self.enqueue("garbagecollector", None, ref.get("uid", ""))
        if resource == NAMESPACES and meta.get("deletionTimestamp"):
            self.enqueue("namespace", None, name)
        if resource == CLAIMS and event.type != "DELETED":
            self.enqueue("volume", namespace, name)
        if resource == STORAGE_CLASSES:
            for claim in self.api.store.all(CLAIMS):
                self.enqueue("volume", claim["metadata"]["namespace"], claim["metadata"]["name"])
        for listener in self.listeners:
            listener(resource, body, event.type == "DELETED")

    def enqueue(self, controller: str, namespace: str | None, name: str) -> None:
        self._pending[controller, namespace, name] = None
        self._schedule()

    def enqueue_after(
        self, delay: float, controller: str, namespace: str | None, name: str
    ) -> None:
        if self._loop is not None:
            self._loop.call_later(
                max(delay, 0.0), self.enqueue, controller, namespace, name, context=_SYSTEM
            )

    def call_soon_threadsafe(self, action: Callable[[], None]) -> None:
        """Run `action` in the emulator's loop (a test's thread must not touch the store)."""
        if self._loop is None:
            action()
        else:
            self._loop.call_soon_threadsafe(action, context=_SYSTEM)

    def _schedule(self) -> None:
        if self._scheduled or self._loop is None:
            return
        self._scheduled = True
        if self.latency:
            self._loop.call_later(self.latency, self._drain, context=_SYSTEM)
        else:
            # in a context of its own: not the one of the request whose write woke it up
            self._loop.call_soon(self._drain, context=_SYSTEM)

    def _drain(self) -> None:
        """Sync what is queued (and what those syncs queue) for a few milliseconds at a time,
        so that the server answers requests in between."""
        self._scheduled = False
        deadline = time.monotonic() + 0.005
        while self._pending:
            (controller, namespace, name), _ = self._pending.popitem(last=False)
            try:
                self._syncs[controller](namespace, name)
            except ApiError as error:
                if not _namespace_terminating(error):
                    self.api.controller_errors.append(f"{controller} {namespace}/{name}: {error!r}")
                    self.enqueue_after(1.0, controller, namespace, name)
            except Exception as error:  # a real controller logs, requeues and goes on
                self.api.controller_errors.append(f"{controller} {namespace}/{name}: {error!r}")
                self.enqueue_after(1.0, controller, namespace, name)
            if self.latency or time.monotonic() > deadline:
                break  # with a latency, one key per tick: it applies between every step
        if self._pending:
            self._schedule()

    # -- garbage collector (pkg/controller/garbagecollector) ----------------------------------

    def _sync_garbage(self, _: str | None, uid: str) -> None:
        """attemptToDeleteItem and orphanDependents for the owner with this uid."""
        store = self.api.store
        owner = store.by_uid(uid)
        if owner is not None:
            resource, body = owner
            finalizers = body["metadata"].get("finalizers") or []
            if "orphan" in finalizers:
                # orphanDependents: take the owner out of every dependent's ownerReferences,
                # then remove the orphan finalizer.
                for dep_resource, dependent in store.dependents(uid):
                    updated = clone(dependent)
                    refs = [
                        r for r in updated["metadata"]["ownerReferences"] if r.get("uid") != uid
                    ]
                    if refs:
                        updated["metadata"]["ownerReferences"] = refs
                    else:
                        del updated["metadata"]["ownerReferences"]
                    self.api.system_update(dep_resource, dependent, updated)
                self._drop_finalizer(resource, body, "orphan")
            elif "foregroundDeletion" in finalizers:
                dependents = store.dependents(uid)
                for dep_resource, dependent in dependents:
                    if not dependent["metadata"].get("deletionTimestamp"):
                        self.api.delete(dep_resource, dependent, "Foreground")
                blocking = [
                    d
                    for _, d in dependents
                    if any(
                        r.get("uid") == uid and r.get("blockOwnerDeletion")
                        for r in d["metadata"].get("ownerReferences") or ()
                    )
                ]
                if not blocking:
                    self._drop_finalizer(resource, body, "foregroundDeletion")
            return
        # The owner is gone: every dependent whose owners are all gone goes too (background);
        # one that still has a living owner only loses the dangling reference.
        for dep_resource, dependent in store.dependents(uid):
            refs = dependent["metadata"].get("ownerReferences") or []
            living = [r for r in refs if r.get("uid") != uid and store.by_uid(r.get("uid", ""))]
            if living:
                updated = clone(dependent)
                updated["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self.api.system_update(dep_resource, dependent, updated)
            elif not dependent["metadata"].get("deletionTimestamp"):
                self.api.delete(dep_resource, dependent)

    def _drop_finalizer(self, resource: Resource, body: Body, finalizer: str) -> None:
        updated = clone(body)
        updated["metadata"]["finalizers"] = [
            f for f in updated["metadata"].get("finalizers") or [] if f != finalizer
        ]
        if not updated["metadata"]["finalizers"]:
            del updated["metadata"]["finalizers"]
        self.api.system_update(resource, body, updated)

    # -- namespace controller (pkg/controller/namespace/deletion) -----------------------------

    def _sync_namespace(self, _: str | None, name: str) -> None:
        """A terminating namespace: delete everything in it, then drop the kubernetes finalizer."""
        store = self.api.store
        namespace = store.get(NAMESPACES, None, name)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for resource in store.resources():
            if not self.api.info(resource).namespaced:
                continue
            for body in store.all(resource):
                if body["metadata"].get("namespace") != name:
                    continue
                remaining += 1
                if not body["metadata"].get("deletionTimestamp"):
                    self.api.delete(resource, body)
        if remaining:
            self.enqueue_after(0.2, "namespace", None, name)
            return
        spec_finalizers = (namespace.get("spec") or {}).get("finalizers") or []
        if spec_finalizers:
            updated = clone(namespace)
            updated["spec"]["finalizers"] = []
            # with no finalizer left the write itself deletes the namespace
            self.api.system_update(NAMESPACES, namespace, updated, subresource="finalize")
        elif not namespace["metadata"].get("finalizers"):
            self.api.remove(NAMESPACES, namespace)

    # -- volume binding and expansion (pv controller, external-provisioner/-resizer) ----------

    def _sync_volume(self, namespace: str | None, name: str) -> None:
        """Bind a pending claim whose class provisions immediately (a new volume as big as the
        request); grow a bound claim's capacity to its request once expansion is allowed."""
        claim = self.api.store.get(CLAIMS, namespace, name)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return
        spec, status = claim.get("spec") or {}, claim.get("status") or {}
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        class_name = spec.get("storageClassName")
        storage_class = (
            self.api.store.get(STORAGE_CLASSES, None, class_name) if class_name else None
        )
        if status.get("phase") != "Bound":
            if storage_class is None or not requested:
                return  # no provisioner for it: Pending, as on a real cluster
            bound = clone(claim)
            bound["spec"]["volumeName"] = f"pvc-{claim['metadata']['uid']}"
            bound["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bind-completed"] = (
                "yes"
            )
            bound["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = "yes"
            bound = self.api.system_update(CLAIMS, claim, bound)
            with_status = clone(bound)
            with_status["status"] = {
                "phase": "Bound",
                "accessModes": list(spec.get("accessModes") or []),
                "capacity": {"storage": requested},
            }
            self.api.system_update(CLAIMS, bound, with_status, subresource="status")
            return
        capacity = (status.get("capacity") or {}).get("storage")
        if requested and capacity and parse_quantity(requested) > parse_quantity(capacity):
            grown = clone(claim)
            grown["status"]["capacity"]["storage"] = requested
            self.api.system_update(CLAIMS, claim, grown, subresource="status")


def _owner_ref(body: Body, api_version: str, kind: str, *, controller: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
    }
    if controller:
        ref["controller"] = True
        ref["blockOwnerDeletion"] = True
    return ref


def _namespace_terminating(error: ApiError) -> bool:
    """NamespaceLifecycle's refusal of new objects in a namespace being deleted: expected for
    a controller whose namespace goes (the real ones log it and drop the key), not a bug."""
    return error.status == 403 and "because it is being terminated" in error.message
