"""Render the operator chart with the real Helm SDK and write the plain install bundle from it.

`make manifests` runs `python -m tools.manifests all`, so manifests/install.yaml (from
charts/microshop-operator) and manifests/argocd/argocd-cm.yaml (from the health check .lua files)
are generated, never kept by hand; the packaging tests use `render` too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from helm_python import _native

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "charts" / "microshop-operator"
INSTALL_BUNDLE = ROOT / "manifests" / "install.yaml"
ARGOCD_DIR = ROOT / "manifests" / "argocd"
ARGOCD_CM = ARGOCD_DIR / "argocd-cm.yaml"
# argocd-cm key -> the Lua file it holds.
ARGOCD_HEALTH_CHECKS = {
    "resource.customizations.health.microshop.dev_Shop": ARGOCD_DIR / "health" / "shop.lua",
    "resource.customizations.health.argoproj.io_Application": (
        ARGOCD_DIR / "health" / "application.lua"
    ),
}
# The Kubernetes minor the chart is rendered and validated against.
KUBE_VERSION = "1.37.0"
RELEASE_NAME = "microshop-operator"
RELEASE_NAMESPACE = "microshop-system"

# Helm's own install order (pkg/release/util/kind_sorter.go), enough for the kinds we ship.
_INSTALL_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "CustomResourceDefinition",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "StatefulSet",
]


def render_templates(
    values: Mapping[str, Any] | None = None,
    *,
    api_versions: Iterable[str] = (),
    kube_version: str = KUBE_VERSION,
    name: str = RELEASE_NAME,
    namespace: str = RELEASE_NAMESPACE,
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` with --api-versions/--kube-version."""
    options = {
        "name": name,
        "namespace": namespace,
        "is_install": True,
        "kube_version": f"v{kube_version.removeprefix('v')}",
        "api_versions": list(api_versions),
    }
    with helm.Chart.load(CHART_DIR) as chart:
        # helm-python 0.2.2's Chart.render does not expose the capability options, but the
        # library's render options (Go RenderOptions) accept them; this is the one place we
        # reach past the wrapper.
        rendered = _native.call_string(
            "helm_render",
            chart._raw(),
            json.dumps(dict(values)) if values is not None else None,
            json.dumps(options),
        )
    manifests: dict[str, str] = json.loads(rendered)
    return manifests


def render(values: Mapping[str, Any] | None = None, **options: Any) -> list[dict[str, Any]]:
    """The Kubernetes objects the chart's templates render (no CRDs, no NOTES.txt)."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render_templates(values, **options).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(values: Mapping[str, Any] | None = None, **options: Any) -> str:
    """The NOTES.txt a user sees after `helm install`."""
    rendered = render_templates(values, **options)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def chart_crds() -> list[tuple[str, str]]:
    """(file name, text) of each CRD file in the chart's crds/, in file name order."""
    return [(p.name, p.read_text()) for p in sorted((CHART_DIR / "crds").glob("*.yaml"))]


def _namespace() -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": RELEASE_NAMESPACE,
            # The operator's own namespace admits only pods meeting the "restricted" standard.
            "labels": {
                "app.kubernetes.io/part-of": "microshop",
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def install_bundle() -> str:
    """manifests/install.yaml: a Namespace, the chart's CRDs, then its templates by kind."""
    documents: list[tuple[int, str, str]] = []

    def add(source: str, text: str) -> None:
        for chunk in text.split("\n---"):
            body = chunk.strip().removeprefix("---").strip()
            doc = yaml.safe_load(body) if body else None
            if not doc:
                continue
            order = _INSTALL_ORDER.index(doc["kind"]) if doc["kind"] in _INSTALL_ORDER else 99
            documents.append((order, source, body))

    for name, text in chart_crds():
        add(f"charts/microshop-operator/crds/{name}", text)
    add("namespace", _namespace())
    for path, text in sorted(render_templates().items()):
        if not path.endswith("NOTES.txt"):
            add(f"charts/{path}", text)
    documents.sort(key=lambda item: item[0])  # stable: file order within a kind

    header = (
        "# microshop operator install bundle: kubectl apply --server-side -f install.yaml\n"
        "# GENERATED by `make manifests` from charts/microshop-operator; do not edit by hand.\n"
    )
    parts = [f"---\n# Source: {source}\n{body}\n" for _, source, body in documents]
    return header + "".join(parts)


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks so the Lua stays readable in the ConfigMap."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def argocd_cm() -> str:
    """manifests/argocd/argocd-cm.yaml: the health checks, from the .lua files beside it."""
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {
                "app.kubernetes.io/name": "argocd-cm",
                "app.kubernetes.io/part-of": "argocd",
            },
        },
        "data": {key: path.read_text() for key, path in ARGOCD_HEALTH_CHECKS.items()},
    }
    header = (
        "# Argo CD health checks for microshop. Merge into the existing argocd-cm with\n"
        "#   kubectl apply --server-side --force-conflicts -n argocd -f argocd-cm.yaml\n"
        "# (server-side apply keeps the keys other tools own).\n"
        "# GENERATED by `make manifests` from manifests/argocd/health/*.lua; edit those.\n"
    )
    return header + yaml.dump(document, Dumper=_LiteralDumper, sort_keys=False, width=1000)


def write_all() -> list[Path]:
    """Regenerate every generated file; return their paths."""
    INSTALL_BUNDLE.parent.mkdir(parents=True, exist_ok=True)
    INSTALL_BUNDLE.write_text(install_bundle())
    ARGOCD_CM.write_text(argocd_cm())
    return [INSTALL_BUNDLE, ARGOCD_CM]


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "all"
    if command == "all":
        for path in write_all():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    print(f"usage: python -m tools.manifests all (not {command!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
