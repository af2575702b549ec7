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


def test_receive_reads_streams_and_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    _, value = _capture(FastProtocol, monkeypatch, "get_command_output_raw", SHELL, "C-1")
    assert value == (b"hello", b"oops", 3, True)
