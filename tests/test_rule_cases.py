"""Every built-in rule against its pass/fail/skip/error cases in tests/data/rules.

A case directory ``<RULE>.<outcome>[-variant]/`` holds node snapshots, an ``expected.yaml``
listing every result of that rule in the scan (target kind, name, status), and optionally its
own ``policy.yaml``. The expectations were written from the contract, independently of the
engine, so a difference is either an engine bug or a contract reading to settle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DATA = Path(__file__).parent / "data" / "rules"
SHARED_POLICY = DATA / "policy.yaml"

#: Built-in rule ids of contracts §4.
BUILTIN_RULES = (
    "LM001", "LM002", "LM003", "LM004", "LM005", "LM006", "LM007", "LM008", "LM009", "LM010",
    "LM011", "LM012", "LM013", "LM014", "LM015", "LM016",
    "HOST001", "HOST002", "HOST003", "HOST004", "HOST005", "HOST006", "HOST007",
)
#: Rules added with contracts §4 as amended: each also has skip and error cases.
NEW_RULES = {"LM013", "LM014", "LM015", "LM016", "HOST006", "HOST007"}
#: Rules that cannot fail by contract: LM012 is informational (pass with a message, or skip).
NEVER_FAIL = {"LM012"}
STATUSES = {"pass", "fail", "error", "skip", "waived"}
KINDS = {"cluster", "node", "network", "interface", "vm"}

Row = tuple[str, str, str]


def case_dirs() -> list[Path]:
    return sorted(p for p in DATA.iterdir() if p.is_dir() and (p / "expected.yaml").is_file())


def load_expected(case: Path) -> tuple[str, set[Row]]:
    doc: Any = yaml.safe_load((case / "expected.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict) and set(doc) <= {"rule", "note", "results"}, f"{case.name}: bad expected.yaml keys"
    rule = doc["rule"]
    assert case.name.split(".", 1)[0] == rule, f"{case.name}: expected.yaml names rule {rule}"
    rows: set[Row] = set()
    for item in doc["results"]:
        assert item["kind"] in KINDS and item["status"] in STATUSES, f"{case.name}: bad result {item}"
        rows.add((item["kind"], str(item["name"]).casefold(), item["status"]))
    assert rows, f"{case.name}: no expected results"
    return rule, rows


def describe(rows: set[Row]) -> str:
    return "\n".join(f"    {k:8} {n:32} {s}" for k, n, s in sorted(rows)) or "    (none)"


@pytest.mark.parametrize("case", case_dirs(), ids=lambda p: p.name)
def test_rule_case(case: Path) -> None:
    from scanner.pipeline import run_scan

    rule, expected = load_expected(case)
    policy = case / "policy.yaml" if (case / "policy.yaml").is_file() else SHARED_POLICY
    report = run_scan([case], policy_path=policy, rule_paths=[])
    got = {(r.target.kind, r.target.name.casefold(), str(getattr(r.status, "value", r.status)))
           for r in report.results if r.rule == rule}
    if got != expected:
        messages = {f"{r.target.kind} {r.target.name}: {r.status} - {r.message}"
                    for r in report.results if r.rule == rule}
        pytest.fail(
            f"{case.name}: results of {rule} differ from expected.yaml\n"
            f"  missing (expected, not produced):\n{describe(expected - got)}\n"
            f"  unexpected (produced, not expected):\n{describe(got - expected)}\n"
            "  engine messages:\n" + "\n".join(f"    {m}" for m in sorted(messages)),
            pytrace=False,
        )


def test_every_builtin_rule_has_pass_and_fail_cases() -> None:
    names = [p.name for p in case_dirs()]
    missing = []
    for rule in BUILTIN_RULES:
        outcomes = {n.split(".", 1)[1].split("-", 1)[0] for n in names if n.split(".", 1)[0] == rule}
        needed = {"pass", "skip"} if rule in NEVER_FAIL else {"pass", "fail"}
        if rule in NEW_RULES:
            needed |= {"skip", "error"}
        missing += [f"{rule}.{o}" for o in sorted(needed - outcomes)]
    assert not missing, f"case directories missing for: {', '.join(missing)}"


def test_case_directory_outcome_matches_expected_statuses() -> None:
    """A case named ``.fail`` must expect a fail (and so on), so names stay honest."""
    wrong = []
    for case in case_dirs():
        outcome = case.name.split(".", 1)[1].split("-", 1)[0]
        _, rows = load_expected(case)
        if outcome not in {s for _, _, s in rows}:
            wrong.append(case.name)
    assert not wrong, f"cases whose expected results lack their named outcome: {wrong}"


def test_case_snapshots_are_valid() -> None:
    from scanner.snapshot import read_snapshots

    for case in case_dirs():
        snaps = read_snapshots([case])
        assert snaps, case.name
        assert {s.cluster_name() for s in snaps} != {None}, case.name


def test_demo_tells_its_story() -> None:
    """The shipped demo: findings in three clusters, one unreachable node, one clean cluster."""
    from scanner.pipeline import run_scan

    demo = Path(__file__).resolve().parents[1] / "scanner" / "demo"
    report = run_scan([demo], policy_path=demo / "policy.yaml", rule_paths=[])
    bad = {(r.cluster, r.rule, r.target.name, str(getattr(r.status, "value", r.status)))
           for r in report.results if str(getattr(r.status, "value", r.status)) in ("fail", "error")}
    assert {c.name for c in report.clusters} == {"HVCLU08", "HVCLU19", "AZLCLU01", "HVCLU22"}
    assert {
        ("HVCLU08", "LM001", "APP02", "fail"),          # 2008 R2 VM drifted onto iSCSI
        ("HVCLU19", "LM002", "Management", "fail"),     # management carries LM ...
        ("HVCLU19", "LM006", "HVCLU19", "fail"),        # ... and is first in the order
        ("HVCLU19", "HOST002", "HV19-N3", "fail"),
        ("AZLCLU01", "LM004", "Cluster Network 2", "fail"),  # partitioned BMC network
        ("AZLCLU01", "LM010", "AZLCLU01", "error"),     # AZL-N04 not collected
        ("AZLCLU01", "LM014", "AZL-N01", "fail"),       # SMB Multichannel not constrained
        ("HVCLU19", "LM015", "LiveMigration", "fail"),  # jumbo frames forgotten on HV19-N3
        ("HVCLU19", "LM016", "LiveMigration", "fail"),  # a default gateway on the LM network
        ("HVCLU19", "HOST006", "HV19-N4", "fail"),      # no delegation of the migration service
    } <= bad
    assert not {b for b in bad if b[0] == "HVCLU22"}, "the 2022 cluster is the clean one"
