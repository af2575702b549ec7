"""A fix never makes things worse: apply every action of a scan to the model, evaluate again.

For every rule case in tests/data/rules, the demo, and clusters hypothesis makes up: each
finding that carries actions passes afterwards (or is no longer selected), and no result that
passed before fails or errs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.actions import apply, from_dict, to_dict
from scanner.engine import evaluate
from scanner.model import Result, Status
from scanner.normalize import Cluster, group_clusters
from scanner.pipeline import RuleSet, load_ruleset, read_clusters, scan_clusters
from scanner.policy import policy_from_doc
from scanner.snapshot import parse_snapshot
from scanner.yamlsrc import load_yaml

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "data" / "rules"
DEMO = ROOT / "scanner" / "demo"
TODAY = dt.date(2026, 11, 30)


def broken_promises(ruleset: RuleSet, clusters: Sequence[Cluster], results: Sequence[Result]) -> list[str]:
    """What the invariant finds wrong, one line per result (empty when it holds)."""
    problems = []
    for cluster in clusters:
        before = [r for r in results if r.cluster == cluster.name]
        actions = [a for r in before if r.status is Status.FAIL for a in r.actions]
        if not actions:
            continue
        fixed = apply(actions, cluster)
        after = {r.id: r for r in evaluate(ruleset.rules, [fixed], ruleset.policy, today=TODAY)}
        for r in before:
            now = after.get(r.id)
            status = now.status if now is not None else None
            if r.status is Status.FAIL and r.actions and status not in (None, Status.PASS, Status.SKIP):
                problems.append(f"{r.id}: remediated but still {status}: {now.message if now else ''}")
            if r.status is Status.PASS and status in (Status.FAIL, Status.ERROR) and not _majority_moved(r, before):
                problems.append(f"{r.id}: passed before, {status} after the fixes: {now.message if now else ''}")
    return problems


def _majority_moved(r: Result, before: Sequence[Result]) -> bool:
    """The one allowed change: LM007 compares a VM with the majority. When the policy's lists
    would make some VM worse, its LM007 gets no actions (left to the administrator), and fixing
    the other findings can then move the majority away from a VM that matched it."""
    return r.rule == "LM007" and any(x.rule == "LM007" and x.status is Status.FAIL and not x.actions
                                     for x in before)


def case_dirs() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir() and (p / "expected.yaml").is_file())


@pytest.mark.parametrize("case", [*case_dirs(), DEMO], ids=lambda p: p.name)
def test_fixes_hold_for_every_scenario(case: Path) -> None:
    policy = case / "policy.yaml" if (case / "policy.yaml").is_file() else CASES / "policy.yaml"
    ruleset = load_ruleset(policy)
    clusters = read_clusters([case])
    report = scan_clusters(ruleset, clusters, today=TODAY)
    problems = broken_promises(ruleset, clusters, report.results)
    assert not problems, "\n".join(problems)
    for r in report.results:   # the JSON form reads back as the same actions
        assert tuple(from_dict(to_dict(a)) for a in r.actions) == r.actions


def test_the_demo_has_fixes_to_check() -> None:
    """The invariant above is not vacuous: the demo's findings carry actions of every main kind."""
    ruleset = load_ruleset(DEMO / "policy.yaml")
    report = scan_clusters(ruleset, read_clusters([DEMO]), today=TODAY)
    kinds = {a.kind for r in report.results for a in r.actions}
    assert {"set_lm_list", "set_host", "remove_migration_network", "set_atc_override", "add_delegation",
            "remove_default_route"} <= kinds


# ----------------------------------------------------------------------------- made-up clusters

CLASSES = ["iscsi", "management", "guest", "live_migration", "storage", "cluster", "replica"]
SUBNETS = {c: f"10.{i}.0.0" for i, c in enumerate(CLASSES, start=1)}   # replica stays unclassified
UNKNOWN_ID = "deadbeef-0000-4000-8000-000000000000"


def _policy_text(allowed: list[str], preferred: list[str], hosts: dict[str, Any]) -> str:
    nets = "\n".join(f"  - {{class: {c}, subnets: [{SUBNETS[c]}/16]}}" for c in CLASSES if c != "replica")
    text = f"lmscan_policy: 1\nnetworks:\n{nets}\nlive_migration: {{allowed: {json.dumps(allowed)}, " \
           f"preferred: {json.dumps(preferred)}}}\n"
    if hosts:
        text += f"hosts: {json.dumps(hosts)}\n"
    return text


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """A site policy and the snapshots of one cluster's nodes."""
    allowed = draw(st.lists(st.sampled_from(CLASSES), unique=True))
    # A coherent policy: what it prefers it also allows, and never a class the rules keep out.
    # (A policy that prefers iSCSI contradicts itself; no fix can satisfy both rules.)
    fit = [c for c in allowed if c not in ("iscsi", "management", "guest")]
    preferred = draw(st.lists(st.sampled_from(fit), unique=True, max_size=2)) if fit else []
    hosts = draw(st.fixed_dictionaries({}, optional={
        "authentication": st.sampled_from(["Kerberos", "CredSSP"]),
        "performance_option": st.lists(st.sampled_from(["TCPIP", "Compression", "SMB"]), min_size=1, unique=True),
        "max_migrations": st.integers(1, 4)}))
    legacy = draw(st.booleans())
    n_nets = draw(st.integers(1, 6))
    nets = []
    for i in range(n_nets):
        cls = draw(st.sampled_from(CLASSES))
        nets.append({"Name": f"Net{i}-{cls}", "Id": f"0000000{i}-1111-4222-8333-444455556666",
                     "Role": draw(st.integers(0, 3)), "State": draw(st.sampled_from([3, 3, 3, 1])),
                     "Address": SUBNETS[cls].rsplit(".", 2)[0] + f".{i}.0", "AddressMask": "255.255.255.0",
                     "Metric": draw(st.integers(1, 5)) * 1000 + i})
    ids = [n["Id"] for n in nets] + [UNKNOWN_ID]

    def lm_setting() -> dict[str, str]:
        exclude = draw(st.lists(st.sampled_from(ids), unique=True))
        order = draw(st.lists(st.sampled_from(ids), unique=True, max_size=4))
        return {"MigrationExcludeNetworks": ";".join(exclude), "MigrationNetworkOrder": ";".join(order)}

    node_names = [f"HV0{i}" for i in range(1, draw(st.integers(1, 3)) + 1)]
    sections: dict[str, Any] = {
        "Cluster": {"Name": "GEN", "MaximumParallelMigrations": draw(st.one_of(st.none(), st.integers(1, 6)))},
        "ClusterNode": [{"Name": n, "State": 0} for n in node_names],
        "ClusterNetwork": nets,
        "OperatingSystem": {"Caption": "Windows Server 2008 R2" if legacy else "Windows Server 2022",
                            "Version": "6.1.7601" if legacy else "10.0.20348"},
    }
    if legacy:
        sections["VirtualMachineResource"] = [
            {"Name": f"Virtual Machine VM{i}", "OwnerGroup": f"VM{i}", "OwnerNode": node_names[0], **lm_setting()}
            for i in range(draw(st.integers(1, 4)))]
        del sections["Cluster"]["MaximumParallelMigrations"]
    else:
        sections["VirtualMachineResourceType"] = lm_setting()
        if draw(st.booleans()):
            sections["NetIntent"] = [{"IntentName": "storage", "IsStorageIntentSet": True}]
            sections["NetIntentGlobalOverrides"] = {
                "EnableLiveMigrationNetworkSelection": draw(st.sampled_from([None, True, False])),
                "EnableVirtualMachineMigrationPerformanceSelection": draw(st.sampled_from([None, True, False]))}
    docs = []
    for node in node_names:
        own = dict(sections)
        own["ClusterNetworkInterface"] = [
            {"Name": f"{node} - {n['Name']}", "Node": node, "Network": n["Name"], "NetworkId": n["Id"],
             "State": draw(st.sampled_from([3, 3, 1]))}
            for n in nets if draw(st.integers(0, 5)) > 0]
        if not legacy:
            own["VMHost"] = {
                "VirtualMachineMigrationEnabled": draw(st.booleans()),
                "UseAnyNetworkForMigration": draw(st.booleans()),
                "VirtualMachineMigrationAuthenticationType": draw(st.integers(0, 1)),
                "VirtualMachineMigrationPerformanceOption": draw(st.sampled_from([0, 1, 2, None])),
                "MaximumVirtualMachineMigrations": draw(st.integers(1, 6)),
                "MaximumStorageMigrations": 2}
            own["VMMigrationNetwork"] = [{"Subnet": SUBNETS[c] + "/16", "Priority": i}
                                         for i, c in enumerate(draw(st.lists(st.sampled_from(CLASSES), unique=True,
                                                                             max_size=3)))]
        docs.append({"lmscan_snapshot": 1, "node": node, "sections": own})
    return _policy_text(allowed, preferred, hosts), docs


_BUILTIN: list[RuleSet] = []


def _builtin() -> RuleSet:
    if not _BUILTIN:
        _BUILTIN.append(load_ruleset(None))
    return _BUILTIN[0]


def _made_up(policy_text: str, docs: list[dict[str, Any]]) -> tuple[list[Any], list[str]]:
    doc = load_yaml(Path("<generated policy>"), policy_text)
    policy = policy_from_doc(doc, raw=policy_text.encode())
    base = _builtin()
    ruleset = RuleSet(policy=policy, packs=base.packs, rules=base.rules)
    snaps = [parse_snapshot(json.dumps(d).encode(), f"{d['node']}.json") for d in docs]
    clusters = group_clusters(snaps)
    results = evaluate(ruleset.rules, clusters, policy, today=TODAY)
    return results, broken_promises(ruleset, clusters, results)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fixes_hold_for_made_up_clusters(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    policy_text, docs = scenario
    _, problems = _made_up(policy_text, docs)
    assert not problems, policy_text + "\n".join(problems)


def test_a_role_change_that_would_reorder_atc_lists_is_left_to_the_intents() -> None:
    """A case hypothesis found: the fix of LM008 would have broken LM006 under Network ATC."""
    case = json.loads((Path(__file__).parent / "data" / "remediation" / "atc-role-moves-order.json").read_text())
    results, problems = _made_up(case["policy"], case["snapshots"])
    assert not problems
    lm008 = next(r for r in results if r.rule == "LM008" and r.status.value == "fail")
    assert not lm008.actions and "Set-NetIntent" in lm008.remediation
