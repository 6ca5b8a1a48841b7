"""A Kubernetes API for the operator tests, held to the real API server's rules where they matter.

kmock provides the HTTP server and the bundled list of built-in resources; everything else is
here, one module per part of the API machinery, each rule citing the Kubernetes source it
follows (each has its own test in ``test_emulator.py``):

- ``store``: objects indexed by resource, namespace, name and label; one cluster-wide
  ``resourceVersion`` bumped on every write and never on a no-op; a bounded change log that
  watches resume from (older versions are ``410 Gone``); watch fan-out that serialises each
  event once.
- ``selectors``: label selectors as ``labels/selector.go`` parses them (``=``, ``==``, ``!=``,
  ``in``, ``notin``, ``key``, ``!key``, ``gt``, ``lt``; 400 when they do not parse) and the
  ``metadata.name``/``metadata.namespace`` field selectors. Every list and watch is recorded
  with its selectors (``emulator.selectors_for(plural)``), so a test can assert that a
  client's watches are label-filtered on the server.
- ``server``: lists of any scope answered as ``<Kind>List``; ``uid``, ``creationTimestamp``,
  ``generation`` (bumped when anything but ``metadata`` and ``status`` changes),
  ``generateName``; optimistic concurrency when a write names a ``resourceVersion``; watch
  streams from a ``resourceVersion`` or from "now" (with ``sendInitialEvents`` closed by the
  ``initial-events-end`` bookmark), ended after ``timeoutSeconds``; the ``status``
  subresource; JSON merge patch (RFC 7386) and JSON patch (RFC 6902, including ``test``);
  ``deletionTimestamp`` and finalizers; CRDs served (and ``Established``) once created.

Test support that no API server has: ``fail(method, path_glob, status, times)`` makes the next
``times`` requests (``None``: every one until ``clear_faults()``) whose method and path match
(``fnmatch`` glob on the URL path, query excluded) answer with an error ``Status`` of that
code and nothing else happens, so a test can make one child's write fail;
``requests_served`` counts requests by (user, verb, resource) for the benchmark.

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
- Each served version of a kind is stored on its own: no conversion between versions
  (``autoscaling/v1`` and ``autoscaling/v2`` HorizontalPodAutoscalers are separate objects).
- No authentication or authorisation, no ``dryRun``, no ``deletecollection``, no bookmarks
  but the one that ends ``sendInitialEvents`` (kubectl wait needs it), no ``Table`` output
  (kubectl prints lists itself), no pagination (``limit`` is ignored: one chunk).
"""

from .server import ApiEmulator

__all__ = ["ApiEmulator"]
