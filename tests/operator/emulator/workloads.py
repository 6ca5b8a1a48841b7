"""The workload controllers and the kubelet, simplified but with the real status fields.

- Deployments (pkg/controller/deployment): a ReplicaSet per pod template, named
  `<deployment>-<pod-template-hash>`; RollingUpdate within maxSurge/maxUnavailable (rolling.go
  reconcileNewReplicaSet, reconcileOldReplicaSets, cleanupUnhealthyReplicas) or Recreate;
  status as sync.go calculateStatus (observedGeneration, replicas, updatedReplicas,
  readyReplicas, availableReplicas, unavailableReplicas) with the Available condition, and the
  Progressing condition as progress.go syncRolloutStatus sets it (NewReplicaSetCreated,
  ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded after
  progressDeadlineSeconds on the emulator's clock without progress).
- ReplicaSets (pkg/controller/replicaset): pods `<replicaset>-<random>` up or down to
  spec.replicas; status replicas, fullyLabeledReplicas, readyReplicas, availableReplicas.
- StatefulSets (pkg/controller/statefulset stateful_set_control.go): pods `<set>-<ordinal>`
  (OrderedReady: one at a time, each waiting for the one before to be Running and Ready;
  Parallel: all at once), orphaned pods matching the selector adopted, a PVC per claim
  template named `<template>-<set>-<ordinal>` (stateful_set_utils.go
  getPersistentVolumeClaimName) owned by the set while persistentVolumeClaimRetentionPolicy
  .whenDeleted is Delete and by the pod being scaled away while whenScaled is Delete
  (updateClaimOwnerRefForSetAndPod), RollingUpdate from the highest ordinal down to the
  partition; status replicas, readyReplicas, availableReplicas, currentReplicas,
  updatedReplicas, currentRevision, updateRevision (`<set>-<hash>`), observedGeneration.
- The kubelet: a pod whose claims are bound is Running; it is Ready unless its image was
  marked crash-looping (then its container waits in CrashLoopBackOff, restarting) or its
  workload's readiness is held by the test.
"""

from __future__ import annotations

import functools
import json
import math
import random
from typing import TYPE_CHECKING, Any

from .clock import parse_time
from .selectors import FieldSelector, LabelSelector, selector_from_label_selector
from .store import Body, Resource, clone

if TYPE_CHECKING:
    from .controllers import Controllers

DEPLOYMENTS: Resource = ("apps", "v1", "deployments")
REPLICASETS: Resource = ("apps", "v1", "replicasets")
STATEFULSETS: Resource = ("apps", "v1", "statefulsets")
PODS: Resource = ("", "v1", "pods")
AUTOSCALERS: Resource = ("autoscaling", "v2", "horizontalpodautoscalers")
CLAIMS: Resource = ("", "v1", "persistentvolumeclaims")

HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_EVERYTHING = LabelSelector()
_NO_FIELDS = FieldSelector()
# rand.SafeEncodeString's alphabet: no vowels, no 0/1/3, so generated names spell nothing.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NODE = "emulator-node"


def template_hash(template: Body) -> str:
    """controller.ComputeHash: FNV-32a of the template, encoded with SafeEncodeString."""
    printed = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    value = _fnv32a(printed)
    return "".join(_ALPHABET[ord(ch) % len(_ALPHABET)] for ch in str(value))


@functools.lru_cache(maxsize=4096)
def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _suffix() -> str:
    return "".join(random.choice(_ALPHABET) for _ in range(5))


def _without_hash(template: Body) -> Body:
    template = clone(template)
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return template


def _resolve(value: Any, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int, or a percentage of `total`."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        scaled = int(text[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(text)


def _controller_of(body: Body) -> str | None:
    for ref in body["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _owner_ref(owner: Body, api_version: str, kind: str) -> dict[str, Any]:
    """metav1.NewControllerRef: controller and blockOwnerDeletion both true."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_ready(pod: Body) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


class Workloads:
    """The syncs of the workload controllers and the kubelet, registered with `Controllers`."""

    def __init__(self, controllers: Controllers, *, pods_ready: bool) -> None:
        self.controllers = controllers
        self.api = controllers.api
        self.pods_ready = pods_ready
        self.crashing_images: set[str] = set()
        self.readiness: dict[tuple[str, str], bool] = {}
        self._next_pod_ip = 0
        controllers.register("deployment", self.sync_deployment)
        controllers.register("replicaset", self.sync_replicaset)
        controllers.register("statefulset", self.sync_statefulset)
        controllers.register("kubelet", self.sync_pod)
        controllers.register("horizontalpodautoscaler", self.sync_autoscaler)

    # -- routing events to the controllers that care (their informers' event handlers) ---------

    def notice(self, resource: Resource, body: Body, deleted: bool) -> None:
        meta = body["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        enqueue = self.controllers.enqueue
        if resource == DEPLOYMENTS and not deleted:
            enqueue("deployment", namespace, name)
        elif resource == REPLICASETS:
            if not deleted:
                enqueue("replicaset", namespace, name)
            self._enqueue_owner(body, "Deployment", "deployment")
        elif resource == STATEFULSETS and not deleted:
            enqueue("statefulset", namespace, name)
        if resource in (DEPLOYMENTS, STATEFULSETS) and not deleted:
            for hpa in self.api.store.select(AUTOSCALERS, namespace, _EVERYTHING, _NO_FIELDS):
                if (hpa.get("spec") or {}).get("scaleTargetRef", {}).get("name") == name:
                    enqueue("horizontalpodautoscaler", namespace, hpa["metadata"]["name"])
        elif resource == PODS:
            if not deleted:
                enqueue("kubelet", namespace, name)
            self._enqueue_owner(body, "ReplicaSet", "replicaset")
            self._enqueue_owner(body, "StatefulSet", "statefulset")
            if deleted or not _controller_of(body):
                # a pod without a controller may be one a StatefulSet should adopt
                for sts in self.api.store.select(STATEFULSETS, namespace, _EVERYTHING, _NO_FIELDS):
                    enqueue("statefulset", namespace, sts["metadata"]["name"])
        elif resource == AUTOSCALERS and not deleted:
            enqueue("horizontalpodautoscaler", namespace, name)
        elif resource == CLAIMS and not deleted:
            for pod in self._pods_using_claim(namespace, name):
                enqueue("kubelet", namespace, pod["metadata"]["name"])

    def _enqueue_owner(self, body: Body, kind: str, controller: str) -> None:
        for ref in body["metadata"].get("ownerReferences") or ():
            if ref.get("kind") == kind and ref.get("controller"):
                self.controllers.enqueue(controller, body["metadata"].get("namespace"), ref["name"])

    def _pods_using_claim(self, namespace: str | None, claim: str) -> list[Body]:
        found = []
        for pod in self.api.store.select(PODS, namespace, _EVERYTHING, _NO_FIELDS):
            for volume in (pod.get("spec") or {}).get("volumes") or ():
                if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                    found.append(pod)
        return found

    def resync_pods(self) -> None:
        for pod in self.api.store.all(PODS):
            self.controllers.enqueue(
                "kubelet", pod["metadata"]["namespace"], pod["metadata"]["name"]
            )

    def resync_deployments(self) -> None:
        for deployment in self.api.store.all(DEPLOYMENTS):
            meta = deployment["metadata"]
            self.controllers.enqueue("deployment", meta["namespace"], meta["name"])

    def _owned(self, owner: Body, resource: Resource) -> list[Body]:
        uid = owner["metadata"]["uid"]
        return [
            body
            for found, body in self.api.store.dependents(uid)
            if found == resource and _controller_of(body) == uid
        ]

    # -- Deployment ---------------------------------------------------------------------------

    def sync_deployment(self, namespace: str | None, name: str) -> None:
        deployment = self.api.store.get(DEPLOYMENTS, namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        sets = sorted(
            self._owned(deployment, REPLICASETS), key=lambda rs: rs["metadata"]["creationTimestamp"]
        )
        new = next((rs for rs in sets if _without_hash(rs["spec"]["template"]) == template), None)
        old = [rs for rs in sets if rs is not new]
        conditions: list[Body] = clone((deployment.get("status") or {}).get("conditions") or [])
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        surge = _resolve(rolling.get("maxSurge", "25%"), desired, round_up=True)
        unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        if new is None:
            new = self._new_replicaset(deployment, old, desired, surge, strategy.get("type"))
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{new["metadata"]["name"]}"',
                self.api.clock.stamp(),
            )
        elif not spec.get("paused"):
            if strategy.get("type") == "Recreate":
                self._recreate(new, old, desired)
            else:
                new = self._scale_new(new, old, desired, surge)
                self._scale_old(new, old, desired, unavailable)
        self._deployment_status(deployment, new, [new, *old], conditions, desired, unavailable)

    def _new_replicaset(
        self, deployment: Body, old: list[Body], desired: int, surge: int, strategy: str | None
    ) -> Body:
        meta = deployment["metadata"]
        template = clone(deployment["spec"]["template"])
        digest = template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = clone(deployment["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        total = sum(int(rs["spec"].get("replicas", 0)) for rs in old)
        if strategy == "Recreate" and total:
            replicas = 0
        else:
            replicas = max(0, min(desired, desired + surge - total))
        revision = 1 + max(
            (
                int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
                for rs in old
            ),
            default=0,
        )
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{digest}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION_ANNOTATION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(desired),
                    "deployment.kubernetes.io/max-replicas": str(desired + surge),
                },
                "ownerReferences": [_owner_ref(deployment, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": replicas,
                "selector": selector,
                "template": template,
                "minReadySeconds": deployment["spec"].get("minReadySeconds", 0),
            },
        }
        made = self.api.system_create(REPLICASETS, meta["namespace"], body)
        annotations = dict(meta.get("annotations") or {})
        if annotations.get(REVISION_ANNOTATION) != str(revision):
            updated = clone(deployment)
            updated["metadata"]["annotations"] = {**annotations, REVISION_ANNOTATION: str(revision)}
            self.api.system_update(DEPLOYMENTS, deployment, updated)
        return made

    def _scale(self, replicaset: Body, replicas: int) -> Body:
        if int(replicaset["spec"].get("replicas", 0)) == replicas:
            return replicaset
        updated = clone(replicaset)
        updated["spec"]["replicas"] = replicas
        return self.api.system_update(REPLICASETS, replicaset, updated)

    def _recreate(self, new: Body, old: list[Body], desired: int) -> None:
        """recreate.go: old ReplicaSets to zero, and the new one up once their pods are gone."""
        for rs in old:
            self._scale(rs, 0)
        if any(self._owned(rs, PODS) for rs in old):
            return
        self._scale(new, desired)

    def _scale_new(self, new: Body, old: list[Body], desired: int, surge: int) -> Body:
        """rolling.go reconcileNewReplicaSet with NewRSNewReplicas."""
        replicas = int(new["spec"].get("replicas", 0))
        if replicas >= desired:
            return self._scale(new, desired)
        total = replicas + sum(int(rs["spec"].get("replicas", 0)) for rs in old)
        allowed = desired + surge - total
        if allowed <= 0:
            return new
        return self._scale(new, replicas + min(allowed, desired - replicas))

    def _scale_old(self, new: Body, old: list[Body], desired: int, unavailable: int) -> None:
        """rolling.go reconcileOldReplicaSets: unhealthy old pods first, then down to
        minAvailable, never below what keeps the deployment available."""
        everything = [new, *old]
        total = sum(int(rs["spec"].get("replicas", 0)) for rs in everything)
        minimum = desired - unavailable
        new_unavailable = int(new["spec"].get("replicas", 0)) - _available(new)
        budget = total - minimum - new_unavailable
        if budget <= 0:
            return
        scaled: list[Body] = []
        for rs in old:  # cleanupUnhealthyReplicas
            replicas = int(rs["spec"].get("replicas", 0))
            unhealthy = replicas - _available(rs)
            down = min(budget, unhealthy) if replicas else 0
            if down > 0:
                budget -= down
                rs = self._scale(rs, replicas - down)
            scaled.append(rs)
        available = sum(_available(rs) for rs in [new, *scaled])
        allowed = available - minimum
        for rs in scaled:  # scaleDownOldReplicaSetsForRollingUpdate
            if allowed <= 0:
                break
            replicas = int(rs["spec"].get("replicas", 0))
            down = min(replicas, allowed)
            if down > 0:
                self._scale(rs, replicas - down)
                allowed -= down

    def _deployment_status(
        self,
        deployment: Body,
        new: Body,
        sets: list[Body],
        conditions: list[Body],
        desired: int,
        unavailable: int,
    ) -> None:
        spec = deployment["spec"]
        now = self.api.clock.stamp()
        previous = deployment.get("status") or {}
        available = sum(_available(rs) for rs in sets)
        status: Body = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in sets),
            "updatedReplicas": int((new.get("status") or {}).get("replicas", 0)),
            "readyReplicas": sum(
                int((rs.get("status") or {}).get("readyReplicas", 0)) for rs in sets
            ),
            "availableReplicas": available,
        }
        unavailable_now = max(0, sum(int(rs["spec"].get("replicas", 0)) for rs in sets) - available)
        if unavailable_now:
            status["unavailableReplicas"] = unavailable_now
        if available >= desired - unavailable:
            _set_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            )
        else:
            _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        name = new["metadata"]["name"]
        progressing = next((c for c in conditions if c["type"] == "Progressing"), None)
        complete = (
            status["updatedReplicas"] == desired
            and status["replicas"] == desired
            and available == desired
        )
        finished = (
            progressing is not None
            and progressing["reason"] == "NewReplicaSetAvailable"
            and status["replicas"] == status["updatedReplicas"]
        )
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None and not finished:
            old_updated = int(previous.get("updatedReplicas", 0))
            old_others = int(previous.get("replicas", 0)) - old_updated
            moved = (
                status["updatedReplicas"] > old_updated
                or status["replicas"] - status["updatedReplicas"] < old_others
                or status["readyReplicas"] > int(previous.get("readyReplicas", 0))
                or available > int(previous.get("availableReplicas", 0))
            )
            if complete:
                _set_condition(
                    conditions,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.',
                    now,
                )
            elif moved:
                since = (
                    progressing["lastTransitionTime"]
                    if progressing and progressing["status"] == "True"
                    else now
                )
                conditions[:] = [c for c in conditions if c["type"] != "Progressing"]
                conditions.append(
                    {
                        "type": "Progressing",
                        "status": "True",
                        "lastUpdateTime": now,
                        "lastTransitionTime": since,
                        "reason": "ReplicaSetUpdated",
                        "message": f'ReplicaSet "{name}" is progressing.',
                    }
                )
            elif progressing is not None and progressing["reason"] != "ProgressDeadlineExceeded":
                due = parse_time(progressing["lastUpdateTime"]) + int(deadline)
                if due < self.api.clock.time():
                    _set_condition(
                        conditions,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        f'ReplicaSet "{name}" has timed out progressing.',
                        now,
                    )
        status["conditions"] = conditions
        current = self.api.store.get(
            DEPLOYMENTS, deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        )
        if current is None:
            return
        if current.get("status") != status:
            updated = clone(current)
            updated["status"] = status
            self.api.system_update(DEPLOYMENTS, current, updated, subresource="status")
        progressing = next((c for c in conditions if c["type"] == "Progressing"), None)
        if (
            deadline is not None
            and progressing is not None
            and progressing["reason"]
            in (
                "ReplicaSetUpdated",
                "NewReplicaSetCreated",
            )
        ):
            # requeueStuckDeployment: look again when the deadline passes
            due = parse_time(progressing["lastUpdateTime"]) + int(deadline) + 1
            self.controllers.enqueue_after(
                due - self.api.clock.time(),
                "deployment",
                deployment["metadata"]["namespace"],
                deployment["metadata"]["name"],
            )

    # -- ReplicaSet ---------------------------------------------------------------------------

    def sync_replicaset(self, namespace: str | None, name: str) -> None:
        replicaset = self.api.store.get(REPLICASETS, namespace, name)
        if replicaset is None or replicaset["metadata"].get("deletionTimestamp"):
            return
        pods = [
            p for p in self._owned(replicaset, PODS) if not p["metadata"].get("deletionTimestamp")
        ]
        wanted = int(replicaset["spec"].get("replicas", 0))
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                pods.append(self._new_pod(replicaset, "ReplicaSet", f"{name}-{_suffix()}"))
        elif len(pods) > wanted:
            # controller.ActivePods ordering: unready before ready, newer before older
            doomed = sorted(pods, key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in doomed[: len(pods) - wanted]:
                self.api.delete(PODS, pod)
                pods.remove(pod)
        labels = selector_from_label_selector(replicaset["spec"].get("selector"))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1 for p in pods if labels.matches(p["metadata"].get("labels"))
            ),
            "readyReplicas": sum(1 for p in pods if is_ready(p)),
            "availableReplicas": sum(1 for p in pods if is_ready(p)),
            "observedGeneration": replicaset["metadata"]["generation"],
        }
        current = self.api.store.get(REPLICASETS, namespace, name)
        if current is not None and current.get("status") != status:
            updated = clone(current)
            updated["status"] = status
            self.api.system_update(REPLICASETS, current, updated, subresource="status")

    def _new_pod(
        self,
        owner: Body,
        kind: str,
        name: str,
        *,
        extra_labels: dict[str, str] | None = None,
        spec_extra: Body | None = None,
    ) -> Body:
        template = owner["spec"]["template"]
        meta = template.get("metadata") or {}
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "labels": {**(meta.get("labels") or {}), **(extra_labels or {})},
                "annotations": dict(meta.get("annotations") or {}),
                "ownerReferences": [_owner_ref(owner, "apps/v1", kind)],
            },
            "spec": {
                **clone(template.get("spec") or {}),
                "nodeName": NODE,
                **(spec_extra or {}),
            },
        }
        if not body["metadata"]["annotations"]:
            del body["metadata"]["annotations"]
        return self.api.system_create(PODS, owner["metadata"]["namespace"], body)

    # -- StatefulSet --------------------------------------------------------------------------

    def sync_statefulset(self, namespace: str | None, name: str) -> None:
        store = self.api.store
        sts = store.get(STATEFULSETS, namespace, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        spec = sts["spec"]
        replicas = int(spec.get("replicas", 1))
        start = int((spec.get("ordinals") or {}).get("start", 0))
        update_revision = f"{name}-{template_hash(spec['template'])}"
        status = sts.get("status") or {}
        current_revision = status.get("currentRevision") or update_revision
        selector = selector_from_label_selector(spec.get("selector"))
        pods = {p["metadata"]["name"]: p for p in self._owned(sts, PODS)}
        for pod in store.select(PODS, namespace, selector, _NO_FIELDS):  # ClaimPods: adopt orphans
            if _controller_of(pod) is None and _ordinal(pod["metadata"]["name"], name) is not None:
                adopted = clone(pod)
                adopted["metadata"].setdefault("ownerReferences", []).append(
                    _owner_ref(sts, "apps/v1", "StatefulSet")
                )
                pods[pod["metadata"]["name"]] = self.api.system_update(PODS, pod, adopted)
        self._retain_claims(sts, replicas, start, pods)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        strategy = spec.get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        blocked = False
        for ordinal in range(start, start + replicas):
            pod_name = f"{name}-{ordinal}"
            pod = pods.get(pod_name)
            if pod is not None and pod["metadata"].get("deletionTimestamp"):
                blocked = True
                if not parallel:
                    break
                continue
            if pod is None:
                revision = current_revision if ordinal < partition else update_revision
                pods[pod_name] = self._statefulset_pod(sts, ordinal, revision)
                if not parallel:
                    blocked = True
                    break
                continue
            if not is_ready(pod) and not parallel:
                blocked = True
                break
        if not blocked:
            condemned = sorted(
                (p for n, p in pods.items() if (_ordinal(n, name) or 0) >= start + replicas),
                key=lambda p: _ordinal(p["metadata"]["name"], name) or 0,
                reverse=True,
            )
            for pod in condemned[: None if parallel else 1]:
                self.api.delete(PODS, pod)
                pods.pop(pod["metadata"]["name"], None)
                blocked = True
        if not blocked and strategy.get("type", "RollingUpdate") == "RollingUpdate":
            for ordinal in range(start + replicas - 1, max(start, partition) - 1, -1):
                pod = pods.get(f"{name}-{ordinal}")
                if (
                    pod is not None
                    and pod["metadata"]["labels"].get(REVISION_LABEL) != update_revision
                ):
                    self.api.delete(PODS, pod)
                    pods.pop(pod["metadata"]["name"], None)
                    break
        self._statefulset_status(sts, pods, current_revision, update_revision)

    def _statefulset_pod(self, sts: Body, ordinal: int, revision: str) -> Body:
        name = sts["metadata"]["name"]
        spec_extra = {
            "hostname": f"{name}-{ordinal}",
            "subdomain": sts["spec"].get("serviceName", ""),
        }
        volumes = [
            v
            for v in (sts["spec"]["template"].get("spec") or {}).get("volumes") or ()
            if v.get("name")
            not in {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates") or ()}
        ]
        for claim_template in sts["spec"].get("volumeClaimTemplates") or ():
            claim_name = f"{claim_template['metadata']['name']}-{name}-{ordinal}"
            self._ensure_claim(sts, claim_template, claim_name)
            volumes.append(
                {
                    "name": claim_template["metadata"]["name"],
                    "persistentVolumeClaim": {"claimName": claim_name},
                }
            )
        if volumes:
            spec_extra["volumes"] = volumes
        return self._new_pod(
            sts,
            "StatefulSet",
            f"{name}-{ordinal}",
            extra_labels={
                REVISION_LABEL: revision,
                "statefulset.kubernetes.io/pod-name": f"{name}-{ordinal}",
                "apps.kubernetes.io/pod-index": str(ordinal),
            },
            spec_extra=spec_extra,
        )

    def _ensure_claim(self, sts: Body, template: Body, claim_name: str) -> None:
        namespace = sts["metadata"]["namespace"]
        if self.api.store.get(CLAIMS, namespace, claim_name) is not None:
            return
        meta = template.get("metadata") or {}
        labels = {
            **(meta.get("labels") or {}),
            **(sts["spec"]["selector"].get("matchLabels") or {}),
        }
        body: Body = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name, "labels": labels},
            "spec": clone(template.get("spec") or {}),
        }
        if meta.get("annotations"):
            body["metadata"]["annotations"] = dict(meta["annotations"])
        policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenDeleted") == "Delete":
            body["metadata"]["ownerReferences"] = [_set_ref(sts)]
        self.api.system_create(CLAIMS, namespace, body)

    def _retain_claims(self, sts: Body, replicas: int, start: int, pods: dict[str, Body]) -> None:
        """updateClaimOwnerRefForSetAndPod: each claim's owners follow the retention policy."""
        name, namespace = sts["metadata"]["name"], sts["metadata"]["namespace"]
        policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        for template in sts["spec"].get("volumeClaimTemplates") or ():
            prefix = f"{template['metadata']['name']}-{name}-"
            for claim in self.api.store.select(CLAIMS, namespace, _EVERYTHING, _NO_FIELDS):
                claim_name = claim["metadata"]["name"]
                if not claim_name.startswith(prefix) or not claim_name[len(prefix) :].isdigit():
                    continue
                ordinal = int(claim_name[len(prefix) :])
                pod = pods.get(f"{name}-{ordinal}")
                refs = [
                    r
                    for r in claim["metadata"].get("ownerReferences") or ()
                    if r.get("uid") != sts["metadata"]["uid"]
                    and not (r.get("kind") == "Pod" and r.get("name") == f"{name}-{ordinal}")
                ]
                if policy.get("whenDeleted") == "Delete":
                    refs.append(_set_ref(sts))
                scaled_away = not start <= ordinal < start + replicas
                if policy.get("whenScaled") == "Delete" and scaled_away and pod is not None:
                    refs.append(_set_ref(pod, "v1", "Pod"))
                if refs != list(claim["metadata"].get("ownerReferences") or ()):
                    updated = clone(claim)
                    if refs:
                        updated["metadata"]["ownerReferences"] = refs
                    else:
                        updated["metadata"].pop("ownerReferences", None)
                    self.api.system_update(CLAIMS, claim, updated)

    def _statefulset_status(
        self, sts: Body, pods: dict[str, Body], current_revision: str, update_revision: str
    ) -> None:
        live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
        updated = sum(
            1 for p in live if p["metadata"]["labels"].get(REVISION_LABEL) == update_revision
        )
        current = sum(
            1 for p in live if p["metadata"]["labels"].get(REVISION_LABEL) == current_revision
        )
        replicas = int(sts["spec"].get("replicas", 1))
        ready = sum(1 for p in live if is_ready(p))
        if updated == replicas and ready == replicas:  # the update is complete
            current_revision, current = update_revision, updated
        status = {
            "observedGeneration": sts["metadata"]["generation"],
            "replicas": len(live),
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": 0,
        }
        found = self.api.store.get(
            STATEFULSETS, sts["metadata"]["namespace"], sts["metadata"]["name"]
        )
        if found is not None and found.get("status") != status:
            changed = clone(found)
            changed["status"] = status
            self.api.system_update(STATEFULSETS, found, changed, subresource="status")

    # -- HorizontalPodAutoscaler ---------------------------------------------------------------

    def sync_autoscaler(self, namespace: str | None, name: str) -> None:
        """pkg/controller/podautoscaler horizontal.go reconcileAutoscaler, without metrics (there
        is no metrics server): a target below minReplicas or above maxReplicas is scaled back
        into range through its scale subresource, as the kube-controller-manager field manager."""
        hpa = self.api.store.get(AUTOSCALERS, namespace, name)
        if hpa is None or hpa["metadata"].get("deletionTimestamp"):
            return
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        resource = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}.get(ref.get("kind", ""))
        target = self.api.store.get(resource, namespace, ref.get("name", "")) if resource else None
        minimum, maximum = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 1))
        now = self.api.clock.stamp()
        conditions = []
        if target is None:
            current = desired = 0
            conditions.append(
                (
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    f"the HPA controller was unable to get the target's current scale: "
                    f'{ref.get("kind", "").lower()}s.apps "{ref.get("name")}" not found',
                )
            )
        else:
            current = int((target.get("spec") or {}).get("replicas", 1))
            desired = min(max(current, minimum), maximum) if current else 0
            if desired != current:
                self.api.scale(resource, target, desired, manager="kube-controller-manager")
            conditions.append(
                (
                    "AbleToScale",
                    "True",
                    "SucceededRescale" if desired != current else "ReadyForNewScale",
                    "the HPA controller was able to update the target scale"
                    if desired != current
                    else "recommended size matches current size",
                )
            )
            conditions.append(
                (
                    "ScalingActive",
                    "False",
                    "FailedGetResourceMetric",
                    "the HPA was unable to compute the replica count: no metrics server",
                )
            )
        status = {
            "currentReplicas": current,
            "desiredReplicas": desired,
            "conditions": [
                {
                    "type": kind,
                    "status": state,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": next(
                        (
                            c["lastTransitionTime"]
                            for c in (hpa.get("status") or {}).get("conditions") or ()
                            if c["type"] == kind and c["status"] == state
                        ),
                        now,
                    ),
                }
                for kind, state, reason, message in conditions
            ],
        }
        if hpa.get("status") != status:
            updated = clone(hpa)
            updated["status"] = status
            self.api.system_update(AUTOSCALERS, hpa, updated, subresource="status")

    # -- the kubelet --------------------------------------------------------------------------

    def sync_pod(self, namespace: str | None, name: str) -> None:
        pod = self.api.store.get(PODS, namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        now = self.api.clock.stamp()
        previous = pod.get("status") or {}
        claims_bound = all(
            (self.api.store.get(CLAIMS, namespace, v["persistentVolumeClaim"]["claimName"]) or {})
            .get("status", {})
            .get("phase")
            == "Bound"
            for v in (pod.get("spec") or {}).get("volumes") or ()
            if v.get("persistentVolumeClaim")
        )
        containers = (pod.get("spec") or {}).get("containers") or []
        crashing = [c for c in containers if c.get("image") in self.crashing_images]
        workload = self._workload_of(pod)
        ready = not crashing and self.readiness.get((str(namespace), workload), self.pods_ready)
        if not claims_bound:
            status = {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "pod has unbound immediate PersistentVolumeClaims",
                        "lastTransitionTime": now,
                    }
                ],
            }
        else:
            ip = previous.get("podIP") or self._pod_ip()
            statuses = []
            for container in containers:
                restarts = 0
                old = next(
                    (
                        s
                        for s in previous.get("containerStatuses") or ()
                        if s["name"] == container["name"]
                    ),
                    {},
                )
                if container in crashing:
                    restarts = int(old.get("restartCount", 0)) or 1
                    state = {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": (
                                f"back-off 10s restarting failed container={container['name']} "
                                f"pod={name}_{namespace}({pod['metadata']['uid']})"
                            ),
                        }
                    }
                else:
                    state = {
                        "running": {
                            "startedAt": (old.get("state") or {})
                            .get("running", {})
                            .get("startedAt", now)
                        }
                    }
                statuses.append(
                    {
                        "name": container["name"],
                        "image": container.get("image", ""),
                        "imageID": f"{container.get('image', '')}@sha256:{'0' * 64}",
                        "ready": ready and container not in crashing,
                        "started": container not in crashing,
                        "restartCount": restarts,
                        "state": state,
                        **(
                            {"lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
                            if container in crashing
                            else {}
                        ),
                    }
                )
            ready_text = "True" if ready else "False"
            status = {
                "phase": "Running",
                "hostIP": "10.89.0.2",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": previous.get("startTime", now),
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Initialized", "status": "True"},
                    {"type": "ContainersReady", "status": ready_text},
                    {"type": "Ready", "status": ready_text},
                ],
                "containerStatuses": statuses,
            }
            for condition in status["conditions"]:
                old_condition = next(
                    (c for c in previous.get("conditions") or () if c["type"] == condition["type"]),
                    None,
                )
                same = (
                    old_condition is not None and old_condition.get("status") == condition["status"]
                )
                condition["lastTransitionTime"] = (
                    old_condition.get("lastTransitionTime", now) if same else now
                )  # type: ignore[union-attr]
        if previous != status:
            updated = clone(pod)
            updated["status"] = status
            self.api.system_update(PODS, pod, updated, subresource="status")

    def _pod_ip(self) -> str:
        self._next_pod_ip += 1
        return f"10.244.{self._next_pod_ip // 250}.{self._next_pod_ip % 250 + 2}"

    def _workload_of(self, pod: Body) -> str:
        """The Deployment or StatefulSet a pod belongs to (through its ReplicaSet)."""
        for ref in pod["metadata"].get("ownerReferences") or ():
            if not ref.get("controller"):
                continue
            if ref.get("kind") == "ReplicaSet":
                rs = self.api.store.get(REPLICASETS, pod["metadata"]["namespace"], ref["name"])
                for owner in (rs or {}).get("metadata", {}).get("ownerReferences") or ():
                    if owner.get("controller"):
                        return str(owner["name"])
            return str(ref["name"])
        return pod["metadata"]["name"]


def _available(replicaset: Body) -> int:
    return int((replicaset.get("status") or {}).get("availableReplicas", 0))


def _ordinal(pod_name: str, set_name: str) -> int | None:
    prefix = f"{set_name}-"
    tail = pod_name[len(prefix) :]
    return int(tail) if pod_name.startswith(prefix) and tail.isdigit() else None


def _set_ref(
    owner: Body, api_version: str = "apps/v1", kind: str = "StatefulSet"
) -> dict[str, Any]:
    """stateful_set_utils.go setOwnerRef: a plain owner reference (not a controller)."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"]}


def _set_condition(
    conditions: list[Body], kind: str, status: str, reason: str, message: str, now: str
) -> None:
    """deployment_util.go SetDeploymentCondition: the same status and reason changes nothing;
    the same status keeps lastTransitionTime."""
    current = next((c for c in conditions if c["type"] == kind), None)
    if current is not None and current["status"] == status and current["reason"] == reason:
        return
    since = (
        current["lastTransitionTime"]
        if current is not None and current["status"] == status
        else now
    )
    conditions[:] = [c for c in conditions if c["type"] != kind]
    conditions.append(
        {
            "type": kind,
            "status": status,
            "lastUpdateTime": now,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }
    )
