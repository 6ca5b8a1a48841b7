"""pip-audit over the lock: every finding is explained in tools/pip-audit/explained.toml."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tools.pip_audit_lock import audit, explained, pinned

# pip-audit's default service asks PyPI's JSON API for each pinned version.
PROBE = "https://pypi.org/pypi/pip/24.0/json"


def vulnerability_service_unreachable() -> str | None:
    try:
        with urllib.request.urlopen(PROBE, timeout=10) as answer:
            answer.read(1)
    except (urllib.error.URLError, OSError) as exc:
        return f"pip-audit's vulnerability service does not answer here ({PROBE}: {exc})"
    return None


def test_the_audit_covers_every_package_the_lock_pins() -> None:
    packages = {line.split("==")[0] for line in pinned()}

    assert {"fastapi", "uvicorn", "sqlalchemy", "argon2-cffi", "kopf", "pytest"} <= packages
    assert "microshop" not in packages


def test_every_finding_pip_audit_reports_on_the_lock_is_explained() -> None:
    unreachable = vulnerability_service_unreachable()
    if unreachable:
        pytest.skip(unreachable)

    result = audit(pinned())

    assert result.audited > 0, f"nothing audited; unknown to the service: {result.unaudited}"
    known = explained()
    unexplained = {v: where for v, where in result.findings.items() if v not in known}
    assert not unexplained, f"explain or fix in tools/pip-audit/explained.toml: {unexplained}"
    stale = set(known) - set(result.findings)
    assert not stale, f"no longer reported, remove from explained.toml: {sorted(stale)}"
