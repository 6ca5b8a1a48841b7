"""Check pods against the Kubernetes Pod Security Standard "restricted" (baseline included).

Written from https://kubernetes.io/docs/concepts/security/pod-security-standards/ control by
control, for Linux pods. Use `violations(obj)` on any Pod or workload (Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob) dict, or `assert_restricted(objects)` on many; each
violation names the object, the field and the value that breaks the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# Baseline "Capabilities": the only ones a container may add (restricted narrows it further).
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# Restricted "Volume Types".
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def pod_template(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """(pod metadata, pod spec) of a Pod or workload object; None for kinds without pods."""
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("metadata") or {}, obj.get("spec") or {}
    if kind in _POD_TEMPLATE_KINDS:
        template = obj["spec"]["template"]
    elif kind == "CronJob":
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
    else:
        return None
    return template.get("metadata") or {}, template.get("spec") or {}


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in _CONTAINER_LISTS:
        for index, container in enumerate(spec.get(key) or []):
            yield f"spec.{key}[{index}]({container.get('name')})", container


def violations(obj: Mapping[str, Any]) -> list[str]:
    """Every restricted-profile violation of the object's pod, as readable strings."""
    found = pod_template(obj)
    if found is None:
        return []
    meta, spec = found
    name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    problems: list[str] = []

    def bad(field: str, value: Any, rule: str) -> None:
        problems.append(f"{name}: {field}={value!r} ({rule})")

    pod_sc = spec.get("securityContext") or {}
    containers = list(_containers(spec))

    # Baseline: host namespaces, HostProcess, host paths, host ports, privileged, /proc, sysctls.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            bad(f"spec.{field}", spec[field], "host namespaces are forbidden")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        bad("spec.securityContext.windowsOptions.hostProcess", True, "HostProcess is forbidden")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            bad("spec.securityContext.sysctls", sysctl.get("name"), "only safe sysctls")

    # Restricted: volume types (which also rules out baseline's hostPath).
    for volume in spec.get("volumes") or []:
        kinds = [key for key in volume if key != "name"]
        for kind in kinds:
            if kind not in RESTRICTED_VOLUME_TYPES:
                bad(f"spec.volumes[{volume.get('name')}]", kind, "volume type not allowed")

    # Pod-level settings that containers may otherwise each have to set.
    pod_non_root = pod_sc.get("runAsNonRoot")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_non_root is False:
        bad("spec.securityContext.runAsNonRoot", False, "must not be false")
    if pod_sc.get("runAsUser") == 0:
        bad("spec.securityContext.runAsUser", 0, "must not run as root")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        bad("spec.securityContext.seccompProfile.type", pod_seccomp, "RuntimeDefault/Localhost")
    _check_selinux_apparmor("spec.securityContext", pod_sc, bad)

    for where, container in containers:
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            bad(f"{where}.securityContext.privileged", True, "privileged is forbidden")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            bad(f"{where}.securityContext.windowsOptions.hostProcess", True, "forbidden")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                bad(f"{where}.ports.hostPort", port["hostPort"], "host ports are forbidden")
        if sc.get("procMount", "Default") != "Default":
            bad(f"{where}.securityContext.procMount", sc["procMount"], "must be Default")
        _check_selinux_apparmor(f"{where}.securityContext", sc, bad)

        # Restricted: privilege escalation, non-root, seccomp, capabilities.
        if sc.get("allowPrivilegeEscalation") is not False:
            bad(
                f"{where}.securityContext.allowPrivilegeEscalation",
                sc.get("allowPrivilegeEscalation"),
                "must be false",
            )
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            bad(f"{where}.securityContext.runAsNonRoot", non_root, "must be true (pod or here)")
        if sc.get("runAsUser") == 0:
            bad(f"{where}.securityContext.runAsUser", 0, "must not run as root")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad(f"{where}.securityContext.seccompProfile.type", seccomp, "RuntimeDefault/Localhost")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            bad(f"{where}.securityContext.capabilities.drop", capabilities.get("drop"), "drop ALL")
        for added in capabilities.get("add") or []:
            if added not in RESTRICTED_CAPABILITIES:
                bad(f"{where}.securityContext.capabilities.add", added, "only NET_BIND_SERVICE")

    # Baseline AppArmor through the older annotations.
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            bad(f"metadata.annotations[{key}]", value, "AppArmor runtime/default or localhost/*")
    return problems


def _check_selinux_apparmor(where: str, sc: Mapping[str, Any], bad: Any) -> None:
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES:
        bad(f"{where}.seLinuxOptions.type", selinux["type"], "SELinux type not allowed")
    for field in ("user", "role"):
        if selinux.get(field):
            bad(f"{where}.seLinuxOptions.{field}", selinux[field], "must be unset")
    apparmor = (sc.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in ("RuntimeDefault", "Localhost"):
        bad(f"{where}.appArmorProfile.type", apparmor, "AppArmor RuntimeDefault/Localhost")


def assert_restricted(objects: Iterable[Mapping[str, Any]]) -> int:
    """Fail with every violation found; return how many pods were checked."""
    checked = 0
    problems: list[str] = []
    for obj in objects:
        if pod_template(obj) is not None:
            checked += 1
            problems.extend(violations(obj))
    assert not problems, "Pod Security Standard 'restricted' violated:\n" + "\n".join(problems)
    return checked
