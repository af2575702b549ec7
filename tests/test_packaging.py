"""The wheel ships rules, report templates, demo data and the collector inside ``scanner`` only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("lmscan-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_contents(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"scanner"}
    for needed in ("scanner/rules/builtin.yaml", "scanner/rules/default-policy.yaml",
                   "scanner/reports/templates/report.html.j2", "scanner/collect/collect.ps1",
                   "scanner/demo/policy.yaml", "scanner/cli.py"):
        assert needed in names, needed
    demo = [n for n in names if n.startswith("scanner/demo/") and n.endswith(".json")]
    assert len(demo) >= 9
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "lmscan = scanner.cli:main" in wheel.read(meta).decode()
