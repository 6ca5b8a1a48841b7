"""pip-audit over every package pinned in uv.lock; `python -m tools.pip_audit_lock` (make audit)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPLAINED = ROOT / "tools" / "pip-audit" / "explained.toml"


@dataclass(frozen=True)
class Audit:
    findings: dict[str, str]  # vulnerability id -> "package version"
    audited: int
    unaudited: list[str]  # what the vulnerability service knew nothing about


def pinned(lock: Path = ROOT / "uv.lock") -> list[str]:
    """`name==version` of every package in the lock that comes from an index (not ours)."""
    packages = tomllib.loads(lock.read_text())["package"]
    return sorted(
        f"{p['name']}=={p['version']}"
        for p in packages
        if "version" in p and "registry" in p.get("source", {})
    )


def explained() -> dict[str, str]:
    entries = tomllib.loads(EXPLAINED.read_text()).get("finding", [])
    return {entry["id"]: entry["why"] for entry in entries}


def audit(requirements: list[str]) -> Audit:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listed:
        listed.write("\n".join(requirements) + "\n")
        listed.flush()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--requirement",
                listed.name,
                "--no-deps",
                "--disable-pip",
                "--progress-spinner",
                "off",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if not done.stdout.strip():
        raise RuntimeError(f"pip-audit failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    findings: dict[str, str] = {}
    unaudited: list[str] = []
    for dependency in report["dependencies"]:
        if "skip_reason" in dependency:
            unaudited.append(dependency["name"])
        for vulnerability in dependency.get("vulns", []):
            findings[vulnerability["id"]] = f"{dependency['name']} {dependency['version']}"
    return Audit(findings, len(report["dependencies"]) - len(unaudited), unaudited)


def main() -> int:
    result = audit(pinned())
    known = explained()
    print(f"pip-audit: {result.audited} packages audited, {len(result.unaudited)} not found")
    for vulnerability, where in sorted(result.findings.items()):
        print(f"  {vulnerability} in {where}: {known.get(vulnerability, 'NOT EXPLAINED')}")
    unexplained = set(result.findings) - set(known)
    return 1 if unexplained or not result.audited else 0


if __name__ == "__main__":
    sys.exit(main())
