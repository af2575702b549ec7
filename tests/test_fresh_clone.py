"""A fresh clone with no ``../shared`` beside it collects cleanly and skips what needs shared files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, in_ci, shared_path


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``git clone`` of this checkout's HEAD into a folder that has no ``shared/`` beside it."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        if in_ci():
            pytest.fail("the fresh-clone test needs git and a git checkout", pytrace=False)
        pytest.skip("not a git checkout (or no git): nothing to clone")
    where = tmp_path_factory.mktemp("fresh")
    dest = where / "lmscan"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(dest)], check=True,
                   capture_output=True, timeout=120)
    assert not (where / "shared").exists()
    return dest


def _pytest(clone: Path, *args: str, ci: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    # ``-m pytest`` from the clone puts the clone first on sys.path: its ``scanner`` is the one tested.
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=300)


def test_collects_without_errors(clone: Path) -> None:
    proc = _pytest(clone, "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", proc.stdout, re.M), proc.stdout[-1000:]
    assert "error" not in proc.stdout.splitlines()[-1].lower()


def test_shared_file_tests_skip_with_the_file_named(clone: Path) -> None:
    proc = _pytest(clone, "tests/render/test_render_junit.py", "-k", "validates or would_not", "-rs")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = proc.stdout.splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary and "error" not in summary, summary
    assert "../shared/schemas/junit-10.xsd not found" in proc.stdout


def test_shared_file_tests_fail_when_ci_is_set(clone: Path) -> None:
    proc = _pytest(clone, "tests/render/test_render_junit.py", "-k", "would_not", ci=True)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "CI is set" in proc.stdout and "junit-10.xsd" in proc.stdout


def test_shared_path_finds_the_schema_beside_this_checkout() -> None:
    """Where ../shared is present (CI, the team's machines) the helper returns the real file."""
    path = shared_path("schemas/junit-10.xsd")
    assert path.read_bytes().lstrip().startswith(b"<?xml")
