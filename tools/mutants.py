"""`make mutants`: mutation testing (mutmut) of the pure modules, and their kill rate.

mutmut mutates code found under `src/` (or the project root) and imports it from its copy, so
this lays out a work tree in `.mutants/` with both packages under `src/` and the tests beside
them, runs `mutmut run` there on the modules in MODULES with the tests in TESTS, and prints the
kill rate. A surviving mutant is either killed by a new test or explained, by its mutmut name,
in tests/mutants-explained.md; `--check` fails when one is neither.

    .venv/bin/python -m tools.mutants [--check] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutants"
EXPLAINED = ROOT / "tests" / "mutants-explained.md"

# The pure modules (plain Python rules, and the platform's outbox, inbox and group commit), and
# the tests that speak for them: mutmut runs, for each mutant, only those that reach it.
SCOPES = {
    "services": (
        (
            "microshop/orders/domain.py",
            "microshop/payments/domain.py",
            "microshop/notifications/domain.py",
            "microshop/users/domain.py",
            "microshop/platform/outbox.py",
            "microshop/platform/groupcommit.py",
        ),
        (
            "tests/unit/orders/test_domain.py",
            "tests/unit/orders/test_domain_rules.py",
            "tests/unit/payments/test_payments.py",
            "tests/unit/payments/test_payments_rules.py",
            "tests/unit/notifications/test_notifications_domain.py",
            "tests/unit/notifications/test_notifications_rules.py",
            "tests/unit/users/test_users_domain.py",
            "tests/unit/users/test_users_rules.py",
            "tests/unit/platform/test_outbox.py",
            "tests/unit/platform/test_outbox_rules.py",
            "tests/unit/platform/test_group_commit.py",
        ),
    ),
    "operator": (
        ("microshop_operator/spec.py", "microshop_operator/status.py"),
        ("tests/unit/operator",),
    ),
}
MODULES: tuple[str, ...] = ()
TESTS: tuple[str, ...] = ()
KILLED = ("killed", "timeout")
SURVIVED = ("survived", "no tests")
PACKAGES = {"microshop": ROOT / "services" / "microshop"}
PACKAGES["microshop_operator"] = ROOT / "operator" / "microshop_operator"


def lay_out() -> None:
    """A fresh work tree: src/<package> for each package, the tests, and mutmut's settings."""
    if WORK.exists():
        shutil.rmtree(WORK)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name, source in PACKAGES.items():
        shutil.copytree(source, WORK / "src" / name, ignore=ignore)
    shutil.copytree(ROOT / "tests", WORK / "tests", ignore=ignore)
    for extra in ("crds", "manifests", "charts", "operator"):  # what the operator tests read
        if (ROOT / extra).is_dir():
            shutil.copytree(ROOT / extra, WORK / extra, ignore=ignore, symlinks=True)
    pyproject = (ROOT / "pyproject.toml").read_text()
    only = ", ".join(f'"src/{module}"' for module in MODULES)
    tests = ", ".join(f'"{test}"' for test in TESTS)
    (WORK / "pyproject.toml").write_text(
        pyproject
        + "\n[tool.mutmut]\n"
        + 'source_paths = ["src"]\n'
        + f"only_mutate = [{only}]\n"
        + f"pytest_add_cli_args_test_selection = [{tests}]\n"
        + 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        + 'also_copy = ["crds", "manifests", "charts", "operator"]\n'
    )


def results() -> dict[str, str]:
    """Each mutant's name and status, from `mutmut results --all true`."""
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    listing = subprocess.run(
        [mutmut, "results", "--all", "true"], cwd=WORK, capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in listing.splitlines():
        match = re.match(r"\s*(\S+): (.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def explained() -> set[str]:
    """Mutant names explained in tests/mutants-explained.md (in backticks at a line's start)."""
    if not EXPLAINED.exists():
        return set()
    return set(re.findall(r"^[-*] `([^`]+)`", EXPLAINED.read_text(), re.MULTILINE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="fail on an unexplained survivor")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--scope", choices=[*SCOPES, "all"], default="all")
    args = parser.parse_args()
    global MODULES, TESTS
    scopes = list(SCOPES) if args.scope == "all" else [args.scope]
    MODULES = tuple(module for scope in scopes for module in SCOPES[scope][0])
    TESTS = tuple(test for scope in scopes for test in SCOPES[scope][1])
    lay_out()
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    subprocess.run([mutmut, "run", "--max-children", str(args.jobs)], cwd=WORK, check=False)
    statuses = results()
    # A mutant no test reaches ("no tests") survives as surely as one the tests miss.
    killed = [name for name, status in statuses.items() if status in KILLED]
    survived = sorted(name for name, status in statuses.items() if status in SURVIVED)
    other = sorted(
        f"{name} ({status})" for name, status in statuses.items() if status not in KILLED + SURVIVED
    )
    reasons = explained()
    unexplained = [name for name in survived if name not in reasons]
    total = len(killed) + len(survived)
    rate = len(killed) / total if total else 0.0
    by_module: dict[str, list[int]] = {}
    for name, status in statuses.items():
        module = re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]  # mutmut: <module>.x_<function>…
        counts = by_module.setdefault(module, [0, 0])
        counts[0] += status in KILLED
        counts[1] += status in KILLED + SURVIVED
    print("\nmutants by module (killed/tested):")
    for module, (k, t) in sorted(by_module.items()):
        print(f"  {module:45} {k:4}/{t:<4} {k / t if t else 0:6.1%}")
    print(f"\nkill rate: {len(killed)}/{total} = {rate:.1%} (survived {len(survived)}, ", end="")
    print(f"explained {len(survived) - len(unexplained)}, unexplained {len(unexplained)})")
    for name in unexplained:
        print(f"  survived, not explained: {name}")
    for line in other:
        print(f"  not run: {line}")
    if args.json:
        args.json.write_text(
            json.dumps({"killed": len(killed), "total": total, "survived": survived}, indent=2)
        )
    return 1 if args.check and unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
