"""The mail digest over a real scan: waivers about to expire, unreachable nodes, and the order."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from scanner.pipeline import run_scan
from scanner.render.digest import render_digest
from scanner.render.findings import expiring_waivers

from .conftest import HOSTILE_NAME, build_sample

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "scanner" / "demo"


def _scan_with_waivers(tmp_path: Path) -> tuple[str, str]:
    today = _dt.datetime.now(_dt.timezone.utc).date()
    soon, later = today + _dt.timedelta(days=5), today + _dt.timedelta(days=60)
    policy = tmp_path / "policy.yaml"
    policy.write_text((DEMO / "policy.yaml").read_text() + f"""
waivers:
  - rule: LM002
    cluster: HVCLU19
    reason: the new management switch arrives in December, until 2020-01-01 it is shared
    ticket: CHG-2211
    owner: hyperv-team
    expires: {soon.isoformat()}
  - rule: HOST002
    cluster: HVCLU19
    reason: test host
    expires: {later.isoformat()}
""")
    report = run_scan([DEMO], policy)
    waivers = expiring_waivers(report)
    assert [(w.rule, w.cluster, w.expires, w.days) for w in waivers] == [("LM002", "HVCLU19", soon.isoformat(), 5)]
    return render_digest(report)


def test_waivers_expiring_within_14_days_are_listed(tmp_path: Path) -> None:
    html, text = _scan_with_waivers(tmp_path)
    assert "Waivers expiring within 14 days (1)" in html
    assert "LM002 HVCLU19 · network Management: expires" in text and "(in 5 days)" in text
    assert "HOST002" not in text.split("Waivers expiring")[1]


def test_digest_names_unreachable_nodes_and_starts_with_the_worst() -> None:
    html, text = render_digest(run_scan([DEMO], DEMO / "policy.yaml"))
    assert "Nodes that could not be reached (1)" in text and "AZL-N04 (AZLCLU01): listed by Get-ClusterNode" in text
    body = text[text.index("What failed (14)"):]
    assert body.splitlines()[1].startswith("  CRITICAL LM001 iSCSI networks are excluded")
    assert "<script" not in html.lower() and "<img" not in html.lower() and "<link" not in html.lower()
    assert "display:flex" not in html.replace(" ", "") and "display:grid" not in html.replace(" ", "")


def test_field_text_is_escaped_in_html_and_clean_in_text() -> None:
    html, text = render_digest(build_sample(hostile=True))
    assert "<script" not in html and "&lt;script&gt;" in html
    assert HOSTILE_NAME in text                       # plain text shows it as text
    assert not any(ch in text for ch in "\x1b\x07\x00")
