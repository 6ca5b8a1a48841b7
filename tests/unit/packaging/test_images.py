"""The two Dockerfiles: hadolint-clean, multi-stage, and a non-root runtime without build tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = {
    "services": (ROOT / "services" / "Dockerfile", '["microshop-service"]'),
    "operator": (ROOT / "operator" / "Dockerfile", '["kopf", "run"'),
}


def final_stage(dockerfile: Path) -> list[str]:
    """Instructions of the last stage, continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(name: str) -> None:
    dockerfile, _ = DOCKERFILES[name]
    result = subprocess.run(
        [str(HADOLINT), "--format", "json", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], findings
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_runtime_stage_is_slim_non_root_and_labelled(name: str) -> None:
    dockerfile, entrypoint = DOCKERFILES[name]
    stages = [ln for ln in dockerfile.read_text().splitlines() if ln.upper().startswith("FROM ")]
    runtime = final_stage(dockerfile)

    assert len(stages) >= 3, "builder and runtime stages (plus the pinned uv image)"
    assert "python:3.11.14-slim-bookworm" in dockerfile.read_text()
    # No package manager runs and neither uv nor the sources reach the runtime stage.
    assert not [line for line in runtime if line.upper().startswith("RUN ")]
    assert [line for line in runtime if line.startswith("COPY")] == [
        "COPY --from=builder /app/.venv /app/.venv"
    ]
    assert "USER 10001:10001" in runtime
    assert "EXPOSE 8080" in runtime
    assert any(line.startswith(f"ENTRYPOINT {entrypoint}") for line in runtime)
    labels = " ".join(line for line in runtime if line.startswith("LABEL"))
    for key in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_builder_installs_exactly_the_lock_file() -> None:
    for dockerfile, _ in DOCKERFILES.values():
        text = dockerfile.read_text()
        assert "FROM ghcr.io/astral-sh/uv:0.13.8 AS uv" in text
        assert "uv sync --frozen --no-dev --no-editable" in text


def test_dockerignore_sends_only_the_project() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*", "everything is excluded first"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "services/microshop/",
        "operator/microshop_operator/",
    }
