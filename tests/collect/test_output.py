"""What one collector run printed -> a snapshot, or one clear line saying what went wrong."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from scanner.collect.output import clixml_errors, parse_output, stderr_message
from scanner.collect.transport import NodeError, RunOutput

DATA = Path(__file__).resolve().parent.parent / "data" / "output"


def run(stdout: bytes = b"", stderr: bytes = b"", exit_code: int = 0) -> RunOutput:
    return RunOutput(stdout=stdout, stderr=stderr, exit_code=exit_code, requests=5, elapsed=0.02)


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def error_of(node: str, output: RunOutput) -> NodeError:
    with pytest.raises(NodeError) as info:
        parse_output(node, output)
    err = info.value
    assert err.kind == "output" and err.node == node
    assert "\n" not in str(err) and str(err).startswith(f"{node}: ")
    return err


@pytest.mark.parametrize("name", ["hv01-2019.json", "hv08-2008r2.json"])
def test_collector_style_output_parses(name: str) -> None:
    snap = parse_output(json.loads(sample(name))["node"], run(sample(name)))
    assert snap.has("ClusterNetwork")
    # non-ASCII arrives as \u escapes and comes back as text
    names = [n["Name"] for n in snap.section("ClusterNetwork")]
    assert "LM Zürich 東京" in names


def test_2008r2_sample_has_per_vm_settings_and_no_type_settings() -> None:
    snap = parse_output("HV08-N1", run(sample("hv08-2008r2.json")))
    assert snap.has("VirtualMachineResource") and not snap.has("VirtualMachineResourceType")
    assert snap.collector["powershell"] == "2.0"


@pytest.mark.parametrize("encode", [
    lambda t: t.encode("utf-8"),
    lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),  # what "> node.json" writes in PowerShell 5.1
], ids=["utf8", "utf8-bom", "utf16-bom"])
def test_every_encoding_windows_writes(encode) -> None:  # type: ignore[no-untyped-def]
    text = json.dumps(json.loads(sample("hv01-2019.json")), ensure_ascii=False)
    snap = parse_output("HV01", run(encode(text)))
    assert snap.node == "HV01"


def test_noise_before_the_document_is_skipped() -> None:
    out = b"WARNING: Module FailoverClusters is loaded in Windows PowerShell using WinPSCompatSession\r\n"
    snap = parse_output("HV01", run(out + sample("hv01-2019.json")))
    assert snap.node == "HV01"


@pytest.mark.parametrize("inventory_name", ["HV01", "hv01", "hv01.contoso.com", "HV01.Contoso.COM.", "10.0.0.5",
                                            "localhost", "::1"])
def test_node_name_may_differ_by_case_and_domain(inventory_name: str) -> None:
    assert parse_output(inventory_name, run(sample("hv01-2019.json"))).node == "HV01"


def test_netbios_name_cut_to_15_characters_matches_the_long_host_name() -> None:
    doc = json.loads(sample("hv01-2019.json"))
    doc["node"] = "HYPERV-NODE-LON"
    assert parse_output("hyperv-node-longname01.contoso.com", run(json.dumps(doc).encode())).node == doc["node"]


@pytest.mark.parametrize(("inventory_name", "reported"), [
    ("HV02", "HV01"),
    ("hv01x.contoso.com", "HV01"),
    ("hv01.contoso.com", "HV01.fabrikam.com"),
    ("hyperv-node-longname01", "HYPERV-NODE-LOX"),
])
def test_answer_from_another_machine_is_an_error(inventory_name: str, reported: str) -> None:
    doc = json.loads(sample("hv01-2019.json"))
    doc["node"] = reported
    err = error_of(inventory_name, run(json.dumps(doc).encode()))
    assert f"answered as '{reported}', not '{inventory_name}'" in err.reason


def test_clixml_error_stream_gives_the_human_message() -> None:
    err = error_of("HV03", run(b"", sample("clixml-access-denied.txt"), exit_code=1))
    assert err.reason == ("collector failed (exit code 1): Get-Cluster : You do not have administrative privileges "
                          "on the cluster. Contact your network administrator to request access. Access is denied")
    # position lines, category and progress records are not part of the message
    for noise in ("At line", "CategoryInfo", "FullyQualifiedErrorId", "~~~", "Preparing modules", "_x000D_"):
        assert noise not in str(err)


def test_clixml_entities_and_non_ascii_are_decoded() -> None:
    message = clixml_errors(sample("clixml-parse-error.txt").decode("utf-8"))
    assert message == "The '<' operator is reserved for future use."


def test_clixml_module_missing() -> None:
    message = stderr_message(sample("clixml-module-missing.txt"))
    assert message.startswith("Import-Module : The specified module 'FailoverClusters' was not loaded")
    assert message.endswith("was found in any module directory.")


def test_progress_only_stderr_is_ignored_when_the_run_succeeded() -> None:
    snap = parse_output("HV01", run(sample("hv01-2019.json"), sample("clixml-progress-only.txt")))
    assert snap.node == "HV01"
    assert stderr_message(sample("clixml-progress-only.txt")) == ""


def test_plain_stderr_and_non_zero_exit() -> None:
    err = error_of("HV03", run(b"", b"lmscan collector failed: Exception of type 'System.OutOfMemoryException'\r\n", 1))
    assert err.reason == "collector failed (exit code 1): lmscan collector failed: Exception of type " \
                         "'System.OutOfMemoryException'"


def test_non_zero_exit_without_any_message() -> None:
    assert error_of("HV03", run(b"", b"", 259)).reason == "collector failed (exit code 259)"


def test_non_zero_exit_wins_even_with_a_document() -> None:
    err = error_of("HV01", run(sample("hv01-2019.json"), b"", 1))
    assert err.reason.startswith("collector failed (exit code 1)")


def test_empty_output() -> None:
    assert error_of("HV03", run(b"\r\n")).reason == "collector printed nothing"
    err = error_of("HV03", run(b"", sample("clixml-module-missing.txt")))
    assert err.reason.startswith("collector printed nothing; its error output: Import-Module : The specified")


@pytest.mark.parametrize("cut", [1, 20, 200, 1000, -2])
def test_truncated_json_says_truncated(cut: int) -> None:
    data = sample("hv01-2019.json").rstrip()
    err = error_of("HV01", run(data[:cut]))
    assert "truncated" in err.reason, err.reason


def test_truncated_inside_a_string_with_escapes() -> None:
    data = sample("hv01-2019.json")
    cut = data.index(b"\\u00fc") + 3  # stops in the middle of a \u escape
    assert "truncated" in error_of("HV01", run(data[:cut])).reason


@pytest.mark.parametrize("garbage", [
    b"The term 'powershell.exe' is not recognized as an internal or external command",
    b"<html><body>404</body></html>",
    b'{"lmscan_snapshot": 1, "node": oops}',
    b'{"a": 1}}',
])
def test_garbage_is_not_json_not_truncated(garbage: bytes) -> None:
    err = error_of("HV01", run(garbage))
    assert err.reason.startswith("collector output is not JSON"), err.reason
    assert "truncated" not in err.reason


def test_wrong_document() -> None:
    err = error_of("HV01", run(b'{"hello": "world"}'))
    assert err.reason == ("collector output is not an lmscan snapshot: missing key 'lmscan_snapshot'; "
                          "this is not an lmscan snapshot")
    err = error_of("HV01", run(b'{"lmscan_snapshot": 2, "node": "HV01", "sections": {}}'))
    assert "unsupported lmscan_snapshot version 2" in err.reason
    err = error_of("HV01", run(b'[1, 2]'))
    assert "expected a JSON object" in err.reason


def test_not_utf8() -> None:
    err = error_of("HV01", run(b'{"lmscan_snapshot":1,"node":"Z\x81rich"}'))
    assert "not UTF-8" in err.reason


def test_long_messages_are_cut_to_one_short_line() -> None:
    err = error_of("HV01", run(b"", ("x " * 5000).encode(), 1))
    assert len(err.reason) < 400 and err.reason.endswith("…")


def test_big_output_parses() -> None:
    doc = json.loads(sample("hv01-2019.json"))
    doc["sections"]["VirtualMachine"] = [{"Name": f"VM {i} Zürich", "Notes": "x" * 200} for i in range(22000)]
    data = json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode()
    assert len(data) > 5_000_000
    assert len(parse_output("HV01", run(data)).section("VirtualMachine")) == 22000
    assert "truncated" in error_of("HV01", run(data[: len(data) // 2])).reason
