"""Results JSON: exactly ``report.to_dict()`` (contracts §5), stable bytes."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.actions import SetLMList
from scanner.model import Change, Result, ScanReport, Severity, Status, Target
from scanner.render.jsonfmt import _fallback, _value_encoder, render_json, render_json_sha256, result_line

from .conftest import HOSTILE_NAME, build_big, build_empty, build_sample


def test_json_is_the_contract_document(hostile_report: ScanReport) -> None:
    out = render_json(hostile_report)
    assert out.endswith(b"}\n") and not out.endswith(b"\n\n")
    assert json.loads(out) == json.loads(json.dumps(hostile_report.to_dict()))
    doc = json.loads(out)
    assert list(doc)[:5] == ["lmscan_results", "scan", "clusters", "results", "summary"]
    assert doc["lmscan_results"] == 1
    assert doc["summary"] == hostile_report.summary


def test_json_is_indented_utf8_and_stable(hostile_report: ScanReport) -> None:
    out = render_json(hostile_report)
    assert out == render_json(hostile_report)
    assert b'\n  "scan": {' in out
    assert HOSTILE_NAME.encode() in out  # JSON needs no HTML escaping
    assert "Réseau invité — 网络 ✓".encode() in out  # not \u-escaped
    assert b"\x1b" not in out  # control characters are escaped by JSON itself


def test_json_survives_evidence_the_engine_left_as_sets(sample_report: ScanReport) -> None:
    r = replace(sample_report.results[0], evidence={"ids": {"b", "a"}, "t": ("x",)})
    report = replace(sample_report, results=(r,))
    doc = json.loads(render_json(report))
    assert doc["results"][0]["evidence"] == {"ids": ["a", "b"], "t": ["x"]}


# ----------------------------------------------------------------------------- the fast path
# render_json writes each result's line without building its dict (result_line); these tests hold
# it to what it replaced: json.dumps of Result.to_dict() per result, json.dumps(indent=2) for the
# rest, byte for byte.

def _reference(report: ScanReport) -> bytes:
    """The results JSON as render_json wrote it before the fast path (issue 11: same bytes)."""
    parts = []
    for key, value in report.to_dict().items():
        if key == "results" and value:
            lines = ",\n".join("    " + json.dumps(r, ensure_ascii=False, default=_fallback) for r in value)
            parts.append(f'  "results": [\n{lines}\n  ]')
        else:
            body = json.dumps(value, indent=2, ensure_ascii=False, default=_fallback).replace("\n", "\n  ")
            parts.append(f"  {json.dumps(key)}: {body}")
    return ("{\n" + ",\n".join(parts) + "\n}" + "\n").encode("utf-8", errors="replace")


def _dumps(r: Result) -> str:
    return json.dumps(r.to_dict(), ensure_ascii=False, default=_fallback)


def _outcome(call: Callable[..., str], *args: Any) -> object:
    """What ``call(*args)`` returns, or the error it raises (a result that cannot be written must fail the same way)."""
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        return (type(exc), str(exc))


def _odd_results(base: Result) -> list[Result]:
    """Results whose fields the fast path must hand to the general encoder, or get exactly right."""
    odd: dict[Any, Any] = {"f": [1.5, 1e16, 1e-7, float("nan"), float("-inf"), -0.0],
                           "s": Status.FAIL, "sev": Severity.HIGH, "t": (1, ("x",)), "set": {3, 1},
                           2: "int key", None: "none key", True: "bool key", "big": 2 ** 70,
                           "uuid": uuid.UUID(int=5), "path": Path("/x")}
    cap = SetLMList(list="exclude", ids=("a", "b"), names=("A", "B"), previous=("a",))
    return [
        replace(base, change=Change.REOPENED),
        replace(base, actions=(cap,), change=Change.NEW),
        replace(base, target=Target("node", "HV\u2028N1", None, None)),
        replace(base, target=Target("vm", "v", "id\udc80", "HV01")),           # a lone surrogate
        replace(base, message=None, actual=7),                                  # type: ignore[arg-type]
        replace(base, target=Target("vm", 5, None, None)),                      # type: ignore[arg-type]
        replace(base, severity="high"),                                         # type: ignore[arg-type]
        replace(base, evidence=MappingProxyType({"ids": {"b", "a"}})),
        replace(base, evidence={}),
        replace(base, evidence=odd),
    ]


def test_result_lines_are_json_dumps_of_to_dict(hostile_report: ScanReport) -> None:
    encode = _value_encoder()
    results = list(hostile_report.results) + _odd_results(hostile_report.results[-1])
    for r in results:
        expected = _outcome(_dumps, r)
        assert _outcome(result_line, r) == expected
        assert _outcome(result_line, r, encode) == expected
    assert isinstance(_outcome(_dumps, results[-4]), tuple)     # severity "high": no .value


def test_a_circular_evidence_fails_as_before_and_the_next_document_is_unharmed(sample_report: ScanReport) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    bad = replace(sample_report, results=(replace(sample_report.results[0], evidence=loop),))
    with pytest.raises(ValueError, match="Circular reference"):
        render_json(bad)
    assert render_json(sample_report) == _reference(sample_report)


@pytest.mark.parametrize("build", [build_sample, lambda: build_sample(hostile=True), build_empty,
                                   lambda: build_empty(clusters=True), build_big])
def test_documents_are_the_bytes_of_the_reference(build: Callable[[], ScanReport]) -> None:
    report = build()
    odd = [r for r in _odd_results(report.results[0]) if type(r.severity) is not str] if report.results else []
    report = replace(report, results=report.results + tuple(odd))
    assert render_json(report) == _reference(report)


_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", "\x00", "\x1f\x7f", "\u2028\u2029", "\\\"", "\ud800", "a\udfffb", "Réseau — 网络 ✓", "\U0001f600"])
_SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
_VALUE = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                      max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(_TEXT, min_size=10, max_size=10), node=st.none() | _TEXT, tid=st.none() | _TEXT,
       evidence=st.dictionaries(_TEXT, _VALUE, max_size=4),
       status=st.sampled_from(Status), severity=st.sampled_from(Severity),
       change=st.none() | st.sampled_from(Change))
def test_any_text_and_evidence_give_the_same_line(texts: list[str], node: str | None, tid: str | None,
                                                  evidence: dict[str, Any], status: Status,
                                                  severity: Severity, change: Change | None) -> None:
    rid, rule, title, cluster, kind, name, message, expected, actual, remediation = texts
    r = Result(id=rid, rule=rule, title=title, severity=severity, status=status, cluster=cluster,
               target=Target(kind, name, tid, node), message=message, expected=expected, actual=actual,
               remediation=remediation, evidence=evidence, change=change)
    assert result_line(r) == _dumps(r)
    assert result_line(r, _value_encoder()) == _dumps(r)


# ----------------------------------------------------------------------------- model

def test_result_to_dict_is_plain_data(hostile_report: ScanReport) -> None:
    for r in hostile_report.results + tuple(_odd_results(hostile_report.results[0])[:2]):
        d = r.to_dict()
        assert d["target"] == r.target.to_dict()
        assert type(d["severity"]) is str and d["severity"] == r.severity.value
        assert type(d["status"]) is str and d["status"] == r.status.value
        assert d.get("change") == (r.change.value if r.change else None)
        assert d["evidence"] == dict(r.evidence) and d["evidence"] is not r.evidence


def test_summary_is_counted_once_and_handed_out_as_a_copy(sample_report: ScanReport) -> None:
    summary = sample_report.summary
    assert summary == {s.value: sum(r.status is s for r in sample_report.results) for s in Status}
    summary["fail"] = -1
    assert sample_report.summary["fail"] >= 0
    fewer = replace(sample_report, results=sample_report.results[:1])
    assert sum(fewer.summary.values()) == 1
    assert sample_report.to_dict(results=False)["results"] == []
    assert sample_report.to_dict(results=False)["summary"] == sample_report.summary


def test_the_sha256_is_of_the_document_and_follows_the_report(sample_report: ScanReport,
                                                              hostile_report: ScanReport) -> None:
    first = render_json_sha256(sample_report)
    assert first == hashlib.sha256(render_json(sample_report)).hexdigest()
    assert render_json_sha256(sample_report) == first
    assert render_json_sha256(hostile_report) == hashlib.sha256(render_json(hostile_report)).hexdigest() != first
    assert render_json_sha256(sample_report) == first


@pytest.mark.parametrize("per_piece", [1, 3, 1000])
def test_pieces_of_results_join_into_the_same_document(per_piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.render import jsonfmt

    monkeypatch.setattr(jsonfmt, "RESULTS_PER_PIECE", per_piece)
    report = build_sample(hostile=True)
    assert render_json(report) == _reference(report)
