"""WS-Management shell messages built from string templates instead of ``xmltodict.unparse``.

pywinrm builds every request as a nested dict and serializes it with ``xmltodict.unparse``,
which validates each name character by character: about a third of the scan host's CPU per
collected node went there (issue 11). :class:`FastProtocol` sends the same envelopes, element
for element (tests/collect/test_wsman.py compares them with pywinrm's own), from templates; the
responses are parsed by pywinrm's code as before. Values that come from outside (shell and
command ids from the server, the command line) are XML-escaped.
"""

from __future__ import annotations

import base64
import collections.abc
import typing as t
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from winrm.protocol import Protocol

_NS = (
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:b="http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd" '
    'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" '
    'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
    'xmlns:cfg="http://schemas.microsoft.com/wbem/wsman/1/config"'
)
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
COMMAND = f"{_SHELL}/Command"
SEND = f"{_SHELL}/Send"
RECEIVE = f"{_SHELL}/Receive"
SIGNAL = f"{_SHELL}/Signal"
TERMINATE = f"{_SHELL}/signal/terminate"
_CR = {"\r": "&#13;"}


def envelope(action: str, operation_timeout: int, message_id: uuid.UUID, body: str, shell_id: str | None = None,
             options: tuple[tuple[str, str], ...] = (), max_envelope_size: int = 153600) -> str:
    """One request envelope with the header pywinrm's ``build_wsman_header`` writes."""
    selector = (f'<w:SelectorSet><w:Selector Name="ShellId">{escape(shell_id)}</w:Selector></w:SelectorSet>'
                if shell_id else "")
    option_set = ("<w:OptionSet>" + "".join(f"<w:Option Name={quoteattr(n)}>{escape(v)}</w:Option>"
                                            for n, v in options) + "</w:OptionSet>") if options else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<env:Envelope {_NS}><env:Header>'
        '<a:To>http://windows-host:5985/wsman</a:To>'
        '<a:ReplyTo><a:Address mustUnderstand="true">'
        'http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>'
        f'<w:MaxEnvelopeSize mustUnderstand="true">{max_envelope_size}</w:MaxEnvelopeSize>'
        f'<a:MessageID>uuid:{message_id}</a:MessageID>'
        '<w:Locale mustUnderstand="false" xml:lang="en-US"></w:Locale>'
        '<p:DataLocale mustUnderstand="false" xml:lang="en-US"></p:DataLocale>'
        f'<w:OperationTimeout>PT{int(operation_timeout)}S</w:OperationTimeout>'
        f'<w:ResourceURI mustUnderstand="true">{SHELL_URI}</w:ResourceURI>'
        f'<a:Action mustUnderstand="true">{action}</a:Action>'
        f'{selector}{option_set}</env:Header><env:Body>{body}</env:Body></env:Envelope>'
    )


def _relates_to(response: bytes) -> str:
    root = ET.fromstring(response)
    return t.cast(str, next(n for n in root.iter() if n.tag.endswith("RelatesTo")).text)


class FastProtocol(Protocol):
    """pywinrm's :class:`~winrm.protocol.Protocol` for the six shell messages lmscan sends."""

    def open_shell(self, i_stream: str = "stdin", o_stream: str = "stdout stderr",
                   working_directory: str | None = None, env_vars: dict[str, str] | None = None,
                   noprofile: bool = False, codepage: int = 437, lifetime: None = None,
                   idle_timeout: str | int | None = None) -> str:
        if working_directory or idle_timeout or lifetime:
            return super().open_shell(i_stream, o_stream, working_directory, env_vars, noprofile, codepage,
                                      lifetime, idle_timeout)
        # rsp:Environment comes first, as in the Shell schema (MS-WSMV 2.2.4.37: Environment before
        # InputStreams/OutputStreams) and in the CreateResponse Windows sends back; pywinrm writes it
        # last, which Windows also accepts. A CR is written as &#13; so XML end-of-line handling
        # cannot turn it into LF.
        environment = ("<rsp:Environment>" + "".join(
            f"<rsp:Variable Name={quoteattr(name)}>{escape(value, _CR)}</rsp:Variable>"
            for name, value in env_vars.items()) + "</rsp:Environment>") if env_vars else ""
        body = (f"<rsp:Shell>{environment}<rsp:InputStreams>{escape(i_stream)}</rsp:InputStreams>"
                f"<rsp:OutputStreams>{escape(o_stream)}</rsp:OutputStreams></rsp:Shell>")
        options = (("WINRS_NOPROFILE", str(noprofile).upper()), ("WINRS_CODEPAGE", str(codepage)))
        res = self.send_message(envelope(CREATE, self.operation_timeout_sec, uuid.uuid4(), body, options=options))
        root = ET.fromstring(res)
        return t.cast(str, next(n for n in root.iter() if n.get("Name") == "ShellId").text)

    def run_command(self, shell_id: str, command: str, arguments: collections.abc.Iterable[str | bytes] = (),
                    console_mode_stdin: bool = True, skip_cmd_shell: bool = False) -> str:
        args = [a if isinstance(a, str) else a.decode("utf-8") for a in arguments]
        body = (f"<rsp:CommandLine><rsp:Command>{escape(command)}</rsp:Command>"
                + (f"<rsp:Arguments>{escape(' '.join(args))}</rsp:Arguments>" if args else "")
                + "</rsp:CommandLine>")
        options = (("WINRS_CONSOLEMODE_STDIN", str(console_mode_stdin).upper()),
                   ("WINRS_SKIP_CMD_SHELL", str(skip_cmd_shell).upper()))
        res = self.send_message(envelope(COMMAND, self.operation_timeout_sec, uuid.uuid4(), body, shell_id, options))
        root = ET.fromstring(res)
        return t.cast(str, next(n for n in root.iter() if n.tag.endswith("CommandId")).text)

    def send_command_input(self, shell_id: str, command_id: str, stdin_input: str | bytes,
                           end: bool = False) -> None:
        if isinstance(stdin_input, str):
            stdin_input = stdin_input.encode("437")
        body = (f'<rsp:Send><rsp:Stream CommandId={quoteattr(command_id)} Name="stdin" '
                f'End="{"true" if end else "false"}" xmlns:rsp="{_SHELL}">'
                f'{base64.b64encode(stdin_input).decode("ascii")}</rsp:Stream></rsp:Send>')
        self.send_message(envelope(SEND, self.operation_timeout_sec, uuid.uuid4(), body, shell_id))

    def get_command_output_raw(self, shell_id: str, command_id: str) -> tuple[bytes, bytes, int, bool]:
        body = (f"<rsp:Receive><rsp:DesiredStream CommandId={quoteattr(command_id)}>stdout stderr"
                "</rsp:DesiredStream></rsp:Receive>")
        res = self.send_message(envelope(RECEIVE, self.operation_timeout_sec, uuid.uuid4(), body, shell_id))
        root = ET.fromstring(res)
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        done = False
        code = -1
        for node in root.iter():
            tag = node.tag
            if tag.endswith("Stream") and node.text:
                name = node.attrib.get("Name")
                if name == "stdout":
                    stdout.append(base64.b64decode(node.text.encode("ascii")))
                elif name == "stderr":
                    stderr.append(base64.b64decode(node.text.encode("ascii")))
            elif node.get("State", "").endswith("CommandState/Done"):
                done = True
            elif tag.endswith("ExitCode"):
                code = int(node.text or -1)
        return b"".join(stdout), b"".join(stderr), code if done else -1, done

    def cleanup_command(self, shell_id: str, command_id: str) -> None:
        message_id = uuid.uuid4()
        body = (f"<rsp:Signal CommandId={quoteattr(command_id)}><rsp:Code>{TERMINATE}</rsp:Code></rsp:Signal>")
        res = self.send_message(envelope(SIGNAL, self.operation_timeout_sec, message_id, body, shell_id))
        assert uuid.UUID(_relates_to(res).replace("uuid:", "")) == message_id

    def close_shell(self, shell_id: str, close_session: bool = True) -> None:
        message_id = uuid.uuid4()
        try:
            res = self.send_message(envelope(DELETE, self.operation_timeout_sec, message_id, "", shell_id))
            relates_to = _relates_to(res)
        finally:
            if close_session:
                self.transport.close_session()
        assert uuid.UUID(relates_to.replace("uuid:", "")) == message_id
