"""What a reader of the HTML report and of the mail digest sees first: findings, verdict, changes.

A *finding* is one problem as a person counts it. The engine gives one result per rule and
target, so "UseAnyNetworkForMigration is on" on four nodes is four results; a change board
wants one finding that lists the four nodes. Grouping is a presentation concern only: the JSON
and JUnit reports keep one entry per target. Everything here is pure and works on a
:class:`ScanReport` alone, so a report re-read from its results JSON renders the same way.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.model import Result, ScanReport, Severity, Status
from scanner.render._common import (
    clean,
    cluster_names,
    counts_toward_verdict,
    one_line,
    overall_verdict,
    result_key,
    rule_order,
    target_label,
    verdict_label,
)

#: Target kinds whose results merge into one finding when only the target's name differs.
GROUPED_KINDS = frozenset({"node", "vm", "interface"})
#: Results of these ``change`` marks (added by the history) are news to the reader.
NEWS = ("new", "reopened")
_ACRONYMS = {"lm": "LM", "atc": "ATC", "smb": "SMB", "id": "Id", "ids": "Ids", "mtu": "MTU", "os": "OS",
             "vm": "VM", "vms": "VMs"}
_ACRONYM = re.compile(r"\b(" + "|".join(_ACRONYMS) + r")\b")
# The engine writes "Waived (CHG-2211, hyperv-team, until 2027-01-31): reason"; only the date in
# that head counts, never one the reason happens to mention.
_WAIVED_UNTIL = re.compile(r"^Waived (?:\([^)]*?)?\buntil (\d{4}-\d{2}-\d{2})\b")


@dataclass(frozen=True)
class EvidenceRow:
    """One readable line pair of evidence: a label and one or more lines of plain text."""

    label: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    """One problem: a rule's failure (or error) on one or more targets of one cluster."""

    rule: str
    title: str
    severity: Severity
    status: Status
    cluster: str
    kind: str
    targets: tuple[str, ...]          # target names, cleaned, in report order
    target_ids: tuple[str, ...]       # Ids shown next to the name where they differ from it
    message: tuple[str, ...]          # one line when all targets share it, else one per target
    expected: tuple[str, ...]
    actual: tuple[str, ...]
    evidence: tuple[EvidenceRow, ...]
    remediation: str
    counts: bool                      # at or above the scan's threshold: decides the verdict
    change: str | None                # "new" / "reopened" when any member is; None without history
    ids: tuple[str, ...]

    @property
    def where(self) -> str:
        """``network iSCSI-A``, ``node HV01`` or ``4 nodes: HV01, HV02, HV03, HV04``."""
        if len(self.targets) == 1:
            return f"{self.kind} {self.targets[0]}"
        kinds = "nodes" if self.kind == "node" else f"{self.kind}s"
        return f"{len(self.targets)} {kinds}: {', '.join(self.targets)}"


def findings(report: ScanReport, status: Status = Status.FAIL) -> list[Finding]:
    """Results of ``status`` as findings, most severe first across all clusters.

    Counted failures come before those below the threshold; then cluster, rule and target order.
    """
    order = rule_order(report)
    groups: dict[tuple[object, ...], list[Result]] = {}
    for r in sorted((r for r in report.results if r.status is status), key=lambda r: result_key(r, order)):
        groups.setdefault(_group_key(r), []).append(r)
    items = [(_finding(report, members), members[0]) for members in groups.values()]
    names = sorted(cluster_names(report), key=str.casefold)
    cluster_rank = {name.casefold(): i for i, name in enumerate(names)}
    items.sort(key=lambda item: (not item[0].counts, -item[0].severity.rank,
                                 cluster_rank.get(item[1].cluster.casefold(), 0), result_key(item[1], order)))
    return [f for f, _ in items]


def _group_key(r: Result) -> tuple[object, ...]:
    if r.target.kind not in GROUPED_KINDS:
        return (r.id,)
    name = r.target.name

    def norm(text: str) -> str:
        return _without_name(text, name)

    return (r.cluster.casefold(), r.rule, r.status, r.target.kind, r.severity,
            norm(r.message), norm(r.expected), norm(r.actual))


def _without_name(text: str, name: str) -> str:
    if not name:
        return text
    return re.sub(re.escape(name), "\x00", text, flags=re.IGNORECASE)


def _finding(report: ScanReport, members: Sequence[Result]) -> Finding:
    first = members[0]

    def per_target(attr: str) -> tuple[str, ...]:
        texts = [clean(getattr(r, attr)).strip() for r in members]
        if len(set(texts)) <= 1:
            return (texts[0],) if texts and texts[0] else ()
        return tuple(f"{one_line(r.target.name)}: {t}" for r, t in zip(members, texts, strict=True) if t)

    changes = {str(getattr(r, "change", None) or "") for r in members}
    change = next((c for c in NEWS if c in changes), None)
    remediation: list[str] = []
    for r in members:
        text = clean(r.remediation).strip("\n")
        if text and text not in remediation:
            remediation.append(text)
    return Finding(
        rule=one_line(first.rule), title=one_line(first.title), severity=first.severity,
        status=first.status, cluster=one_line(first.cluster), kind=first.target.kind,
        targets=tuple(one_line(r.target.name) for r in members),
        target_ids=tuple(one_line(r.target.id) for r in members
                         if r.target.id and r.target.id.casefold() != r.target.name.casefold()),
        message=per_target("message"), expected=per_target("expected"), actual=per_target("actual"),
        evidence=tuple(merged_evidence(members)),
        remediation="\n".join(remediation),
        counts=any(counts_toward_verdict(report, r) for r in members),
        change=change, ids=tuple(r.id for r in members),
    )


def merged_evidence(members: Sequence[Result]) -> list[EvidenceRow]:
    """Evidence shared by all targets once; what differs, per target."""
    keys: list[str] = []
    for r in members:
        keys.extend(k for k in r.evidence if k not in keys)
    rows = []
    for key in keys:
        values = [(r, r.evidence.get(key)) for r in members if key in r.evidence]
        values = [(r, v) for r, v in values if not _names_target(v, r)]
        if not values:
            continue
        rendered = [(r, evidence_lines(v)) for r, v in values]
        if len(members) == 1 or (len(rendered) == len(members)
                                 and all(lines == rendered[0][1] for _, lines in rendered)):
            rows.append(EvidenceRow(_label(key), rendered[0][1]))
        else:
            rows.append(EvidenceRow(_label(key), tuple(
                f"{one_line(r.target.name)}: {'; '.join(lines)}" for r, lines in rendered)))
    return rows


def _names_target(value: Any, r: Result) -> bool:
    """Evidence that only repeats the target's name or Id says nothing the heading does not."""
    if not isinstance(value, str):
        return False
    v = value.casefold()
    return v == r.target.name.casefold() or (r.target.id is not None and v == r.target.id.casefold())


def _label(key: str) -> str:
    """``excluded_networks`` -> ``Excluded networks``; PowerShell names stay as they are."""
    text = one_line(key)
    if "_" in text or text.islower():
        text = _ACRONYM.sub(lambda m: _ACRONYMS[m.group(1)], text.replace("_", " ").strip())
        return text[:1].upper() + text[1:]
    return text


def evidence_lines(value: Any) -> tuple[str, ...]:
    """A value of the evidence as lines a person reads: never JSON syntax."""
    if isinstance(value, Mapping):
        lines: list[str] = []
        for k, v in value.items():
            inner = evidence_lines(v)
            if isinstance(v, Mapping) and v:
                lines.extend(f"{one_line(k)} › {line}" for line in inner)
            else:
                lines.append(f"{one_line(k)}: {'; '.join(inner)}")
        return tuple(lines) or ("(none)",)
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return (", ".join(_scalar(v) for v in value) or "(none)",)
        return tuple(", ".join(evidence_lines(v)) for v in value) or ("(none)",)
    return (_scalar(value),)


def _scalar(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = clean(value).strip()
    return text if text else "(empty)"


# ----------------------------------------------------------------------------- verdict

@dataclass(frozen=True)
class Verdict:
    """The report's first words: a label, a css class and two plain sentences."""

    label: str
    css: str
    headline: str
    detail: str
    failing: int
    incomplete: int
    clusters: int


def verdict(report: ScanReport) -> Verdict:
    """``3 of 4 clusters are not compliant.`` and what that rests on, without CLI words."""
    verdicts = [report.cluster_verdict(n) for n in cluster_names(report)]
    n, failing, incomplete = len(verdicts), verdicts.count(Status.FAIL), verdicts.count(Status.ERROR)
    clusters = f"{n} cluster{'s' if n != 1 else ''}"
    if n == 0:
        label, css, headline = "INCOMPLETE", "error", "No cluster was scanned."
    elif failing:
        label, css = "FAIL", "fail"
        headline = (f"{failing} of {clusters} {'is' if failing == 1 else 'are'} not compliant"
                    if n > 1 else "The cluster is not compliant")
        if incomplete:
            headline += f"; {incomplete} more could not be checked completely"
        headline += "."
    elif incomplete:
        label, css = "INCOMPLETE", "error"
        headline = (f"{incomplete} of {clusters} could not be checked completely; "
                    f"nothing checked failed." if n > 1 else
                    "The cluster could not be checked completely; nothing checked failed.")
    else:
        label, css = "PASS", "pass"
        headline = f"All {clusters} are compliant." if n > 1 else "The cluster is compliant."
    counted = report.counting_failures()
    by_sev = severity_phrase(r.severity for r in counted)
    parts = []
    if counted:
        parts.append(f"{len(counted)} failed check{'s' if len(counted) != 1 else ''} ({by_sev}).")
    summary = report.summary
    below = summary[Status.FAIL.value] - len(counted)
    if n:   # never a bare PASS next to failures: "PASS (2 below --fail-on)"
        label = verdict_label(overall_verdict(report), below)
    if below:
        parts.append(f"{below} failure{'s' if below != 1 else ''} of lower severity "
                     f"{'are' if below != 1 else 'is'} listed but {'do' if below != 1 else 'does'} not count "
                     f"(this scan counts {report.scan.fail_on.value} and above).")
    errors = summary[Status.ERROR.value]
    unreachable = len(unreachable_nodes(report))
    if errors:
        parts.append(f"{errors} check{'s' if errors != 1 else ''} could not be run.")
        if unreachable:
            parts.append(f"{unreachable} node{'s' if unreachable != 1 else ''} could not be reached.")
    if not parts:
        parts.append(f"All {summary[Status.PASS.value]} checks that apply passed.")
    return Verdict(label, css, headline, " ".join(parts), failing, incomplete, n)


def severity_phrase(severities: Iterable[Severity]) -> str:
    counts: dict[Severity, int] = {}
    for s in severities:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{counts[s]} {s.value}" for s in sorted(counts, key=lambda s: -s.rank))


# ----------------------------------------------------------------------------- changes

@dataclass(frozen=True)
class Changes:
    """What changed since the compared run (only when a history or baseline was used)."""

    new: int
    reopened: int
    resolved: int
    compared_id: str
    compared_at: str

    @property
    def any(self) -> bool:
        return bool(self.new or self.reopened or self.resolved)


def changes(report: ScanReport) -> Changes | None:
    """Counts from the ``change`` marks and ``changes`` object of contracts §7; None without them."""
    data = report.changes
    if data is None:
        return None
    marks: dict[str, int] = {}
    for r in report.results:
        mark = r.change
        if mark and r.status is Status.FAIL:
            marks[mark.value] = marks.get(mark.value, 0) + 1
    return Changes(new=marks.get("new", 0), reopened=marks.get("reopened", 0), resolved=len(data.resolved),
                   compared_id=one_line(data.scan_id or ""), compared_at=one_line(data.scan_time or ""))


# ----------------------------------------------------------------------------- other lists

@dataclass(frozen=True)
class Unreachable:
    cluster: str
    node: str
    error: str


def unreachable_nodes(report: ScanReport) -> list[Unreachable]:
    """Nodes that could not be collected, with the reason, in cluster order."""
    return [Unreachable(one_line(c.name), one_line(n.name), one_line(n.error or "no reason was recorded"))
            for c in sorted(report.clusters, key=lambda c: c.name.casefold()) for n in c.nodes if not n.collected]


@dataclass(frozen=True)
class ExpiringWaiver:
    cluster: str
    rule: str
    where: str
    expires: str
    days: int
    message: str


def expiring_waivers(report: ScanReport, within_days: int = 14) -> list[ExpiringWaiver]:
    """Waived findings whose waiver ends within ``within_days`` of the scan, soonest first."""
    started = _scan_date(report)
    out = []
    for r in report.results:
        if r.status is not Status.WAIVED:
            continue
        m = _WAIVED_UNTIL.search(r.message)
        if not m:
            continue
        try:
            expires = _dt.date.fromisoformat(m.group(1))
        except ValueError:
            continue
        days = (expires - started).days
        if days <= within_days:
            out.append(ExpiringWaiver(one_line(r.cluster), one_line(r.rule), target_label(r.target),
                                      expires.isoformat(), days, one_line(r.message, 300)))
    out.sort(key=lambda w: (w.expires, w.cluster.casefold(), w.rule))
    return out


def _scan_date(report: ScanReport) -> _dt.date:
    from scanner.render._common import parse_time

    moment = parse_time(report.scan.started_at)
    return moment.date() if moment else _dt.date.today()


def results_sha256(report: ScanReport) -> str:
    """SHA-256 of the results JSON this report is (or was read from), for the footer."""
    known = getattr(report, "results_sha256", None)
    if isinstance(known, str) and known:
        return known
    from scanner.render.jsonfmt import render_json_sha256

    return render_json_sha256(report)
