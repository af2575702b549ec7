"""Issue 7 item 2: rule templates cannot change anything, cannot cost without bound, fail at load.

Everything a pack can be refused for at load is an exit 2 with ``file:line``; what only shows when
a template runs stops it with an ``error`` result naming the template, never a hang.
"""

from __future__ import annotations

import json
import time
import types
from pathlib import Path

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from scanner import templating
from scanner.cli import main
from scanner.errors import InputError
from scanner.pipeline import load_ruleset

DEMO = Path(__file__).parents[1] / "scanner" / "demo"


def pack(tmp_path: Path, message: str = "ok", remediation: str = "r", scope: str = "network") -> Path:
    p = tmp_path / "pack.yaml"
    p.write_text("lmscan_rules: 1\nrules:\n  - id: T1\n    title: t\n    severity: low\n"
                 f"    scope: {scope}\n    expect: {{fact: name, present: true}}\n"
                 f"    message:\n      pass: {json.dumps(message)}\n"
                 f"    rationale: r\n    remediation: |\n" + "".join(f"      {x}\n" for x in remediation.splitlines()))
    return p


def scan(tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, str]], str]:
    out = tmp_path / "r.json"
    out.unlink(missing_ok=True)
    code = main(["scan", "--snapshot", str(DEMO), "--policy", str(DEMO / "policy.yaml"), "--rules", str(rules),
                 "-q", "--json", str(out)])
    err = capsys.readouterr().err
    results = [r for r in json.loads(out.read_text())["results"] if r["rule"] == "T1"] if out.exists() else []
    return code, results, err


def test_item2_pack_cannot_rewrite_the_policy(tmp_path, capsys):
    """The reported attack: a message template that switched LM002 off is refused at load."""
    rules = pack(tmp_path, "{{ cluster.policy.overrides.update({'LM002': {'enabled': false}}) or '' }}")
    assert main(["rules", "validate", str(rules)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{rules}:9: rule T1: message.pass: calling .update()" in err
    code, results, _ = scan(tmp_path, rules, capsys)
    assert code == 2 and results == []


@pytest.mark.parametrize("expr", [
    "{{ x.update({'a': 1}) }}", "{{ x.hosts.clear() }}", "{{ y.append(1) }}", "{{ x.__class__ }}",
    "{{ y.__len__() }}",
])
def test_item2_template_values_are_read_only_at_run_time(expr):
    """Even past the load-time checks, the values a template gets cannot be changed."""
    tmpl = templating.MESSAGES.from_string(expr)
    ctx = {"x": templating.readonly({"a": 0, "hosts": {"k": 1}}), "y": templating.readonly([1, 2])}
    assert isinstance(ctx["x"], types.MappingProxyType) and isinstance(ctx["y"], tuple)
    with pytest.raises((SecurityError, jinja2.UndefinedError, AttributeError)):
        templating.render(tmpl, ctx)
    assert ctx["x"]["a"] == 0 and ctx["x"]["hosts"]["k"] == 1 and ctx["y"] == (1, 2)


def test_item2_views_expose_facts_but_not_the_policy(tmp_path, capsys):
    rules = pack(tmp_path, "{{ network.name }}|{{ cluster.cluster.name }}|{{ cluster.policy is defined }}",
                 scope="network")
    code, results, err = scan(tmp_path, rules, capsys)
    assert code == 1, err
    assert results and all(r["message"].endswith("|False") for r in results)


@pytest.mark.parametrize("template, line, fragment", [
    ("{{ 'x' * 3000000000 }}", 9, "repetition would build 3000000000 items"),
    ("{{ 2 ** 100000000 }}", 9, "too large a number"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", 9, "macro 'f' calls itself"),
    ("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}", 9, "calls itself"),
    ("{% include 'other.j2' %}", 9, "'{% include %}' is not available"),
    ("{% import 'other.j2' as o %}", 9, "'{% import %}' is not available"),
    ("{% from 'other.j2' import m %}", 9, "'{% from ... import %}' is not available"),
    ("{% extends 'base.j2' %}", 9, "'{% extends %}' is not available"),
    ("{{ network.name | nosuch }}", 9, "unknown filter 'nosuch'"),
    ("{% if network.name is nosuch %}x{% endif %}", 9, "unknown test 'nosuch'"),
    ("{{ network.name | format(1) }}", 9, "unknown filter 'format'"),
    ("{{ network.name | center(3000000000) }}", 9, "unknown filter 'center'"),
    ("{{ network.name.ljust(3000000000) }}", 9, "calling .ljust() is not allowed"),
    ("{{ '{:>999999999}'.format(1) }}", 9, "calling .format() is not allowed"),
    ("{{ '%999999999d' % 1 }}", 9, "'%' string formatting is not available"),
    ("{{ range(10) | list }}", 9, "unknown name 'range'"),
    ("{{ lipsum(100000) }}", 9, "unknown name 'lipsum'"),
    ("{{ network.name | truncate(10000000000) }}", 9, "argument 10000000000 is too large"),
    ("{{ network.name ", 9, "template error"),
])
def test_item2_hostile_templates_are_refused_at_load(tmp_path, capsys, template, line, fragment):
    rules = pack(tmp_path, template)
    started = time.monotonic()
    assert main(["rules", "validate", str(rules)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"lmscan: error: {rules}:{line}: rule T1: message.pass: "), err
    assert fragment in err
    print(f"refused in {time.monotonic() - started:.3f} s")


def test_item2_template_errors_point_at_the_template_line(tmp_path):
    rules = pack(tmp_path, remediation="# fine\n# fine too\n{{ network.name | nosuch }}")
    with pytest.raises(InputError) as err:
        load_ruleset(None, [rules])
    assert str(err.value).startswith(f"{rules}:14: rule T1: remediation: unknown filter 'nosuch'")


LOOPS = "".join("{% for n" + str(i) + " in cluster.networks %}" for i in range(8)) + "x" + "{% endfor %}" * 8


@pytest.mark.parametrize("template, fragment", [
    (LOOPS, "loop iterations and calls"),
    ("{{ network.name * 3000000000 }}", "repetition would build"),
    ("{{ cluster.networks | map(attribute='name') | join('x' * 1000000) }}", "join would build"),
    ("{{ (network.name ~ 'x') * 1000000 }}", "repetition would build"),
])
def test_item2_runaway_templates_stop_with_an_error_result(tmp_path, capsys, monkeypatch, template, fragment):
    # The budget under test, not the clock: on a loaded machine the 2 s limit could stop the loop
    # first (that limit has its own test below).
    monkeypatch.setattr(templating, "MAX_SECONDS", 600.0)
    rules = pack(tmp_path, template)
    started = time.monotonic()
    code, results, err = scan(tmp_path, rules, capsys)
    print(f"scan with a runaway template: {time.monotonic() - started:.2f} s")
    assert code == 3 or code == 1, err
    stopped = [r for r in results if r["status"] == "error"]
    assert stopped, results
    assert all(f"rule T1: message.pass template ({rules}:9) was stopped" in r["message"] for r in stopped)
    assert any(fragment in r["message"] for r in stopped)


def test_item2_a_slow_template_stops_at_the_time_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(templating, "MAX_SECONDS", 0.0)
    rules = pack(tmp_path, LOOPS)
    code, results, err = scan(tmp_path, rules, capsys)
    assert code in (1, 3), err
    stopped = [r for r in results if r["status"] == "error"]
    assert stopped and all("was stopped" in r["message"] and "stopped after 0 s" in r["message"] for r in stopped)


def test_item2_loop_budget_counts_iterations():
    nested = "{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}"
    compiled = templating.compile_template(nested, templating.MESSAGES, {"x"})
    with pytest.raises(templating.TemplateLimitError, match="loop iterations"):
        templating.render(compiled, {"x": tuple(range(100))})
    assert templating.render(compiled, {"x": tuple(range(10))}) == ""


@pytest.mark.parametrize("remediation, fragment", [
    ("Set-VMHost -ComputerName {{ node.name }}", "would be PowerShell code"),
    ("Get-ClusterNetwork -Name '{{ network.name }}'", "inside a PowerShell string"),
    ('Write-Host "{{ network.name | psq }}"', "inside a PowerShell string"),
    ("Get-ClusterNetwork | Where-Object { $_.Name -eq {{ network.name | upper }} }", "would be PowerShell code"),
])
def test_item1_remediation_templates_quote_field_text_in_code(tmp_path, remediation, fragment):
    """Item 1's load-time half: unquoted field text in a code position of a remediation is refused."""
    rules = pack(tmp_path, remediation=remediation)
    with pytest.raises(InputError) as err:
        load_ruleset(None, [rules])
    assert fragment in str(err.value) and str(err.value).startswith(f"{rules}:12: rule T1: remediation: ")


@pytest.mark.parametrize("remediation", [
    "# {{ network.name }} and <# {{ network.name }} #>\nGet-ClusterNetwork -Name {{ network.name | psq }}",
    "{{ set_exclude(exclude | union(failing_ids)) }}",
    "Set-VMHost -VirtualMachineMigrationAuthenticationType {{ policy.hosts.authentication }} # it's {{ node }}",
])
def test_item1_remediation_templates_that_quote_are_accepted(tmp_path, remediation):
    load_ruleset(None, [pack(tmp_path, remediation=remediation)])
