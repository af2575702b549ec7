"""FastProtocol sends the very envelopes pywinrm's Protocol sends (canonical XML compared)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from winrm.protocol import Protocol

from scanner.collect.wsman import FastProtocol

FIXED = uuid.UUID("11111111-2222-3333-4444-555555555555")
SHELL = "0E3F5C3A-1B2C-4D5E-8F90-A1B2C3D4E5F6"
COMMAND = "9A8B7C6D-<&\">-0000"   # hostile characters must come out escaped, not as markup

RESPONSE = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
    f'<s:Header><a:RelatesTo>uuid:{FIXED}</a:RelatesTo></s:Header><s:Body>'
    f'<w:Selector Name="ShellId">{SHELL}</w:Selector><rsp:CommandId>C-1</rsp:CommandId>'
    '<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C-1">aGVsbG8=</rsp:Stream>'
    '<rsp:Stream Name="stderr" CommandId="C-1">b29wcw==</rsp:Stream>'
    '<rsp:Stream Name="stdout" CommandId="C-1" End="true"></rsp:Stream>'
    '<rsp:CommandState CommandId="C-1" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/'
    'CommandState/Done"><rsp:ExitCode>3</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>'
    '</s:Body></s:Envelope>'
).encode()


def _capture(cls: type[Protocol], monkeypatch: pytest.MonkeyPatch, call: str, *args: Any) -> tuple[str, Any]:
    proto = cls("http://127.0.0.1:1/wsman", transport="basic", username="u", password="p",
                operation_timeout_sec=7, read_timeout_sec=9)
    sent: list[str] = []

    def send_message(message: str) -> bytes:
        sent.append(message)
        return RESPONSE

    monkeypatch.setattr(proto, "send_message", send_message)
    monkeypatch.setattr(uuid, "uuid4", lambda: FIXED)
    value = getattr(proto, call)(*args)
    return ET.canonicalize(sent[0], strip_text=True), value


CALLS = [
    ("open_shell", ("stdin", "stdout stderr", None, None, True, 65001)),
    ("run_command", (SHELL, "powershell.exe", ["-NoProfile", "-EncodedCommand", "QQBCAEMA"], False)),
    ("run_command", (SHELL, "cmd <&>", [], True, True)),
    ("send_command_input", (SHELL, COMMAND, b"Get-Cluster\r\n" * 50, False)),
    ("send_command_input", (SHELL, COMMAND, "x", True)),
    ("get_command_output_raw", (SHELL, COMMAND)),
    ("cleanup_command", (SHELL, COMMAND)),
    ("close_shell", (SHELL, False)),
]


@pytest.mark.parametrize(("call", "args"), CALLS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CALLS)])
def test_same_envelope_and_result_as_pywinrm(call: str, args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = _capture(Protocol, monkeypatch, call, *args)
    ours = _capture(FastProtocol, monkeypatch, call, *args)
    assert ours == theirs


def test_shell_with_environment_is_pywinrms_with_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # pywinrm writes rsp:Environment after the streams; we write it where the MS-WSMV 2.2.4.37
    # Shell schema puts it (first here). Apart from that order, element for element the same.
    env = {"LMSCAN_S0": "$a = '<&\"x\">'\nWrite-Output $a\t# Zürich 東京", "LMSCAN_S1": "]]> &amp; 'y'\n"}
    args = ("stdin", "stdout stderr", None, env, True, 65001)
    theirs, their_id = _capture(Protocol, monkeypatch, "open_shell", *args)
    ours, our_id = _capture(FastProtocol, monkeypatch, "open_shell", *args)
    assert our_id == their_id == SHELL
    their_root, our_root = ET.fromstring(theirs), ET.fromstring(ours)
    ns = {"rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"}
    their_shell, our_shell = their_root.find(".//rsp:Shell", ns), our_root.find(".//rsp:Shell", ns)
    assert their_shell is not None and our_shell is not None
    assert [c.tag.split("}")[1] for c in our_shell] == ["Environment", "InputStreams", "OutputStreams"]
    assert [c.tag.split("}")[1] for c in their_shell] == ["InputStreams", "OutputStreams", "Environment"]
    environment = their_shell[2]
    their_shell.remove(environment)
    their_shell.insert(0, environment)
    assert ET.tostring(our_root) == ET.tostring(their_root)
    raw, _ = _capture_raw(monkeypatch, "open_shell", *args)  # not canonicalized: whitespace kept
    assert {v.get("Name"): v.text for v in ET.fromstring(raw).iter(f"{{{ns['rsp']}}}Variable")} == env


def test_carriage_return_in_a_variable_survives_xml_end_of_line_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    sent, _ = _capture_raw(monkeypatch, "open_shell", "stdin", "stdout stderr", None, {"V": "a\r\nb\rc"})
    assert [v.text for v in ET.fromstring(sent).iter("{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}Variable")] \
        == ["a\r\nb\rc"]


def _capture_raw(monkeypatch: pytest.MonkeyPatch, call: str, *args: Any) -> tuple[str, Any]:
    proto = FastProtocol("http://127.0.0.1:1/wsman", transport="basic", username="u", password="p")
    sent: list[str] = []
    monkeypatch.setattr(proto, "send_message", lambda message: sent.append(message) or RESPONSE)
    value = getattr(proto, call)(*args)
    return sent[0], value


def test_receive_reads_streams_and_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    _, value = _capture(FastProtocol, monkeypatch, "get_command_output_raw", SHELL, "C-1")
    assert value == (b"hello", b"oops", 3, True)
