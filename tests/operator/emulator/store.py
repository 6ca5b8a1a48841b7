"""The emulator's storage: current objects indexed by resource, namespace, name and label, a
bounded change log to resume watches from, and watch fan-out that encodes each event once.

Like etcd behind a real API server, every write moves one cluster-wide revision (the
objects' `resourceVersion`); a watch from a revision older than the log keeps is `410 Gone`.
Stored bodies are never changed in place: a write stores a new dict, so readers (lists,
watch events) share them without copying.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .selectors import FieldSelector, LabelSelector

Body = dict[str, Any]
# (group, version, plural): each served version is stored on its own (no conversion).
Resource = tuple[str, str, str]
Key = tuple[str | None, str]  # (namespace or None for cluster-scoped kinds, name)


@dataclasses.dataclass
class Event:
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    body: Body
    revision: int
    _encoded: bytes | None = None

    @property
    def namespace(self) -> str | None:
        namespace: str | None = self.body["metadata"].get("namespace")
        return namespace

    def encoded(self) -> bytes:
        """The watch line for this event, serialised once however many watchers get it."""
        if self._encoded is None:
            self._encoded = (
                json.dumps({"type": self.type, "object": self.body}, separators=(",", ":")) + "\n"
            ).encode()
        return self._encoded


@dataclasses.dataclass(eq=False)
class Watcher:
    """One open watch stream: what it selects and the queue its events wait in."""

    resource: Resource
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[Event] = dataclasses.field(default_factory=asyncio.Queue)

    def wants(self, event: Event) -> bool:
        if self.namespace is not None and event.namespace != self.namespace:
            return False
        body = event.body
        return self.labels.matches(body["metadata"].get("labels")) and self.fields.matches(body)


class Store:
    def __init__(self, history: int) -> None:
        self.revision = 0
        self._objects: dict[Resource, dict[Key, Body]] = collections.defaultdict(dict)
        self._namespaces: dict[Resource, dict[str | None, dict[str, Body]]] = (
            collections.defaultdict(lambda: collections.defaultdict(dict))
        )
        self._labels: dict[Resource, dict[tuple[str, str], set[Key]]] = collections.defaultdict(
            lambda: collections.defaultdict(set)
        )
        self._log: collections.deque[Event] = collections.deque(maxlen=history)
        self._forgotten = 0  # the newest revision no longer in the log
        self._watchers: dict[Resource, set[Watcher]] = collections.defaultdict(set)
        self._by_uid: dict[str, tuple[Resource, Key]] = {}
        # owner uid -> the objects whose ownerReferences name it (what the garbage collector
        # walks when the owner goes)
        self._dependents: dict[str, set[tuple[Resource, Key]]] = collections.defaultdict(set)
        # called with every event, after watchers have it (the controllers' informers)
        self.listeners: list[Callable[[Event], None]] = []

    # -- reading ----------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> Body | None:
        """The stored body (shared: never change it)."""
        return self._objects[resource].get((namespace, name))

    def select(
        self,
        resource: Resource,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> list[Body]:
        """Matching objects ordered by namespace and name, as etcd's key order lists them."""
        name = fields.name()
        candidates: Iterable[tuple[Key, Body]]
        if name is not None:
            found = (
                [((namespace, name), self._objects[resource][namespace, name])]
                if namespace is not None and (namespace, name) in self._objects[resource]
                else [(k, b) for k, b in self._objects[resource].items() if k[1] == name]
            )
            candidates = found
        elif equalities := labels.equalities():
            keys = set.intersection(
                *(self._labels[resource].get(pair, set()) for pair in equalities)
            )
            if namespace is not None:
                keys = {key for key in keys if key[0] == namespace}
            candidates = ((key, self._objects[resource][key]) for key in keys)
        elif namespace is not None:
            candidates = (
                ((namespace, n), b) for n, b in self._namespaces[resource][namespace].items()
            )
        else:
            candidates = self._objects[resource].items()
        matching = [
            (key, body)
            for key, body in candidates
            if (namespace is None or key[0] == namespace)
            and labels.matches(body["metadata"].get("labels"))
            and fields.matches(body)
        ]
        matching.sort(key=lambda item: (item[0][0] or "", item[0][1]))
        return [body for _, body in matching]

    def by_uid(self, uid: str) -> tuple[Resource, Body] | None:
        found = self._by_uid.get(uid)
        if found is None:
            return None
        body = self._objects[found[0]].get(found[1])
        return None if body is None else (found[0], body)

    def dependents(self, uid: str) -> list[tuple[Resource, Body]]:
        """The objects with an ownerReference to `uid`, in a stable order."""
        found = [
            (resource, self._objects[resource][key])
            for resource, key in self._dependents.get(uid, ())
            if key in self._objects[resource]
        ]
        found.sort(
            key=lambda item: (
                item[0],
                item[1]["metadata"].get("namespace") or "",
                item[1]["metadata"]["name"],
            )
        )
        return found

    def all(self, resource: Resource) -> Iterator[Body]:
        return iter(list(self._objects[resource].values()))

    def resources(self) -> list[Resource]:
        return [resource for resource, objects in self._objects.items() if objects]

    def count(self) -> int:
        return sum(len(objects) for objects in self._objects.values())

    # -- writing ----------------------------------------------------------------------------

    def put(self, resource: Resource, body: Body, event_type: str) -> Event:
        """Store a new version: the one place where the revision moves and watchers hear."""
        self.revision += 1
        body["metadata"]["resourceVersion"] = str(self.revision)
        key = _key(body)
        previous = self._objects[resource].get(key)
        if previous is not None:
            self._unindex(resource, key, previous)
        self._objects[resource][key] = body
        self._namespaces[resource][key[0]][key[1]] = body
        for pair in (body["metadata"].get("labels") or {}).items():
            self._labels[resource][pair].add(key)
        self._by_uid[body["metadata"]["uid"]] = (resource, key)
        for ref in body["metadata"].get("ownerReferences") or ():
            self._dependents[ref.get("uid", "")].add((resource, key))
        return self._record(Event(event_type, resource, body, self.revision))

    def remove(self, resource: Resource, body: Body) -> Event:
        """Delete for real; the DELETED event carries the last state with a new revision."""
        key = _key(body)
        previous = self._objects[resource].pop(key)
        self._unindex(resource, key, previous)
        self._by_uid.pop(previous["metadata"].get("uid", ""), None)
        self.revision += 1
        last = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.revision)}}
        return self._record(Event("DELETED", resource, last, self.revision))

    def _unindex(self, resource: Resource, key: Key, body: Body) -> None:
        self._namespaces[resource][key[0]].pop(key[1], None)
        for pair in (body["metadata"].get("labels") or {}).items():
            keys = self._labels[resource].get(pair)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._labels[resource][pair]
        for ref in body["metadata"].get("ownerReferences") or ():
            dependents = self._dependents.get(ref.get("uid", ""))
            if dependents is not None:
                dependents.discard((resource, key))
                if not dependents:
                    del self._dependents[ref.get("uid", "")]

    def _record(self, event: Event) -> Event:
        if len(self._log) == self._log.maxlen and self._log:
            self._forgotten = self._log[0].revision
        self._log.append(event)
        for watcher in self._watchers.get(event.resource, ()):
            if watcher.wants(event):
                watcher.queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)
        return event

    # -- watching ---------------------------------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        self._watchers[watcher.resource].add(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers[watcher.resource].discard(watcher)

    def forgotten(self, revision: int) -> bool:
        """Whether changes after `revision` may be missing from the log (compacted)."""
        return revision < self._forgotten

    def since(self, revision: int, watcher: Watcher) -> list[Event]:
        """The logged changes after `revision` the watcher wants, oldest first."""
        newer: list[Event] = []
        for event in reversed(self._log):
            if event.revision <= revision:
                break
            if event.resource == watcher.resource and watcher.wants(event):
                newer.append(event)
        return newer[::-1]


def _key(body: Body) -> Key:
    meta = body["metadata"]
    return meta.get("namespace"), meta["name"]


def clone(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists, scalars): several times faster than
    copy.deepcopy, which the write path would otherwise spend most of its time in."""
    if isinstance(value, dict):
        return {
            key: clone(item) if isinstance(item, dict | list) else item
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [clone(item) if isinstance(item, dict | list) else item for item in value]
    return value
