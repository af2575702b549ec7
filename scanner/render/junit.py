"""JUnit XML for CI servers: one testsuite per cluster, one testcase per result.

Built with junit-xml (the project's choice) and then repaired with ElementTree, because
junit-xml 1.9 writes ``disabled=`` and drops zero-valued attributes, which the JUnit schema
(xunit-plugin ``junit-10.xsd``) rejects. The names are chosen for the three consumers:

- Jenkins splits ``classname`` at its last dot into package and class, so the classname is
  ``lmscan.<cluster>`` with the dots of ``hv01.contoso.com`` turned into underscores;
- GitLab groups by classname and drops a second testcase with the same classname and name,
  so names are made unique per classname, deterministically;
- Azure DevOps shows only a testcase's own ``system-out``, so the evidence goes there.

Names hold the rule, the target kind and name (and node), never times or observed values,
so a test keeps its history from run to run.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence

import junit_xml

from scanner.model import Change, ClusterInfo, Result, ScanReport, Status, Target
from scanner.render._common import (
    clean,
    cluster_names,
    counts_toward_verdict,
    duration_seconds,
    group_by_cluster,
    one_line,
    rule_key,
    rule_order,
    target_label,
    utc_naive,
)

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
MESSAGE_LIMIT = 300  # characters in a message attribute; the full text is in the body

# Attributes junit-10.xsd allows, per element; anything else junit-xml adds is removed.
_ALLOWED = {
    "testsuites": {"name", "time", "tests", "failures", "errors"},
    "testsuite": {"name", "tests", "failures", "errors", "group", "time", "skipped",
                  "timestamp", "hostname", "id", "package", "file", "log", "url", "version"},
    "testcase": {"name", "time", "classname", "group"},
    "failure": {"type", "message"},
    "error": {"type", "message"},
    "skipped": {"type", "message"},
    "property": {"name", "value"},
}
_COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}  # suite attribute per result element
_CLASS_UNSAFE = re.compile(r"[\s./\\]+")
# json.dumps(obj, ensure_ascii=False, default=str), compact and with indent=2, without building
# an encoder for each of a fleet's 100,000 testcases.
_json = json.JSONEncoder(ensure_ascii=False, default=str).encode
_json_indented = json.JSONEncoder(ensure_ascii=False, default=str, indent=2).encode


def render_junit(report: ScanReport) -> bytes:
    """The report as a JUnit XML document (UTF-8 bytes) that validates against junit-10.xsd."""
    return junit_document(report, *junit_suites(report))


def junit_suites(report: ScanReport, start: int = 0, stop: int | None = None) -> tuple[list[str], dict[str, int]]:
    """The ``<testsuite>`` texts of clusters ``start:stop`` (in report order) and their counts.

    Two processes can each write a share (scanner.parallel); :func:`junit_document` joins them.
    """
    names = cluster_names(report)
    classnames = _classnames(names)
    infos = {info.name.casefold(): info for info in report.clusters}
    by_cluster = group_by_cluster(report.results)
    key = _result_key(report)
    texts = _Texts()
    totals = {"tests": 0, "failures": 0, "errors": 0}
    # junit-xml builds one suite at a time; each is repaired and written out before the next is
    # built, so a fleet's 100,000 testcases never stand as one tree (which the garbage collector
    # would walk again and again).
    suites = []
    for cluster in names[start:stop]:
        results = sorted(by_cluster.get(cluster.casefold(), []), key=key)
        suite = _suite(report, cluster, classnames[cluster], results, infos.get(cluster.casefold()), texts)
        suites.append(_finish(suite, totals))
    if not names and stop is None:      # (in the last share only)
        # A file without any testcase makes CI servers report "no test results"; say why.
        case = junit_xml.TestCase(name="no results", classname="lmscan")
        case.add_skipped_info(message="The scan produced no results: no cluster was scanned.")
        suites.append(_finish(junit_xml.TestSuite(name="lmscan", test_cases=[case],
                                                  timestamp=utc_naive(report.scan.started_at),
                                                  properties=_properties(report, None)), totals))
    return suites, totals


def junit_document(report: ScanReport, suites: Sequence[str], totals: Mapping[str, int]) -> bytes:
    """The whole document around suites from :func:`junit_suites`, totals added up."""
    seconds = duration_seconds(report.scan.started_at, report.scan.finished_at)
    root = ET.Element("testsuites", {"name": "lmscan", **{k: str(v) for k, v in totals.items()},
                                     "time": f"{seconds or 0.0:.3f}"})
    return "".join([XML_DECLARATION, "\n", _start_tag(root), ">", *suites, "\n</testsuites>\n"]).encode("utf-8")


def _result_key(report: ScanReport) -> Callable[[Result], tuple[object, ...]]:
    """:func:`result_key` for this report, with each rule's part computed once rather than per result."""
    order = rule_order(report)
    rules: dict[str, tuple[int, tuple[str, int, str]]] = {}

    def key(r: Result) -> tuple[object, ...]:
        rule = rules.get(r.rule)
        if rule is None:
            rule = rules[r.rule] = rule_key(r.rule, order)
        t = r.target
        return (rule, t.kind, t.name.casefold(), (t.node or "").casefold(), r.id)

    return key


class _Texts:
    """:func:`clean`, :func:`one_line` and :func:`target_label`, each worked out once per distinct text.

    A fleet repeats its titles, messages, cluster, node and network names thousands of times.
    """

    def __init__(self) -> None:
        self._cleaned: dict[str, str] = {}
        self._lines: dict[str, str] = {}
        self._messages: dict[str, str] = {}
        self._labels: dict[tuple[str, str, str | None], str] = {}

    def clean(self, text: str) -> str:
        done = self._cleaned.get(text)
        if done is None:
            done = self._cleaned[text] = clean(text)
        return done

    def line(self, text: str) -> str:
        done = self._lines.get(text)
        if done is None:
            done = self._lines[text] = one_line(text)
        return done

    def message(self, text: str) -> str:
        """One line for a message attribute, cut to MESSAGE_LIMIT characters."""
        done = self._messages.get(text)
        if done is None:
            done = self._messages[text] = one_line(text, MESSAGE_LIMIT)
        return done

    def label(self, target: Target) -> str:
        key = (target.kind, target.name, target.node)
        done = self._labels.get(key)
        if done is None:
            done = self._labels[key] = target_label(target)
        return done


def _classnames(clusters: Sequence[str]) -> dict[str, str]:
    """``lmscan.<cluster>`` per cluster, dots replaced; clusters that collide get a short hash."""
    base = {c: "lmscan." + (_CLASS_UNSAFE.sub("_", one_line(c)) or "_") for c in clusters}
    taken: dict[str, int] = {}
    for name in base.values():
        taken[name.casefold()] = taken.get(name.casefold(), 0) + 1
    result = {}
    for cluster, name in base.items():
        if taken[name.casefold()] > 1:
            name += "_" + hashlib.sha256(cluster.encode("utf-8", "replace")).hexdigest()[:8]
        result[cluster] = name
    return result


def _testcase_names(results: Sequence[Result], texts: _Texts) -> list[str]:
    """``<RULE> (<severity>) <kind> <name>[ on <node>]``, unique (case-insensitively) within one classname.

    The severity is in every name, passing or not, so CI UIs can filter failures by it while a
    test keeps one name (and its history) when it flips between pass and fail.
    A name that several results share gets the target id; if that is still not enough,
    `` #2``, `` #3`` in result-id order, so the same objects always get the same names.
    """
    names = [texts.line(f"{r.rule} ({r.severity.value}) {texts.label(r.target)}") for r in results]
    shared = _shared(names)
    if not shared:
        return names
    names = [f"{n} [{texts.line(r.target.id)}]" if n.casefold() in shared and r.target.id else n
             for n, r in zip(names, results, strict=True)]
    taken: set[str] = set()
    unique = list(names)
    for i in sorted(range(len(names)), key=lambda i: (names[i].casefold(), results[i].id, i)):
        candidate, k = names[i], 2
        while candidate.casefold() in taken:
            candidate, k = f"{names[i]} #{k}", k + 1
        taken.add(candidate.casefold())
        unique[i] = candidate
    return unique


def _shared(names: Iterable[str]) -> set[str]:
    """Casefolded names that occur more than once."""
    seen: set[str] = set()
    shared: set[str] = set()
    for n in names:
        (shared if n.casefold() in seen else seen).add(n.casefold())
    return shared


def _suite(report: ScanReport, cluster: str, classname: str, results: Sequence[Result],
           info: ClusterInfo | None, texts: _Texts) -> junit_xml.TestSuite:
    cases = [_case(report, r, classname, name, texts)
             for r, name in zip(results, _testcase_names(results, texts), strict=True)]
    if not cases:
        # An empty suite is valid XML but CI servers then report "no tests"; say why instead.
        case = junit_xml.TestCase(name="no results", classname=classname)
        case.add_skipped_info(message="No rule produced a result for this cluster.")
        cases = [case]
    return junit_xml.TestSuite(
        name=one_line(cluster) or "(unnamed cluster)",
        test_cases=cases,
        hostname=one_line(cluster) or None,
        timestamp=utc_naive(report.scan.started_at),
        properties={**_properties(report, info), **_change_properties(report, cluster, results)},
    )


def _change_properties(report: ScanReport, cluster: str, results: Sequence[Result]) -> dict[str, str]:
    """Change marks (contracts §7) as suite properties: junit-10.xsd allows no testcase properties."""
    ch = report.changes
    if ch is None:
        return {}
    key = cluster.casefold()
    cmp = next((c for c in ch.clusters if c.cluster.casefold() == key), None)
    props = {"changes.source": ch.source,
             "changes.compared_scan": (cmp.scan_id if cmp and cmp.scan_id else "none (first scan of this cluster)")}
    if cmp is not None and cmp.scan_time:
        props["changes.compared_time"] = cmp.scan_time
    if cmp is not None and cmp.note:
        props["changes.note"] = cmp.note
    marks = {c.value: 0 for c in Change}
    for r in results:
        if r.change is not None:
            marks[r.change.value] += 1
    gone = [f for f in ch.resolved if f.gone and f.cluster.casefold() == key]
    marks[Change.RESOLVED.value] += len(gone)
    props.update({f"changes.{k}": str(v) for k, v in marks.items()})
    for r in results:
        if r.change in (Change.NEW, Change.REOPENED) and r.status is Status.FAIL or r.change is Change.RESOLVED:
            props[f"change.{r.id}"] = r.change.value if r.change else ""
    for f in gone:
        props[f"change.{f.id}"] = "resolved (target gone)"
    return {one_line(k): one_line(v) for k, v in props.items()}


def _properties(report: ScanReport, info: ClusterInfo | None) -> dict[str, str]:
    scan = report.scan
    props = {
        "scan_id": scan.id,
        "tool_version": scan.tool_version,
        "policy_path": scan.policy.path or "(built-in default policy)",
        "policy_sha256": scan.policy.sha256,
        "policy_default": "true" if scan.policy.default else "false",
        "rule_packs": ", ".join(f"{p.name} {p.version} sha256:{p.sha256}"
                                for p in scan.rule_packs),
        "fail_on": scan.fail_on.value,
    }
    if info is not None:
        props["cluster_os"] = info.os
        for node in info.nodes:
            props[f"node.{node.name}"] = (
                f"collected {node.collected_at or ''}".strip() if node.collected
                else f"not collected: {node.error or 'no reason given'}")
    return {one_line(k): one_line(v) for k, v in props.items()}


def _case(report: ScanReport, r: Result, classname: str, name: str, texts: _Texts) -> junit_xml.TestCase:
    # Findings get the whole result, evidence included, indented; skips and waivers one compact
    # line of it; a pass only its message and the facts behind it. Passes are most of a fleet's
    # results, and CI servers cap report files (GitLab: 30 MB) and trim passing output anyway.
    if r.status is Status.PASS:
        return junit_xml.TestCase(name=name, classname=classname,
                                  stdout=clean(f"{r.message}\n{_json(r.evidence)}"))
    stdout = (_json_indented if r.status in (Status.FAIL, Status.ERROR) else _json)(r.to_dict())
    case = junit_xml.TestCase(name=name, classname=classname, stdout=clean(stdout))
    body = _body(r, texts)
    if r.status is Status.FAIL:
        mark = f"{r.change.value.upper()} " if r.change in (Change.NEW, Change.REOPENED) else ""
        message = f"{mark}[{r.severity.value}] {r.title}: {r.message}"
        if not counts_toward_verdict(report, r):
            message = f"{message} (below --fail-on {report.scan.fail_on.value}; does not fail the scan)"
        case.add_failure_info(message=texts.message(message), output=body,
                              failure_type=r.severity.value)
    elif r.status is Status.ERROR:
        case.add_error_info(message=texts.message(f"Not evaluated: {r.message}"),
                            output=body, error_type="CollectionError")
    elif r.status is Status.SKIP:
        case.add_skipped_info(message=texts.message(f"Not applicable: {r.message}"),
                              output=body)
    elif r.status is Status.WAIVED:
        case.add_skipped_info(message=texts.message(f"Waived: {r.message}"), output=body)
    return case


def _body(r: Result, texts: _Texts) -> str:
    """The text CI servers show under a failure: what, where, expected, actual, and the fix."""
    target = texts.label(r.target) + (f" (id {texts.line(r.target.id)})" if r.target.id else "")
    lines = [
        f"{r.rule} ({r.severity.value}): {texts.line(r.title)}",
        f"Cluster:  {texts.line(r.cluster)}",
        f"Target:   {target}",
        f"Status:   {r.status.value}",
        f"Message:  {texts.clean(r.message)}",
        f"Expected: {texts.clean(r.expected)}",
        f"Actual:   {texts.clean(r.actual)}",
    ]
    if r.status is Status.FAIL and r.remediation.strip():
        lines += ["", "Remediation (PowerShell):", clean(r.remediation).strip("\n")]
    return "\n".join(lines)


def _finish(suite: junit_xml.TestSuite, totals: dict[str, int]) -> str:
    """One suite as built by junit-xml, made valid, as the text that follows it in ``<testsuites>``."""
    element = suite.build_xml_doc()
    for key, value in _make_valid(element).items():
        if key in totals:
            totals[key] += value
    out = ["\n  "]
    _write(element, "\n  ", out)
    return "".join(out)


def _make_valid(suite: ET.Element) -> dict[str, int]:
    """Bring one suite of junit-xml's output in line with junit-10.xsd: attributes, counts, times."""
    for element in suite.iter():
        allowed = _ALLOWED.get(element.tag)
        if allowed is not None and not allowed.issuperset(element.attrib):
            for attr in [a for a in element.attrib if a not in allowed]:
                del element.attrib[attr]
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for case in suite.iter("testcase"):
        counts["tests"] += 1
        for kind in {child.tag for child in case} & _COUNTED.keys():
            counts[_COUNTED[kind]] += 1
        case.set("time", "0.000")
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", "0.000")
    return counts


# What ET.tostring writes for an element of the document indented by ET.indent(space="  "), in one
# pass: the same escaping and layout, without ElementTree's per-element namespace handling, which
# makes it the costliest step for a fleet. Only for trees junit-xml builds: plain tags and
# attribute names, no tails, and text only in elements without children.

def _write(element: ET.Element, indent: str, out: list[str]) -> None:
    """Append ``element`` to ``out``; ``indent`` is the newline and spaces that precede it."""
    tag = element.tag
    if len(element):
        inner = indent + "  "
        out.append(_start_tag(element) + ">")
        for child in element:
            out.append(inner)
            _write(child, inner, out)
        out.append(f"{indent}</{tag}>")
    elif element.text:
        out.append(f"{_start_tag(element)}>{_escape_text(element.text)}</{tag}>")
    else:
        out.append(_start_tag(element) + " />")


def _start_tag(element: ET.Element) -> str:
    """``<tag name="value" ...`` without the closing bracket."""
    return "<" + element.tag + "".join([f' {k}="{_escape_attribute(v)}"' for k, v in element.items()])


def _escape_text(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    text = _escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text
