"""A Kubernetes API for the operator tests, held to the real API server's rules where they matter.

kmock provides the HTTP server and the bundled list of built-in resources; everything else is
here, one module per part of the API machinery, each rule citing the Kubernetes source it
follows (each has its own test in ``test_emulator.py``):

- ``store``: objects indexed by resource, namespace, name, label, uid and owner; one
  cluster-wide ``resourceVersion`` bumped on every write and never on a no-op; a bounded change
  log that watches resume from (older versions are ``410 Gone``); watch fan-out that
  serialises each event once.
- ``selectors``: label selectors as ``labels/selector.go`` parses them (``=``, ``==``, ``!=``,
  ``in``, ``notin``, ``key``, ``!key``, ``gt``, ``lt``; 400 when they do not parse) and the
  ``metadata.name``/``metadata.namespace`` field selectors. Every list and watch is recorded
  with its selectors (``emulator.selectors_for(plural)``), so a test can assert that a
  client's watches are label-filtered on the server.
- ``server``: the write path of the API server's handlers: lists of any scope as
  ``<Kind>List``; ``uid``, ``creationTimestamp``, ``generation`` (bumped when anything but
  ``metadata`` and ``status`` changes, and when deletion starts), ``generateName``;
  optimistic concurrency; watches from a ``resourceVersion`` or from "now" (with
  ``sendInitialEvents`` and its bookmark), ended after ``timeoutSeconds``; the ``status``
  and ``scale`` subresources; JSON merge patch and JSON patch; finalizers and the
  garbage-collection finalizers of each propagation policy; NamespaceLifecycle (no objects
  in a missing or terminating namespace); DefaultStorageClass and PersistentVolumeClaimResize
  admission; CRDs served (and ``Established``) once created, re-served when edited.
- ``strategies``: defaulting of the built-in kinds the operator writes (Deployments,
  StatefulSets, pod templates, Services with an allocated ``clusterIP``, claims, Secrets'
  ``stringData`` folded into ``data``, NetworkPolicies) and the update rules that refuse
  with 422 what the real validation refuses: the StatefulSet spec allowlist, a Deployment's
  selector, a Service's cluster IP, a claim's spec but a bound claim's storage request (never
  below its capacity), ``immutable: true`` Secrets and ConfigMaps.
- ``crd``: custom resources pruned, defaulted and validated against their CRD's structural
  schema (``fieldValidation`` Strict/Warn/Ignore), and their ``x-kubernetes-validations``
  CEL rules, transition rules on ``oldSelf`` included, with ratcheting of unchanged values.
- ``fieldmanager``: server-side apply with ``metadata.managedFields`` per manager (fieldsV1),
  merged by the kind's schema (list items by their keys), fields a manager stops applying
  removed (then defaulted), 409 conflicts with another manager's fields unless ``force``.
- ``rbac``: bearer-token authentication (over HTTPS, as kubectl sends tokens only there),
  RBAC from the ClusterRoles, Roles and bindings in the API, and the
  OwnerReferencesPermissionEnforcement admission plugin.
- ``controllers``: the garbage collector (background, foreground and orphan deletion as
  ``pkg/controller/garbagecollector`` does them), the namespace controller (a deleted
  namespace is emptied first), volume binding and expansion.
- ``workloads``: Deployment, ReplicaSet, StatefulSet and HorizontalPodAutoscaler controllers
  and the kubelet, with the status fields and conditions the real ones report.

Test support that no API server has: ``fail(method, path_glob, status, times)`` makes the next
``times`` requests (``None``: every one until ``clear_faults()``) whose method and path match
(``fnmatch`` glob on the URL path, query excluded) answer with an error ``Status`` of that
code and nothing else happens, so a test can make one child's write fail;
``crash_loop(image)`` makes pods of an image crash-loop; with ``pods_ready=False`` pods wait
for ``set_ready(namespace, workload)``; ``advance(seconds)`` moves the emulator's clock (a
progress deadline passes at once); ``controller_latency_seconds`` slows the control plane to
show races; ``sent(plural, namespace, name)`` returns the body a client last created or
applied; ``requests_served`` counts requests by (user, verb, resource) for the benchmark.

Honest limits, on purpose (the kind suite covers the real thing):

- Server-side apply follows structured-merge-diff for the kinds the operator writes, but
  managed fields are not converted between versions, a strategic merge patch is a JSON merge
  patch (lists replace, no `$patch` directives), and the conflict between two Update
  managers' writes is never an error (as on a real server, only applies conflict).
- Built-in kinds are not validated against their OpenAPI schema (serve no ``/openapi``; use
  kubectl's ``--validate=false``) and get only the defaults and update rules listed above;
  the PVC "spec is immutable" message leaves out the diff the real one appends. CEL has
  Kubernetes' ``quantity`` library but not its ``lists``, ``strings``, ``url``, ``ip``,
  ``cidr`` or ``format`` libraries, no cost budget and no ``optionalOldSelf``.
- Controllers are simplified: no scheduler or nodes (every pod runs on one node at once),
  no ControllerRevisions or PersistentVolumes objects, pods terminate at once (no grace
  period), the HPA only keeps its target within min/max (there is no metrics server), a
  claim grows as soon as its request does, no minReadySeconds, no pod disruption budgets.
- JSON and YAML bodies only: protobuf is answered 415, and kubectl's typed commands
  (``kubectl create namespace``, ``kubectl create deployment``) do not fall back to JSON;
  ``kubectl apply -f``, ``get``, ``patch``, ``wait``, ``delete``, ``scale`` and
  ``rollout status`` work.
- Each served version of a kind is stored on its own: no conversion between versions
  (``autoscaling/v1`` and ``autoscaling/v2`` HorizontalPodAutoscalers are separate objects).
- Authentication knows only the tokens the emulator issued (no certificates, no
  impersonation); RBAC has no aggregated ClusterRoles and no default roles but discovery for
  every authenticated user; no ``dryRun``, no ``deletecollection``, no bookmarks
  but the one that ends ``sendInitialEvents`` (kubectl wait needs it), no ``Table`` output
  (kubectl prints lists itself), no pagination (``limit`` is ignored: one chunk).
"""

from .server import ApiEmulator

__all__ = ["ApiEmulator"]
