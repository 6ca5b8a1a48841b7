"""The wheel the services image installs carries the storefront and the API docs' pages."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
UV = ROOT / ".uv" / "bin" / "uv"  # bootstrapped by make, pinned in the Makefile
STATIC = ROOT / "services" / "microshop" / "gateway" / "static"


def test_the_wheel_ships_every_static_file_of_the_gateway(tmp_path: Path) -> None:
    subprocess.run(
        [str(UV), "build", "--wheel", "--quiet", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("microshop-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"microshop/gateway/static/{path.relative_to(STATIC).as_posix()}"
        for path in STATIC.rglob("*")
        if path.is_file()
    }

    assert len(expected) > 30
    assert expected <= shipped, sorted(expected - shipped)
