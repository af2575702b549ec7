"""Every bad policy or rule pack stops the run with file, line, place and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.errors import InputError
from scanner.pipeline import load_ruleset

BAD = Path(__file__).parent / "data" / "bad"

POLICIES = {
    "policy-unknown-key.yaml": ("3", "networks[0]: unknown key 'subnet'"),
    "policy-bad-subnet.yaml": ("4", "networks[0].subnets[1]: invalid subnet '10.10.11.0/33'"),
    "policy-host-bits.yaml": ("4", "did you mean 192.168.10.0/24?"),
    "policy-bad-glob.yaml": ("4", "networks[0].names[0]: bad glob 'VM [prod'"),
    "policy-unknown-override.yaml": ("6", "overrides.LM099: unknown rule id"),
    "policy-malformed.yaml": ("5", "invalid YAML"),
    "policy-wrong-version.yaml": ("1", "unsupported version 2"),
}
PACKS = {
    "rules-unknown-operator.yaml": ("8", "rule SITE001: select.equals: unknown operator 'equals'"),
    "rules-bad-regex.yaml": ("8", "rule SITE002: select.matches: bad regex 'Replica('"),
    "rules-duplicate-id.yaml": ("4", "rule LM001: duplicate rule id"),
    "rules-unknown-fact.yaml": ("8", "rule SITE003: expect.fact: unknown fact 'carries_lm' for scope node"),
    "rules-unknown-key.yaml": ("4", "rule SITE004: unknown key 'rational'"),
    "rules-bad-template.yaml": ("10", "rule SITE005: remediation: template uses unknown name 'excluded'"),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_bad_policy(name):
    line, fragment = POLICIES[name]
    with pytest.raises(InputError) as err:
        load_ruleset(BAD / name)
    assert str(err.value).startswith(f"{BAD / name}:{line}: "), str(err.value)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(PACKS))
def test_bad_rule_pack(name):
    line, fragment = PACKS[name]
    with pytest.raises(InputError) as err:
        load_ruleset(None, [BAD / name])
    assert str(err.value).startswith(f"{BAD / name}:{line}: "), str(err.value)
    assert fragment in str(err.value)


def test_bad_data_directory_is_fully_covered():
    assert {p.name for p in BAD.glob("*.yaml")} == set(POLICIES) | set(PACKS)


@pytest.mark.parametrize("condition, fragment", [
    ("{fact: class, in: iscsi}", "expected a list"),
    ("{fact: metric, lt: low}", "expected a number"),
    ("{fact: subnets, within: [10.0.0.0/33]}", "invalid subnet"),
    ("{fact: class, eq: {policy: live_migration.denied}}", "unknown policy value"),
    ("{each: name, holds: {fact: name, eq: x}}", "not a collection"),
    ("{fact: class}", "exactly one operator"),
    ("{all: []}", "non-empty list"),
    ("{fact: class, eq: x, ne: y}", "exactly one operator"),
    ("{whatever: 1}", "unknown condition"),
    ("[1, 2]", "must be a mapping"),
])
def test_condition_errors(tmp_path, condition, fragment):
    pack = tmp_path / "pack.yaml"
    pack.write_text("lmscan_rules: 1\nrules:\n  - id: T1\n    title: t\n    severity: low\n    scope: network\n"
                    f"    expect: {{all: [{{fact: carries_lm, eq: true}}, {condition}]}}\n"
                    "    rationale: r\n    remediation: r\n")
    with pytest.raises(InputError) as err:
        load_ruleset(None, [pack])
    assert fragment in str(err.value)
    assert str(err.value).startswith(f"{pack}:7: rule T1: expect.all[1]")


def test_builtin_pack_has_every_contract_rule():
    ids = [r.id for r in load_ruleset(None).rules]
    assert ids == [f"LM{i:03d}" for i in range(1, 17)] + [f"HOST{i:03d}" for i in range(1, 8)]


def test_readme_says_what_every_builtin_rule_needs_on_the_node():
    import re
    from pathlib import Path as _Path

    readme = (_Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### What each rule needs on the node", 1)[1].split("\n## ", 1)[0]
    covered: set[str] = set()
    for cell in re.findall(r"^\| ([A-Z0-9-]+) \|", table, re.M):
        m = re.fullmatch(r"([A-Z]+)(\d{3})(?:-\1(\d{3}))?", cell)
        assert m, cell
        first, last = int(m.group(2)), int(m.group(3) or m.group(2))
        covered |= {f"{m.group(1)}{i:03d}" for i in range(first, last + 1)}
    assert covered == {r.id for r in load_ruleset(None).rules}
