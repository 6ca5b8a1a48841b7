"""The two Dockerfiles: hadolint-clean, multi-stage, and a non-root runtime without build tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import kopf

ROOT = Path(__file__).resolve().parents[3]
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = {
    "services": (ROOT / "services" / "Dockerfile", '["microshop-service"]'),
    # The module the operator tests run too (tests/support/kopf.py).
    "operator": (ROOT / "operator" / "Dockerfile", f'["kopf", "run", "{kopf.MODULE}"]'),
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


def test_builder_installs_exactly_the_lock_file_and_only_its_own_extra() -> None:
    for name, (dockerfile, _) in DOCKERFILES.items():
        text = dockerfile.read_text()
        assert "FROM ghcr.io/astral-sh/uv:0.13.8 AS uv" in text
        syncs = [line for line in text.splitlines() if "uv sync" in line]
        assert syncs and all("--frozen --no-dev" in line for line in syncs)
        # The services image carries no kopf; the operator image no FastAPI or database drivers.
        assert all(f"--extra {name}" in line for line in syncs), syncs
        assert not any("--all-extras" in line for line in syncs)


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


@pytest.mark.parametrize(
    ("extra", "imports", "absent"),
    [
        ("services", "microshop.standalone, microshop.orders.app, microshop.__main__", "kopf"),
        ("operator", "microshop_operator.main, microshop_operator.cli", "fastapi"),
    ],
)
def test_each_image_extra_is_enough_for_its_code_and_no_more(
    tmp_path: Path, extra: str, imports: str, absent: str
) -> None:
    """What the Dockerfile's `uv sync --extra X` installs, installed here the same way."""
    uv = shutil.which("uv") or str(ROOT / ".uv" / "bin" / "uv")
    environment = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment), "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--extra", extra, "--no-editable", "--quiet",
         "--python", sys.executable],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    python = str(environment / "bin" / "python")
    probe = f"import importlib.util, {imports}; print(importlib.util.find_spec({absent!r}) is None)"
    result = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True", f"{absent} should not be in the {extra} image"
