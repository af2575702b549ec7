"""SARIF 2.1.0 for code-scanning UIs (GitHub, Azure DevOps, GitLab, IDE viewers).

One SARIF result per failing, waived or not-evaluated lmscan result; passes and skips are
left out, as code scanning expects. What each consumer relies on:

- ``level`` from the severity (critical/high: error, medium: warning, low/info: note) for a
  failure; a result lmscan could not evaluate is ``kind: review`` (the spec then requires
  level ``none``), so it is listed for a person to look at without claiming a failure;
- a waived failure is the failure with a ``suppressions`` entry (``status: accepted``) whose
  justification is the waiver's reason, so dashboards show it as dismissed, not fixed;
- ``partialFingerprints`` and ``correlationGuid`` come from the stable result id
  (``LM001/HVCLU01/network/<id>``), so a UI tracks one finding across nightly runs;
- there is no source file behind a cluster setting, so locations are logical:
  ``HVCLU01/network/iSCSI-A`` (``cluster/kind/target``), with the node for targets on one.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from scanner.model import Change, ResolvedFinding, Result, RuleInfo, ScanReport, Severity, Status
from scanner.render._common import clean, one_line, result_key, rule_key, rule_order

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT = "lmscanResultId/v1"
# correlationGuid is a UUID: the same result id always gives the same one.
_NAMESPACE = uuid.UUID("6b1d5f3e-8c0a-4f57-9a39-2f0e1c7d4a10")

_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
# GitHub code scanning reads properties.security-severity (0.0-10.0) for its own severity scale.
_SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                      Severity.LOW: "3.0", Severity.INFO: "0.0"}
_REPORTED = (Status.FAIL, Status.WAIVED, Status.ERROR)


def render_sarif(report: ScanReport) -> bytes:
    """The report as one SARIF 2.1.0 log with one run (UTF-8 JSON)."""
    order = rule_order(report)
    reported = sorted((r for r in report.results if r.status in _REPORTED),
                      key=lambda r: (r.cluster.casefold(),) + result_key(r, order))
    resolved = report.changes.resolved if report.changes is not None else ()
    rule_ids = sorted({r.rule for r in reported} | {f.rule for f in resolved} | set(report.rules),
                      key=lambda i: rule_key(i, order))
    index = {rid: i for i, rid in enumerate(rule_ids)}
    sample = {r.rule: r for r in reversed(reported)}   # the first result of each rule, for its title
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "lmscan",
            "version": one_line(report.scan.tool_version),
            "rules": [_rule(rid, report.rules.get(rid), sample.get(rid)) for rid in rule_ids],
        }},
        "invocations": [_invocation(report)],
        "results": [_result(r, index[r.rule]) for r in reported]
                   + [_absent(f, index[f.rule], report) for f in resolved],
        "columnKind": "unicodeCodePoints",
        "properties": {
            "lmscan": {"scanId": report.scan.id, "failOn": report.scan.fail_on.value,
                       "policy": report.scan.policy.path, "defaultPolicy": report.scan.policy.default},
        },
    }
    doc = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8", errors="replace")


def _rule(rule_id: str, info: RuleInfo | None, sample: Result | None) -> dict[str, Any]:
    title = one_line(info.title if info else sample.title if sample else rule_id)
    severity = info.severity if info else sample.severity if sample else Severity.MEDIUM
    rationale = clean(info.rationale).strip() if info and info.rationale else title
    refs = [one_line(u) for u in (info.references if info else ())]
    remedy = ("Remediation: each result carries the exact PowerShell that fixes that target "
              "(result properties 'remediation'); `lmscan rules show " + one_line(rule_id)
              + "` prints the rule's remediation template.")
    help_text = "\n\n".join([rationale, remedy] + (["References:\n" + "\n".join(refs)] if refs else []))
    help_md = "\n\n".join([rationale, remedy.replace("Remediation:", "**Remediation:**")]
                          + (["**References:**\n" + "\n".join(f"- <{u}>" for u in refs)] if refs else []))
    rule: dict[str, Any] = {
        "id": rule_id,
        "name": one_line(rule_id),
        "shortDescription": {"text": title},
        "fullDescription": {"text": rationale},
        "help": {"text": help_text, "markdown": help_md},
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "properties": {"severity": severity.value, "security-severity": _SECURITY_SEVERITY[severity],
                       "tags": ["security", "hyper-v", "live-migration"]},
    }
    if refs:
        rule["helpUri"] = refs[0]
    return rule


def _invocation(report: ScanReport) -> dict[str, Any]:
    """Times, and one notification per node that could not be collected."""
    notes = [{"level": "error",
              "message": {"text": f"{one_line(c.name)}/{one_line(n.name)}: not collected: "
                                  f"{one_line(n.error or 'no reason was recorded')}"},
              "locations": [{"logicalLocations": [{"name": one_line(n.name), "kind": "node",
                                                   "fullyQualifiedName": f"{one_line(c.name)}/node/{one_line(n.name)}"}]}]}
             for c in report.clusters for n in c.nodes if not n.collected]
    inv: dict[str, Any] = {"executionSuccessful": True}
    for key, value in (("startTimeUtc", report.scan.started_at), ("endTimeUtc", report.scan.finished_at)):
        if value:
            inv[key] = value
    if notes:
        inv["toolExecutionNotifications"] = notes
    return inv


def _result(r: Result, rule_index: int) -> dict[str, Any]:
    t = r.target
    where = f"{one_line(r.cluster)}/{t.kind}/{one_line(t.name)}"
    if t.node and t.node.casefold() != t.name.casefold():   # an interface or VM seen on one node
        where = f"{one_line(r.cluster)}/node/{one_line(t.node)}/{t.kind}/{one_line(t.name)}"
    message = one_line(r.message)
    out: dict[str, Any] = {
        "ruleId": r.rule,
        "ruleIndex": rule_index,
        "kind": "review" if r.status is Status.ERROR else "fail",
        "level": "none" if r.status is Status.ERROR else _LEVEL[r.severity],
        "message": {"text": message},
        "locations": [{"logicalLocations": [{"name": one_line(t.name), "kind": t.kind,
                                             "fullyQualifiedName": where}]}],
        "partialFingerprints": {FINGERPRINT: r.id},
        "correlationGuid": str(uuid.uuid5(_NAMESPACE, r.id)),
        "properties": {
            "status": r.status.value, "severity": r.severity.value, "cluster": r.cluster,
            "target": t.to_dict(), "expected": clean(r.expected), "actual": clean(r.actual),
            "remediation": clean(r.remediation),
        },
    }
    if r.remediation.strip():
        out["message"]["markdown"] = (message.replace("`", "'") + "\n\n```powershell\n"
                                      + clean(r.remediation).strip().replace("```", "'''") + "\n```")
    if r.change is not None:   # contracts §7: compared with the history or a --baseline file
        out["baselineState"] = _BASELINE_STATE[r.change]
        out["properties"]["change"] = r.change.value
    if r.status is Status.WAIVED:
        out["suppressions"] = [{"kind": "external", "status": "accepted", "justification": _waiver(r.message)}]
    return out


#: SARIF's baselineState for each change mark. A reopened finding was not failing in the compared
#: run, so for SARIF it is new; a finding that no longer fails is reported ``absent`` below.
_BASELINE_STATE = {Change.NEW: "new", Change.REOPENED: "new", Change.UNCHANGED: "unchanged",
                   Change.RESOLVED: "absent"}


def _absent(f: ResolvedFinding, rule_index: int, report: ScanReport) -> dict[str, Any]:
    """A finding of the compared run that no longer fails: SARIF's ``absent`` result, with the same
    fingerprint as when it failed so code-scanning services close it."""
    t = f.target
    where = f"{one_line(f.cluster)}/{t.kind}/{one_line(t.name)}"
    if t.node and t.node.casefold() != t.name.casefold():
        where = f"{one_line(f.cluster)}/node/{one_line(t.node)}/{t.kind}/{one_line(t.name)}"
    since = report.changes.scan_time if report.changes is not None else None
    text = f"Resolved{' since the scan of ' + one_line(since) if since else ''}: {one_line(f.title or f.rule)}" + (
        " (the target no longer exists)" if f.gone else "")
    return {
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "kind": "pass",
        "level": "none",
        "baselineState": "absent",
        "message": {"text": text},
        "locations": [{"logicalLocations": [{"name": one_line(t.name), "kind": t.kind,
                                             "fullyQualifiedName": where}]}],
        "partialFingerprints": {FINGERPRINT: f.id},
        "correlationGuid": str(uuid.uuid5(_NAMESPACE, f.id)),
        "properties": {"status": "resolved", "severity": f.severity, "cluster": f.cluster,
                       "target": t.to_dict(), "change": "resolved", "gone": f.gone},
    }


def _waiver(message: str) -> str:
    """The waiver part of a waived result's message (``Waived (CHG-2211, until ...): reason``)."""
    text = one_line(message)
    head, sep, _ = text.partition(". Finding: ")
    return head if sep else text
