"""Helpers every renderer shares: cleaning field text, ordering results, labels, times.

Everything shown in a report comes from the field (cluster, network and VM names, error
text from WinRM) and may hold control characters or terminal escapes. Each renderer passes
such text through :func:`clean` or :func:`one_line` before it reaches its output, so a
hostile or broken name can neither corrupt an XML file nor repaint a terminal.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from scanner.model import NodeInfo, Result, ScanReport, Severity, Status, Target

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and the
# two-character escapes (ESC followed by one byte). The 8-bit CSI (U+009B) is a C1 control
# and goes with the other C1 characters below.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
# Characters that are not allowed in XML 1.0 or that a terminal interprets: C0 except tab
# and newline, DEL, C1, lone surrogates and the non-characters U+FFFE/U+FFFF.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
# Whitespace one_line() would change: a run of two, or any white space but a plain blank.
_NOT_ONE_LINE = re.compile(r"\s\s|[^\S ]").search
# Anything clean() would change: ESC and the control characters above, or a carriage return.
_CLEAN_ALREADY = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]").search

# The engine's wording for results that are errors only because a node was not collected.
_NOT_COLLECTED = re.compile(r"\bcould (?:not )?be collected\b")

#: How a cluster verdict is shown; ERROR means some results could not be evaluated.
VERDICT_LABELS: Mapping[Status, str] = {
    Status.FAIL: "FAIL",
    Status.ERROR: "INCOMPLETE",
    Status.PASS: "PASS",
}

#: Severities from the most to the least severe.
SEVERITIES_DESC: tuple[Severity, ...] = tuple(sorted(Severity, key=lambda s: -s.rank))


def clean(text: object) -> str:
    """Return ``text`` as a string without escape sequences or control characters.

    Line breaks are kept (``\\r\\n`` and ``\\r`` become ``\\n``), tabs too.
    """
    s = "" if text is None else str(text)
    if _CLEAN_ALREADY(s) is None:    # the usual case: nothing to remove, one scan instead of three
        return s
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _ANSI.sub("", s)
    return _CONTROL.sub("", s)


def one_line(text: object, limit: int | None = None) -> str:
    """Cleaned text on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    s = clean(text)
    s = (_SPACES.sub(" ", s) if _NOT_ONE_LINE(s) else s).strip()
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)].rstrip() + "…"
    return s


def target_label(target: Target) -> str:
    """``network iSCSI-A``; with ``on HV02`` when the target sits on a node it is not named after."""
    label = f"{target.kind} {one_line(target.name)}"
    if target.node and target.node.casefold() != target.name.casefold():
        label += f" on {one_line(target.node)}"
    return label


def rule_order(report: ScanReport) -> dict[str, int]:
    """Position of each rule id as the rule packs list them (LM001… before HOST001…)."""
    return {rule_id.casefold(): i for i, rule_id in enumerate(report.rules)}


@functools.lru_cache(maxsize=4096)    # a report has a few dozen rule ids and asks per result
def _natural(rule_id: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"([A-Za-z_-]*)(\d+)(.*)", rule_id)
    if m:
        return (m.group(1).casefold(), int(m.group(2)), m.group(3).casefold())
    return (rule_id.casefold(), -1, "")


def rule_key(rule_id: str, order: Mapping[str, int]) -> tuple[int, tuple[str, int, str]]:
    """Sort key: pack order first, then natural order for rules the report does not document."""
    return (order.get(rule_id.casefold(), len(order)), _natural(rule_id))


def result_key(result: Result, order: Mapping[str, int]) -> tuple[object, ...]:
    """Stable order within one cluster: rule, then target, then the result id."""
    t = result.target
    return (rule_key(result.rule, order), t.kind, t.name.casefold(),
            (t.node or "").casefold(), result.id)


def finding_key(result: Result, order: Mapping[str, int]) -> tuple[object, ...]:
    """Order of failures and errors: most severe first, failures before errors."""
    status_rank = 0 if result.status is Status.FAIL else 1
    return (-result.severity.rank, status_rank) + result_key(result, order)


def counts_toward_verdict(report: ScanReport, result: Result) -> bool:
    """True when a failure is at or above ``--fail-on`` (what decides the exit code)."""
    floor = max(report.scan.fail_on.rank, Severity.LOW.rank)
    return result.status is Status.FAIL and result.severity.rank >= floor


def verdict_label(verdict: Status, below_fail_on: int, *, plain: bool = False) -> str:
    """``FAIL``, ``INCOMPLETE`` or ``PASS``; never a bare PASS next to failures.

    Failures below ``--fail-on`` do not change the verdict but are named with it, as in
    ``PASS (2 below --fail-on)``, so a reader never sees PASS beside a non-zero FAIL count.
    ``plain`` words it for readers who never saw the command line (the HTML report and the
    mail): ``PASS (2 below threshold)``.
    """
    label = VERDICT_LABELS[verdict]
    if below_fail_on and verdict is not Status.FAIL:
        label += f" ({below_fail_on} below {'threshold' if plain else '--fail-on'})"
    return label


def below_fail_on(report: ScanReport, results: Iterable[Result]) -> int:
    """How many of ``results`` are failures that do not count for the exit code."""
    return sum(1 for r in results if r.status is Status.FAIL and not counts_toward_verdict(report, r))


def cluster_verdict_label(report: ScanReport, name: str, results: Iterable[Result], *, plain: bool = False) -> str:
    """The verdict of cluster ``name`` as every renderer shows it (``results``: that cluster's)."""
    return verdict_label(report.cluster_verdict(name), below_fail_on(report, results), plain=plain)


def critical_skips(report: ScanReport) -> list[Result]:
    """Critical rules that checked nothing (e.g. no network classified iscsi): said plainly, never hidden in a count."""
    return [r for r in report.results if r.status is Status.SKIP and r.severity is Severity.CRITICAL]


def overall_verdict(report: ScanReport) -> Status:
    """FAIL if any cluster fails, else INCOMPLETE (ERROR) if any is incomplete, else PASS."""
    verdicts = {report.cluster_verdict(n) for n in cluster_names(report)}
    return (Status.FAIL if Status.FAIL in verdicts else
            Status.ERROR if Status.ERROR in verdicts else Status.PASS)


def cluster_names(report: ScanReport) -> list[str]:
    """Clusters in report order, plus any a result names that the cluster list lacks."""
    names: list[str] = []
    seen: set[str] = set()
    # Each spelling once, in first-seen order, before folding case: the results repeat their
    # cluster's name a few hundred times each.
    for name in dict.fromkeys(itertools.chain(map(_NAME, report.clusters), map(_CLUSTER, report.results))):
        if name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    return names


_NAME = operator.attrgetter("name")
_CLUSTER = operator.attrgetter("cluster")


def group_by_cluster(results: Iterable[Result]) -> dict[str, list[Result]]:
    """Results keyed by casefolded cluster name, in the order they come."""
    groups: dict[str, list[Result]] = {}
    # By runs of one spelling (a scan lists each cluster's results together): case is folded
    # once per run instead of once per result, and each run extends its group in order.
    for name, run in itertools.groupby(results, _CLUSTER):
        groups.setdefault(name.casefold(), []).extend(run)
    return groups


def status_counts(results: Iterable[Result]) -> dict[Status, int]:
    """Count of results per status, every status present."""
    counts = dict.fromkeys(Status, 0)
    for r in results:
        counts[r.status] += 1
    return counts


def parse_time(value: str | None) -> datetime | None:
    """ISO-8601 text as a datetime (``Z`` accepted on Python 3.10), or None if it is not one."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment.astimezone(timezone.utc)     # 0001-01-01T00:00:00+01:00 has no UTC time
    except (ValueError, OverflowError):
        return None
    return moment


def utc_naive(value: str | None) -> str | None:
    """``2026-11-26T02:00:03`` in UTC without zone, as JUnit's ``timestamp`` wants it."""
    dt = parse_time(value)
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def display_time(value: str | None) -> str:
    """``2026-11-26 02:00:03 UTC`` for people; unparsable text is shown cleaned, as it came."""
    dt = parse_time(value)
    if dt is None:
        return one_line(value) if value else "—"
    if dt.tzinfo is None:
        return dt.strftime("%Y-%m-%d %H:%M:%S")
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two ISO-8601 times, None when either is missing or they do not compare."""
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return max((b - a).total_seconds(), 0.0)


@dataclass(frozen=True)
class Unreachable:
    """The errors that stand for nodes that could not be collected, grouped as one fact each.

    ``nodes``: per uncollected node, (cluster name, node, the error results aimed at that node);
    ``clusters``: per cluster, the cluster-wide errors that exist only because nodes are missing.
    """

    nodes: list[tuple[str, NodeInfo, list[Result]]]
    clusters: dict[str, list[Result]]

    @property
    def result_ids(self) -> set[str]:
        return ({r.id for _, _, rs in self.nodes for r in rs}
                | {r.id for rs in self.clusters.values() for r in rs})


def unreachable(report: ScanReport) -> Unreachable:
    """Group the results an unreachable node causes, so a report names the node once, not per rule."""
    missing: dict[tuple[str, str], tuple[str, NodeInfo, list[Result]]] = {
        (c.name.casefold(), n.name.casefold()): (c.name, n, []) for c in report.clusters
               for n in c.nodes if not n.collected}
    per_cluster: dict[str, list[Result]] = {}
    clusters = {c for c, _ in missing}
    for r in report.results:
        if r.status is not Status.ERROR or r.cluster.casefold() not in clusters:
            continue
        node = r.target.node or (r.target.name if r.target.kind == "node" else None)
        entry = missing.get((r.cluster.casefold(), (node or "").casefold()))
        if entry is not None:
            entry[2].append(r)
        elif _NOT_COLLECTED.search(r.message):
            per_cluster.setdefault(r.cluster, []).append(r)
    return Unreachable(list(missing.values()), per_cluster)
