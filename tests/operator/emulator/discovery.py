"""What kubectl's and kopf's discovery clients read: /version, /api, /apis and the version lists."""

from __future__ import annotations

import re
from typing import Any

import kmock

Body = dict[str, Any]

SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-emulator",
    "gitTreeState": "clean",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int]:
    """apimachinery's version ordering: GA before beta before alpha, higher numbers first."""
    match = _VERSION.match(version)
    if not match:
        return (0, 0, 0)
    major, stage, minor = match.groups()
    rank = {"alpha": 1, "beta": 2, None: 3}[stage]
    return (rank, int(major), int(minor or 0))


def groups(resources: kmock.ResourcesArray) -> dict[str, list[str]]:
    """group -> served versions, preferred first."""
    found: dict[str, set[str]] = {}
    for resource in resources:
        if resource.plural and resource.group is not None and resource.version is not None:
            found.setdefault(str(resource.group), set()).add(str(resource.version))
    return {
        group: sorted(versions, key=version_priority, reverse=True)
        for group, versions in found.items()
    }


def api_versions() -> Body:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def group_list(resources: kmock.ResourcesArray) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "APIGroupList",
        "groups": [
            _group(name, versions) for name, versions in sorted(groups(resources).items()) if name
        ],
    }


def group(resources: kmock.ResourcesArray, name: str) -> Body | None:
    versions = groups(resources).get(name)
    return None if not versions else {"apiVersion": "v1", **_group(name, versions)}


def _group(name: str, versions: list[str]) -> Body:
    entries = [{"groupVersion": f"{name}/{version}", "version": version} for version in versions]
    return {"kind": "APIGroup", "name": name, "versions": entries, "preferredVersion": entries[0]}


def resource_list(resources: kmock.ResourcesArray, group_name: str, version: str) -> Body | None:
    """/api/v1 and /apis/<group>/<version>, shaped as kubectl's discovery client expects."""
    served = sorted(
        (
            (res, resources[res])
            for res in resources
            if res.plural and (res.group, res.version) == (group_name, version)
        ),
        key=lambda item: str(item[0].plural),
    )
    if not served and group_name != "":
        return None
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
                    "kind": "Scale" if subresource == "scale" else info.kind,
                    **({"group": "autoscaling", "version": "v1"} if subresource == "scale" else {}),
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "apiVersion": "v1",
        "kind": "APIResourceList",
        "groupVersion": f"{group_name}/{version}" if group_name else version,
        "resources": entries,
    }
