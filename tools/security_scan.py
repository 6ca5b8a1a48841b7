"""Scan the manifests we ship with checkov; fail on any finding tools/checkov/suppressions.yaml
does not explain.

What is scanned: the operator chart as rendered by the real Helm SDK, and every object the
operator makes (generated Secrets with placeholder data included) for each example Shop in
manifests/examples. checkov runs once over all of them from its own locked environment
(`make scan-env` builds .venv-scan from tools/checkov/uv.lock; see the reason there).
`make scan` (`python -m tools.security_scan`) prints what is left after the suppressions; the
packaging tests run the same scan with the chart's non-default values added.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from microshop_operator.builders import build_children, build_generated_secrets
from tools.manifests import ROOT, render

CHECKOV_DIR = ROOT / "tools" / "checkov"
SUPPRESSIONS = CHECKOV_DIR / "suppressions.yaml"
CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"
EXAMPLES = ROOT / "manifests" / "examples"
# The namespace the operator would see on an example Shop applied with `kubectl apply -n shop`.
EXAMPLE_NAMESPACE = "shop"

Objects = list[dict[str, Any]]


@dataclass(frozen=True)
class Finding:
    """One failed check on one resource of one rendered file."""

    check_id: str
    check_name: str
    file: str  # e.g. "chart-default.yaml" or "shop-minimal.yaml"
    resource: str  # checkov's "Kind.namespace.name" (graph checks add labels)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.resource}"

    def __str__(self) -> str:
        return f"{self.check_id} {self.where}: {self.check_name}"


@dataclass(frozen=True)
class Suppression:
    check: str
    why: str
    # fnmatch patterns on Finding.where; empty means every resource.
    where: tuple[str, ...] = ()

    def covers(self, finding: Finding) -> bool:
        if finding.check_id != self.check:
            return False
        return not self.where or any(fnmatch.fnmatchcase(finding.where, p) for p in self.where)


def example_shops() -> dict[str, dict[str, Any]]:
    """Example file name -> the Shop in it, placed in a namespace as the API server would."""
    shops = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        shop = yaml.safe_load(path.read_text())
        shop["metadata"].setdefault("namespace", EXAMPLE_NAMESPACE)
        shops[path.name] = shop
    return shops


def shop_objects(shop: Mapping[str, Any]) -> Objects:
    """Everything the operator applies for a Shop, Secrets with placeholder data included."""
    return build_generated_secrets(shop, generate=False) + build_children(shop)


def default_sets() -> dict[str, Objects]:
    """File name -> objects: the chart with default values and each example Shop's children."""
    sets = {"chart-default.yaml": render()}
    for name, shop in example_shops().items():
        sets[name] = shop_objects(shop)
    return sets


def write_sets(sets: Mapping[str, Objects], directory: Path) -> list[Path]:
    paths = []
    for name, objects in sets.items():
        path = directory / name
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        paths.append(path)
    return paths


@dataclass(frozen=True)
class Scan:
    findings: list[Finding]
    files: frozenset[str]  # the rendered files checkov ran checks on


def run_checkov(directory: Path, checkov: Path = CHECKOV) -> Scan:
    """Every failed check in the directory's manifests, from one checkov run."""
    if not checkov.exists():
        raise FileNotFoundError(f"{checkov} is missing; `make scan-env` installs it")
    # --skip-download: no calls to the vendor's platform (doc links, severities); the checks
    # are all in the package. cwd is the scanned directory so no stray .checkov.yaml applies.
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"checkov failed ({result.returncode}):\n{result.stderr}") from error
    reports = report if isinstance(report, list) else [report]
    if not any(r.get("summary", {}).get("resource_count") for r in reports):
        raise RuntimeError(f"checkov scanned no Kubernetes resource:\n{result.stderr}")
    findings = [
        Finding(
            check_id=failed["check_id"],
            check_name=failed["check_name"],
            file=Path(failed["file_path"]).name,
            resource=failed["resource"],
        )
        for r in reports
        for failed in r["results"]["failed_checks"]
    ]
    files = {
        Path(check["file_path"]).name
        for r in reports
        for outcome in ("passed_checks", "failed_checks")
        for check in r["results"][outcome]
    }
    return Scan(findings, frozenset(files))


def load_suppressions(path: Path = SUPPRESSIONS) -> list[Suppression]:
    entries = yaml.safe_load(path.read_text())["suppressions"]
    suppressions = []
    for entry in entries:
        why = (entry.get("why") or "").strip()
        if not why:
            raise ValueError(f"{path}: suppression of {entry['check']} says no why")
        suppressions.append(Suppression(entry["check"], why, tuple(entry.get("where") or ())))
    return suppressions


def unexplained(findings: Iterable[Finding], suppressions: list[Suppression]) -> list[Finding]:
    return [f for f in findings if not any(s.covers(f) for s in suppressions)]


def unused(findings: Iterable[Finding], suppressions: list[Suppression]) -> list[Suppression]:
    """Suppressions that cover nothing: a fixed finding must take its excuse with it."""
    findings = list(findings)
    return [s for s in suppressions if not any(s.covers(f) for f in findings)]


def scan(sets: Mapping[str, Objects]) -> Scan:
    with tempfile.TemporaryDirectory(prefix="microshop-scan-") as tmp:
        write_sets(sets, Path(tmp))
        return run_checkov(Path(tmp))


def main() -> int:
    findings = scan(default_sets()).findings
    left = unexplained(findings, load_suppressions())
    for finding in left:
        print(finding)
    suppressed = len(findings) - len(left)
    print(f"checkov: {len(left)} unexplained finding(s), {suppressed} suppressed")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
