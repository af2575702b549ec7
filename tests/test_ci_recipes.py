"""The CI recipes in examples/ci: valid YAML, gate on the exit code, publish the right file, match the README."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanner.cli import build_parser

ROOT = Path(__file__).parents[1]
CI = ROOT / "examples" / "ci"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _load(name: str) -> Any:
    return yaml.safe_load((CI / name).read_text(encoding="utf-8"))


def _scan_args(line: str) -> Any:
    """The lmscan command of a recipe, parsed by lmscan's own parser (so it cannot rot)."""
    words = shlex.split(line.replace("$(LMSCAN_PACKAGE)", "x"))
    start = next(i for i, w in enumerate(words) if w.endswith("lmscan") and words[i + 1] == "scan")
    return build_parser().parse_args(words[start + 1:])


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml", "Jenkinsfile", "azure-pipelines.yml"])
def test_the_readme_carries_each_recipe_verbatim(name: str) -> None:
    text = (CI / name).read_text(encoding="utf-8")
    assert text.strip() in README, f"README's copy of examples/ci/{name} differs"


def test_github_actions() -> None:
    doc = _load("github-actions.yml")
    assert "schedule" in doc.get("on", doc.get(True))      # YAML 1.1 reads a bare `on` as true
    assert doc["permissions"]["security-events"] == "write"
    steps = doc["jobs"]["lmscan"]["steps"]
    scan = next(i for i, s in enumerate(steps) if "lmscan scan" in s.get("run", ""))
    assert "continue-on-error" not in steps[scan] and "if" not in steps[scan]   # the exit code gates
    args = _scan_args(steps[scan]["run"])
    assert args.out_dir == Path("out") and str(args.markdown) == "$GITHUB_STEP_SUMMARY"
    sarif = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert sarif["with"]["sarif_file"] == "out/results.sarif" and sarif["if"] == "always()"
    assert steps.index(sarif) > scan


def test_gitlab_ci() -> None:
    job = _load("gitlab-ci.yml")["lmscan"]
    (scan,) = [line for line in job["script"] if line.startswith("lmscan scan")]
    assert _scan_args(scan).out_dir == Path("out")
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "out/junit.xml"
    assert "allow_failure" not in job


def test_azure_devops() -> None:
    steps = _load("azure-pipelines.yml")["steps"]
    scan = next(i for i, s in enumerate(steps) if s.get("script", "").startswith("lmscan scan"))
    assert _scan_args(steps[scan]["script"]).out_dir == Path("out")
    assert "condition" not in steps[scan] and "continueOnError" not in steps[scan]
    publish = next(s for s in steps if s.get("task") == "PublishTestResults@2")
    assert publish["inputs"]["testResultsFormat"] == "JUnit"
    assert publish["inputs"]["testResultsFiles"] == "out/junit.xml"
    assert publish["condition"] == "always()" and steps.index(publish) > scan
    summary = next(s for s in steps if "task.uploadsummary" in s.get("script", ""))
    assert "/out/summary.md" in summary["script"] and summary["condition"] == "always()"
    sarif = next(s for s in steps if s.get("inputs", {}).get("artifact") == "CodeAnalysisLogs")
    assert sarif["inputs"]["targetPath"] == "out/results.sarif"


def test_jenkinsfile() -> None:
    text = (CI / "Jenkinsfile").read_text(encoding="utf-8")
    assert text.count("{") == text.count("}")
    assert text.lstrip("/ ").split("\n", 1)[1].lstrip().startswith("pipeline {")
    scan = next(line for line in text.splitlines() if "lmscan scan" in line)
    assert _scan_args(scan.strip().removeprefix("sh ").strip("'")).out_dir == Path("out")
    post = text[text.index("post {"):]
    assert "always {" in post and "junit testResults: 'out/junit.xml'" in post
    assert text.index("lmscan scan") < text.index("post {")
    assert "returnStatus" not in text and "catchError" not in text    # nothing swallows the exit code
