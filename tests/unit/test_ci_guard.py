"""With CI=true a missing PostgreSQL, RabbitMQ or Chromium fails its tests instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
A_TEST = "tests/integration/test_saga.py::test_the_same_event_delivered_twice_changes_nothing"


def run_integration(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "CI"}
    environment.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            A_TEST,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "unreachable"),
    [
        ("MICROSHOP_TEST_PG", "postgresql://postgres@127.0.0.1:1/postgres"),
        ("MICROSHOP_TEST_AMQP_PORT", "1"),
    ],
)
def test_a_missing_server_fails_under_ci_and_skips_otherwise(
    tmp_path: Path, variable: str, unreachable: str
) -> None:
    in_ci = run_integration(tmp_path, **{variable: unreachable, "CI": "true"})
    assert in_ci.returncode == 1, in_ci.stdout
    assert "CI=true" in in_ci.stdout

    locally = run_integration(tmp_path, **{variable: unreachable})
    assert locally.returncode == 0, locally.stdout
    assert "1 skipped" in locally.stdout


def test_a_missing_chromium_fails_the_browser_tests_under_ci_and_skips_them_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.browser.support import chromium_or_skip

    monkeypatch.setenv("MICROSHOP_TEST_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true: .*no-chromium is missing"):
        chromium_or_skip()

    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium_or_skip()
