"""A WS-Management (WinRS) endpoint on loopback that the real pywinrm talks to in tests.

Written for lmscan from the exchange in research/ecosystem.md §3: Create, Command, Send,
Receive, Signal and Delete with MS-WSMV envelopes and RelatesTo, SOAP faults (HTTP 500 with a
WSManFault code), the OperationTimeout fault 2150858793 when a Receive has no output in time,
codepage emulation, output split over several Receives, cmd.exe's 8191-character limit (on the
command line and on each inherited environment variable, which it cuts), and decoding of the
``-EncodedCommand`` bootstrap, of stdin and of a script carried in shell environment variables
(joined and length-checked as the bootstrap would). Authentication: Basic, NTLM with
pyspnego as the acceptor, Kerberos with python-gssapi as the acceptor (its service keytab from the
test's KDC; channel binding checked when given the server certificate), both with MS-WSMV message
encryption over HTTP, or a TLS client certificate. HTTPS with any server certificate the test
supplies.

No PowerShell runs: a *handler* decides what each command "prints"::

    with FakeWSMan(lambda req: Reply(stdout=json.dumps(doc))) as srv:
        run_powershell(Endpoint("HV01", srv.url, "basic", "u", "p", allow_unencrypted=True), script)
        assert srv.open_shells() == 0

Failures are injected per step with :meth:`FakeWSMan.inject` (``Fault``, ``Hang``, ``Trickle``,
``RawHTTP``, ``Drop``) or for every request with ``intercept``. Introspection: ``srv.log``,
``srv.connections``, ``srv.shells``, ``srv.commands``.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import struct
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union, cast
from xml.sax.saxutils import escape, quoteattr

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
STATE_DONE = SHELL_URI + "/CommandState/Done"
STATE_RUNNING = SHELL_URI + "/CommandState/Running"
OPERATION_TIMEOUT_CODE = 2150858793
SHELL_NOT_FOUND_CODE = 2150858843
CMD_LINE_LIMIT = 8191
_ENV_JOIN = re.compile(r"\$s=((?:\$env:\w+\+?)+);")
_ENV_LENGTH = re.compile(r"if\(\$s\.Length -ne (\d+)\)\{.*?exit (\d+)\}")
BOUNDARY = b"--Encrypted Boundary"
SPNEGO_ENC = "application/HTTP-SPNEGO-session-encrypted"
CERT_AUTH_HEADER = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"


# --- what a handler sees and returns ----------------------------------------------------------


@dataclass
class CommandRequest:
    """One command as the fake received it."""

    path: str
    user: str | None
    shell_id: str
    command_id: str
    codepage: int
    noprofile: bool
    env: dict[str, str]
    command_line: str
    console_mode_stdin: bool
    encoded_command: str | None
    stdin: bytes = b""

    @property
    def script(self) -> str:
        """The PowerShell the client meant to run: stdin if the bootstrap reads it, the joined
        shell variables if it joins ``$s=$env:A+$env:B...``, else the bootstrap itself."""
        if self.encoded_command is not None and "$input" not in self.encoded_command:
            names = self.env_script_names
            if names:
                return "".join(self.env.get(name, "") for name in names)
            return self.encoded_command
        return self.stdin.decode("utf-8-sig", errors="replace")

    @property
    def env_script_names(self) -> list[str]:
        """The variables an environment bootstrap joins into its script, in order ([] if none)."""
        match = _ENV_JOIN.search(self.encoded_command or "")
        return re.findall(r"\$env:(\w+)", match.group(1)) if match else []

    def env_bootstrap_refusal(self) -> Reply | None:
        """What the environment bootstrap prints when the joined script has the wrong length."""
        match = _ENV_LENGTH.search(self.encoded_command or "") if self.env_script_names else None
        if match is None or len(self.script) == int(match.group(1)):
            return None
        return Reply(stdout=f"lmscan: the script arrived incomplete in the shell environment "
                            f"({len(self.script)} of {match.group(1)} characters)\r\n", exit_code=int(match.group(2)))


@dataclass
class Reply:
    """The command's output; ``str`` output is encoded with the shell's codepage like Windows does."""

    stdout: bytes | str = b""
    stderr: bytes | str = b""
    exit_code: int = 0
    delay: float = 0.0


@dataclass
class NeverFinishes:
    """The command runs forever: every Receive ends in an OperationTimeout fault."""


@dataclass
class Fault:
    """An HTTP 500 SOAP fault."""

    reason: str = "Access is denied."
    subcode: str = "w:AccessDenied"
    code: str = "s:Sender"
    wsman_code: int = 5
    status: int = 500


@dataclass
class Hang:
    """Do not answer for ``seconds`` (None: until the server stops); ``partial`` sends half first."""

    seconds: float | None = 30.0
    partial: bool = False


@dataclass
class Trickle:
    """Send a status line and headers, then one body byte every ``interval`` s, forever."""

    interval: float = 0.2
    seconds: float = 30.0


@dataclass
class RawHTTP:
    """Any HTTP answer; a ``declared_length`` beyond the body truncates it, then closes.
    ``chunked`` sends the body with chunked transfer encoding (no length known up front)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/soap+xml;charset=UTF-8"
    declared_length: int | None = None
    chunked: bool = False


@dataclass
class Drop:
    """Close the connection without answering (``reset``: with an RST)."""

    reset: bool = True


Action = Union[Fault, Hang, Trickle, RawHTTP, Drop]  # noqa: UP007 (a runtime alias; | needs 3.10 objects)
Outcome = Union[Reply, NeverFinishes]  # noqa: UP007
Handler = Callable[[CommandRequest], Outcome]


@dataclass
class LogEntry:
    step: str
    status: int
    ms: float
    path: str
    connection: int
    encrypted: bool = False
    request_bytes: int = 0  # the SOAP envelope (decrypted)


@dataclass
class _Injection:
    step: str
    action: Action
    times: int | None
    path: str | None


@dataclass
class _Command:
    request: CommandRequest
    outcome: Outcome | None = None
    started: float = 0.0
    stdout: bytes = b""
    stderr: bytes = b""
    out_pos: int = 0
    err_pos: int = 0


@dataclass
class _Shell:
    path: str
    codepage: int
    noprofile: bool
    env: dict[str, str]
    user: str | None
    commands: dict[str, _Command] = field(default_factory=dict)


def clixml_error(message: str) -> bytes:
    """stderr as Windows PowerShell writes a Write-Error record over WinRS."""
    text = escape(message).replace("\r\n", "\n").replace("\n", "_x000D__x000A_")
    return (
        "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">"
        f"<S S=\"Error\">{text}_x000D__x000A_</S></Objs>"
    ).encode()


def decode_encoded_command(command_line: str) -> str | None:
    """The script behind ``powershell -EncodedCommand <base64 UTF-16LE>``, if present."""
    match = re.search(r"(?i)(?:^|\s)-(?:encodedcommand|enc|ec|e)\s+([A-Za-z0-9+/=]+)", command_line)
    if not match:
        return None
    try:
        return base64.b64decode(match.group(1)).decode("utf-16-le")
    except (ValueError, UnicodeDecodeError):
        return None


def _encode_output(data: bytes | str, codepage: int) -> bytes:
    if isinstance(data, bytes):
        return data
    if codepage == 65001:
        return data.encode("utf-8")
    return data.encode(f"cp{codepage}", errors="replace")


def _step_of(body: bytes) -> str:
    """The last segment of the request's a:Action, found without a full parse."""
    match = re.search(rb"<a:Action[^>]*>([^<]*)</a:Action>", body)
    return match.group(1).decode("ascii", "replace").rsplit("/", 1)[-1].strip() if match else "?"


def _parse_duration(text: str | None, default: float) -> float:
    match = re.fullmatch(r"PT([0-9.]+)S", (text or "").strip())
    return float(match.group(1)) if match else default


# --- the server ------------------------------------------------------------------------------


class FakeWSMan:
    """A threaded HTTP/1.1 WinRS endpoint on 127.0.0.1 (keep-alive, TCP_NODELAY)."""

    def __init__(
        self,
        handler: Handler | Outcome | None = None,
        *,
        username: str = "u",
        password: str = "p",
        auth: str = "basic",
        ssl_context: ssl.SSLContext | None = None,
        chunk_size: int = 64 * 1024,
        intercept: Callable[[str, str], Action | None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keytab: str | None = None,
        binding_cert: bytes | None = None,
    ) -> None:
        if auth not in ("basic", "ntlm", "certificate", "kerberos"):
            raise ValueError(f"unsupported auth {auth!r}")
        outcome = Reply() if handler is None else handler
        if callable(outcome):
            self.handler: Handler = outcome
        else:
            fixed: Outcome = outcome
            self.handler = lambda _req: fixed
        self.username = username
        self.password = password
        self.auth = auth
        self.ssl_context = ssl_context
        self.chunk_size = chunk_size
        self.intercept = intercept
        self.keytab = keytab  # kerberos: the HTTP/<host> service keytab
        self.binding_cert = binding_cert  # kerberos over https: demand channel binding to this DER cert
        self.auth_failures: list[str] = []
        self.shells: dict[str, _Shell] = {}
        self.commands: list[CommandRequest] = []
        self.log: list[LogEntry] = []
        self.connections = 0
        self.errors: list[str] = []
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self._injections: list[_Injection] = []
        self._live: set[socket.socket] = set()
        self._ntlm_file: str | None = None
        self._saved_env: str | None = None
        self._httpd = _Server((host, port), _RequestHandler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = "localhost" if self.auth == "kerberos" else "127.0.0.1"  # Kerberos needs a name with an SPN
        return f"{scheme}://{host}:{self.port}/wsman"

    def url_for(self, path: str) -> str:
        """A URL with its own path: one server, many "virtual" nodes (see ``CommandRequest.path``)."""
        return f"{self.url.rsplit('/', 1)[0]}/{path.strip('/')}"

    def start(self) -> FakeWSMan:
        if self.auth == "ntlm":
            domain, _, user = self.username.rpartition("\\")
            fd, self._ntlm_file = tempfile.mkstemp(prefix="fakewsman-ntlm-")
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{domain}:{user}:{self.password}\n")
            self._saved_env = os.environ.get("NTLM_USER_FILE")
            os.environ["NTLM_USER_FILE"] = self._ntlm_file
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakewsman", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._ntlm_file:
            os.unlink(self._ntlm_file)
            if self._saved_env is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = self._saved_env
            self._ntlm_file = None

    def __enter__(self) -> FakeWSMan:  # noqa: PYI034  (typing.Self needs 3.11)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # test controls

    def inject(self, step: str, action: Action, times: int | None = None, path: str | None = None) -> None:
        """Answer ``step`` (Create, Command, Send, Receive, Signal, Delete, or * for any) with ``action``,
        ``times`` times (None: always), optionally only for one URL path."""
        with self.lock:
            self._injections.append(_Injection(step, action, times, path))

    def open_shells(self) -> int:
        with self.lock:
            return len(self.shells)

    def steps(self) -> list[str]:
        with self.lock:
            return [e.step for e in self.log]

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()

    # called by the request handler

    def _injection_for(self, step: str, path: str) -> Action | None:
        if self.intercept is not None:
            action = self.intercept(step, path)
            if action is not None:
                return action
        with self.lock:
            for inj in self._injections:
                if inj.step in (step, "*") and (inj.path is None or inj.path == path) and inj.times != 0:
                    if inj.times is not None:
                        inj.times -= 1
                    return inj.action
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True
    fake: FakeWSMan

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        with self.fake.lock:
            self.fake.errors.append(f"{type(exc).__name__}: {exc}")


class _Abort(Exception):
    """Stop handling this connection (the action already wrote or closed what it had to)."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        fake = self.server.fake
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if fake.ssl_context is not None:
            self.request = fake.ssl_context.wrap_socket(self.request, server_side=True)
        with fake.lock:
            fake.connections += 1
            self.conn_no = fake.connections
            fake._live.add(self.request)
        self.ntlm: Any = None
        self.gss: Any = None
        self.auth_headers: list[tuple[str, str]] = []
        self.user: str | None = None
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.fake.lock:
            self.server.fake._live.discard(self.request)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # plumbing

    def _send(self, status: int, body: bytes = b"", content_type: str | None = "application/soap+xml;charset=UTF-8",
              headers: Sequence[tuple[str, str]] = (), declared_length: int | None = None) -> None:
        """Status line, headers and body in ONE write (with Nagle off, no 40 ms stalls)."""
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", "Server: Microsoft-HTTPAPI/2.0",
                 f"Content-Length: {len(body) if declared_length is None else declared_length}"]
        if content_type and (body or declared_length):
            lines.append(f"Content-Type: {content_type}")
        lines += [f"{k}: {v}" for k, v in [*self.auth_headers, *headers]]
        self.auth_headers = []
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def do_POST(self) -> None:
        fake = self.server.fake
        began = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if not self._authenticated(raw):
            return
        encrypted = "multipart/encrypted" in (self.headers.get("Content-Type") or "")
        body = self._decrypt(raw) if encrypted else raw
        if not body:  # pywinrm's empty POST that sets up the encryption context
            self._send(200)
            return
        entry = LogEntry(_step_of(body), 0, 0.0, path, self.conn_no, encrypted, len(body))
        with fake.lock:
            fake.log.append(entry)  # in arrival order; status and time filled in when answered
        try:
            _, entry.status, reply = self._dispatch(body, path)
            self._send(entry.status, self._encrypt(reply) if encrypted else reply,
                       f'multipart/encrypted;protocol="{SPNEGO_ENC}";boundary="Encrypted Boundary"'
                       if encrypted else "application/soap+xml;charset=UTF-8")
        except _Abort:
            self.close_connection = True
            entry.status = -1
        finally:
            entry.ms = (time.monotonic() - began) * 1000

    # authentication

    def _authenticated(self, raw: bytes) -> bool:
        fake = self.server.fake
        header = self.headers.get("Authorization") or ""
        if fake.auth == "basic":
            if header.startswith("Basic "):
                try:
                    user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
                except (ValueError, UnicodeDecodeError):
                    user, password = "", None
                if user == fake.username and password == fake.password:
                    self.user = user
                    return True
            self._send(401, headers=[("WWW-Authenticate", 'Basic realm="WSMAN"'), ("WWW-Authenticate", "Negotiate")])
            return False
        if fake.auth == "certificate":
            cert = self.request.getpeercert() if isinstance(self.request, ssl.SSLSocket) else None
            if header == CERT_AUTH_HEADER and cert:
                subject = cast("tuple[tuple[tuple[str, str], ...], ...]", cert.get("subject", ()))
                names = [pair for rdn in subject for pair in rdn]
                self.user = next((str(v) for k, v in names if k == "commonName"), "certificate")
                return True
            self._send(401)
            return False
        if fake.auth == "kerberos":
            return self._kerberos_step(header)
        return self._ntlm_step(header)

    def _kerberos_step(self, header: str) -> bool:
        """Accept a raw Kerberos AP-REQ under Negotiate, as WinRM does; the AP-REP goes back with
        the answer to the same request (mutual authentication)."""
        import gssapi
        from gssapi.raw import ChannelBindings, GSSError

        fake = self.server.fake
        scheme, _, token = header.partition(" ")
        if self.gss is not None and self.gss.complete and not token:
            return True  # the connection stays authenticated
        if scheme.lower() not in ("negotiate", "kerberos") or not token:
            self.gss = None
            self._send(401, headers=[("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "Kerberos")])
            return False
        bindings = None
        if fake.binding_cert is not None:
            import hashlib

            digest = hashlib.sha256(fake.binding_cert).digest()
            bindings = ChannelBindings(application_data=b"tls-server-end-point:" + digest)
        assert fake.keytab, "FakeWSMan(auth='kerberos') needs keytab="
        out = None
        try:
            creds = gssapi.Credentials(usage="accept", store={"keytab": fake.keytab})
            ctx = gssapi.SecurityContext(creds=creds, usage="accept", channel_bindings=bindings)
            out = ctx.step(base64.b64decode(token))
            _ = ctx.complete  # python-gssapi raises a refusal here, after handing out the error token
        except GSSError as exc:
            with fake.lock:
                fake.auth_failures.append(str(exc.gen_message()))
            self.gss = None
            # MIT, like Windows, answers a refused AP-REQ with a KRB-ERROR token the client can read
            error_token = " " + base64.b64encode(out).decode() if out else ""
            self._send(401, headers=[("WWW-Authenticate", "Negotiate" + error_token)])
            return False
        self.gss = ctx
        self.user = str(ctx.initiator_name)
        if out:
            self.auth_headers = [("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())]
        return True

    def _ntlm_step(self, header: str) -> bool:
        import spnego

        scheme, _, token = header.partition(" ")
        if self.ntlm is not None and self.ntlm.complete and not token:
            return True  # NTLM authenticates the connection, not each request
        if scheme.lower() not in ("negotiate", "ntlm") or not token:
            self.ntlm = None
            self._send(401, headers=[("WWW-Authenticate", "Negotiate")])
            return False
        if self.ntlm is None or self.ntlm.complete:
            self.ntlm = spnego.server(protocol="ntlm")
        try:
            out = self.ntlm.step(base64.b64decode(token))
        except Exception:  # noqa: BLE001  (wrong password, bad token: refuse like Windows does)
            self.ntlm = None
            self._send(401, headers=[("WWW-Authenticate", "Negotiate")])
            return False
        if not self.ntlm.complete:
            self._send(401, headers=[("WWW-Authenticate", f"{scheme} {base64.b64encode(out or b'').decode()}")])
            return False
        self.user = str(self.ntlm.client_principal)
        return True

    # MS-WSMV message encryption (pywinrm winrm/encryption.py): NTLM, or Kerberos with GSS IOV
    # buffers (header, data, padding) as Windows lays them out

    def _decrypt(self, raw: bytes) -> bytes:
        parts = [p for p in raw.split(BOUNDARY + b"\r\n") if p]
        header, payload = parts[0], parts[1]
        expected = int(header.split(b"Length=")[1].split(b"\r\n")[0])
        payload = payload.removesuffix(BOUNDARY + b"--\r\n")
        data = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        sig_len = struct.unpack("<i", data[:4])[0]
        signature, sealed = data[4:4 + sig_len], data[4 + sig_len:]
        if self.gss is not None:
            from gssapi.raw import IOV, IOVBufferType, unwrap_iov

            iov = IOV((IOVBufferType.header, False, signature), sealed, IOVBufferType.data, std_layout=False)
            unwrap_iov(self.gss, iov)
            message = iov[1].value or b""
        else:
            message = self.ntlm.unwrap(signature + sealed).data
        if len(message) != expected:
            raise ValueError("encrypted length mismatch")
        return bytes(message)

    def _encrypt(self, message: bytes) -> bytes:
        if self.gss is not None:
            from gssapi.raw import IOV, IOVBufferType, wrap_iov

            iov = IOV(IOVBufferType.header, message, IOVBufferType.padding, std_layout=False)
            wrap_iov(self.gss, iov, confidential=True)
            signature, sealed = iov[0].value or b"", (iov[1].value or b"") + (iov[2].value or b"")
        else:
            wrapped = bytes(self.ntlm.wrap(message, encrypt=True).data)
            signature, sealed = wrapped[:16], wrapped[16:]
        return (BOUNDARY + b"\r\n\tContent-Type: " + SPNEGO_ENC.encode() + b"\r\n"
                b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(message)).encode()
                + b"\r\n" + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
                + struct.pack("<i", len(signature)) + signature + sealed + BOUNDARY + b"--\r\n")

    # WinRS

    def _dispatch(self, body: bytes, path: str) -> tuple[str, int, bytes]:
        fake = self.server.fake
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return "?", 400, b""
        hdr = root.find("s:Header", NS)
        action = (hdr.findtext("a:Action", "", NS) if hdr is not None else "").strip()
        step = action.rsplit("/", 1)[-1]
        msg_id = (hdr.findtext("a:MessageID", "", NS) if hdr is not None else "").strip()
        op_timeout = _parse_duration(hdr.findtext("w:OperationTimeout", None, NS) if hdr is not None else None, 60.0)
        shell_id = ""
        if hdr is not None:
            for sel in hdr.iterfind("w:SelectorSet/w:Selector", NS):
                if sel.get("Name") == "ShellId":
                    shell_id = (sel.text or "").strip()
        options = {o.get("Name") or "": (o.text or "").strip() for o in root.iterfind("s:Header/w:OptionSet/w:Option", NS)}
        injected = fake._injection_for(step, path)
        if injected is not None:
            return step, *self._perform(injected, msg_id, action)
        bodyel = root.find("s:Body", NS)
        with fake.lock:
            if step == "Create":
                return step, 200, self._create(bodyel, options, path, msg_id)
            shell = fake.shells.get(shell_id)
            if shell is None:
                return step, 500, _fault_xml(msg_id, Fault(
                    f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was "
                    "not found on the server.", "w:InvalidSelectors", "s:Sender", SHELL_NOT_FOUND_CODE))
            if step == "Delete":
                del fake.shells[shell_id]
                return step, 200, _envelope(msg_id, "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", "")
            if step == "Command":
                return step, 200, self._command(shell, shell_id, bodyel, options, msg_id)
            cmd_id = ""
            for el in bodyel.iter() if bodyel is not None else ():
                cmd_id = cmd_id or el.get("CommandId", "")
            cmd = shell.commands.get(cmd_id)
            if cmd is None:
                return step, 500, _fault_xml(msg_id, Fault(f"The command {cmd_id} was not found.",
                                                           "w:InvalidSelectors", "s:Sender", SHELL_NOT_FOUND_CODE))
            if step == "Send":
                return step, 200, self._stdin(cmd, bodyel, msg_id)
            if step == "Signal":
                del shell.commands[cmd_id]
                return step, 200, _envelope(msg_id, f"{SHELL_URI}/SignalResponse", "<rsp:SignalResponse/>")
            if step != "Receive":
                return step, 500, _fault_xml(msg_id, Fault(f"The action {action} is not supported.",
                                                           "a:ActionNotSupported", "s:Sender", 2150858817))
            ready = self._start_if_needed(cmd)
        # Receive waits outside the lock, like a server blocking until output or OperationTimeout.
        wait = max(0.0, min(ready - time.monotonic(), op_timeout))
        if wait and fake.stopping.wait(wait):
            raise _Abort()
        with fake.lock:
            if isinstance(cmd.outcome, NeverFinishes) or time.monotonic() < ready:
                return step, 500, _fault_xml(msg_id, Fault(
                    "The WS-Management service cannot complete the operation within the time specified in "
                    "OperationTimeout.", "w:TimedOut", "s:Receiver", OPERATION_TIMEOUT_CODE))
            return step, 200, self._receive(cmd, cmd_id, msg_id)

    def _create(self, bodyel: ET.Element | None, options: dict[str, str], path: str, msg_id: str) -> bytes:
        fake = self.server.fake
        env = {}
        if bodyel is not None:
            for var in bodyel.iterfind("rsp:Shell/rsp:Environment/rsp:Variable", NS):
                env[var.get("Name", "")] = var.text or ""
        shell_id = str(uuid.uuid4()).upper()
        fake.shells[shell_id] = _Shell(path=path, codepage=int(options.get("WINRS_CODEPAGE") or 437),
                                       noprofile=options.get("WINRS_NOPROFILE", "FALSE").upper() == "TRUE",
                                       env=env, user=self.user)
        body = (
            '<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address><a:ReferenceParameters>'
            f'<w:ResourceURI>{SHELL_URI}/cmd</w:ResourceURI><w:SelectorSet>'
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            f'</x:ResourceCreated><rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId>'
            # Windows echoes the variables back (pypsrp's recorded tests/responses/test_winrs_environment.yml).
            + ("<rsp:Environment>" + "".join(f'<rsp:Variable Name={quoteattr(k)}>{escape(v)}</rsp:Variable>'
                                             for k, v in env.items()) + "</rsp:Environment>" if env else "")
            + '<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>'
        )
        return _envelope(msg_id, "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", body)

    def _command(self, shell: _Shell, shell_id: str, bodyel: ET.Element | None, options: dict[str, str],
                 msg_id: str) -> bytes:
        fake = self.server.fake
        command = (bodyel.findtext("rsp:CommandLine/rsp:Command", "", NS) if bodyel is not None else "").strip()
        arguments = [a.text or "" for a in bodyel.iterfind("rsp:CommandLine/rsp:Arguments", NS)] if bodyel is not None else []
        line = " ".join([command, *arguments]).strip()
        cmd_id = str(uuid.uuid4()).upper()
        skip_cmd = options.get("WINRS_SKIP_CMD_SHELL", "FALSE").upper() == "TRUE"
        # What the process inherits: through cmd.exe, a variable is cut at 8191 characters (see
        # Microsoft's "Command prompt (Cmd.exe) command-line string limitation").
        env = dict(shell.env) if skip_cmd else {k: v[:CMD_LINE_LIMIT] for k, v in shell.env.items()}
        req = CommandRequest(path=shell.path, user=shell.user, shell_id=shell_id, command_id=cmd_id,
                             codepage=shell.codepage, noprofile=shell.noprofile, env=env,
                             command_line=line,
                             console_mode_stdin=options.get("WINRS_CONSOLEMODE_STDIN", "TRUE").upper() == "TRUE",
                             encoded_command=decode_encoded_command(line))
        cmd = _Command(req)
        if len(line) > CMD_LINE_LIMIT:  # cmd.exe /c refuses it
            cmd.outcome, cmd.started = Reply(stderr="The command line is too long.\r\n", exit_code=1), time.monotonic()
            cmd.stderr = _encode_output("The command line is too long.\r\n", shell.codepage)
        shell.commands[cmd_id] = cmd
        fake.commands.append(req)
        return _envelope(msg_id, f"{SHELL_URI}/CommandResponse",
                         f"<rsp:CommandResponse><rsp:CommandId>{cmd_id}</rsp:CommandId></rsp:CommandResponse>")

    def _stdin(self, cmd: _Command, bodyel: ET.Element | None, msg_id: str) -> bytes:
        for stream in bodyel.iterfind("rsp:Send/rsp:Stream", NS) if bodyel is not None else ():
            if stream.text:
                cmd.request.stdin += base64.b64decode(stream.text)
            if (stream.get("End") or "").lower() == "true":
                self._start_if_needed(cmd)
        return _envelope(msg_id, f"{SHELL_URI}/SendResponse", "<rsp:SendResponse/>")

    def _start_if_needed(self, cmd: _Command) -> float:
        """Run the handler once (when stdin ends, or at the first Receive); return when output is ready."""
        if cmd.outcome is None:
            cmd.started = time.monotonic()
            try:
                cmd.outcome = cmd.request.env_bootstrap_refusal() or self.server.fake.handler(cmd.request)
            except Exception as exc:  # noqa: BLE001  (a broken test handler shows up as the command's stderr)
                cmd.outcome = Reply(stderr=f"fake handler raised {type(exc).__name__}: {exc}", exit_code=99)
            if isinstance(cmd.outcome, Reply):
                cmd.stdout = _encode_output(cmd.outcome.stdout, cmd.request.codepage)
                cmd.stderr = _encode_output(cmd.outcome.stderr, cmd.request.codepage)
        delay = cmd.outcome.delay if isinstance(cmd.outcome, Reply) else 0.0
        return cmd.started + delay

    def _receive(self, cmd: _Command, cmd_id: str, msg_id: str) -> bytes:
        budget = self.server.fake.chunk_size
        parts = []
        for name, data, pos_attr in (("stdout", cmd.stdout, "out_pos"), ("stderr", cmd.stderr, "err_pos")):
            pos = getattr(cmd, pos_attr)
            if pos >= len(data) and pos > 0:
                continue
            piece = data[pos:pos + budget]
            budget -= len(piece)
            setattr(cmd, pos_attr, pos + len(piece))
            end = ' End="true"' if pos + len(piece) >= len(data) else ""
            if piece or end:
                parts.append(f'<rsp:Stream Name="{name}" CommandId="{cmd_id}"{end}>'
                             f'{base64.b64encode(piece).decode()}</rsp:Stream>')
            if not end:
                break
        assert isinstance(cmd.outcome, Reply)
        if cmd.out_pos >= len(cmd.stdout) and cmd.err_pos >= len(cmd.stderr):
            parts.append(f'<rsp:CommandState CommandId="{cmd_id}" State="{STATE_DONE}">'
                         f'<rsp:ExitCode>{cmd.outcome.exit_code}</rsp:ExitCode></rsp:CommandState>')
        else:
            parts.append(f'<rsp:CommandState CommandId="{cmd_id}" State="{STATE_RUNNING}"/>')
        return _envelope(msg_id, f"{SHELL_URI}/ReceiveResponse",
                         "<rsp:ReceiveResponse>" + "".join(parts) + "</rsp:ReceiveResponse>")

    # injected failures

    def _perform(self, action: Action, msg_id: str, req_action: str) -> tuple[int, bytes]:
        fake = self.server.fake
        if isinstance(action, Fault):
            return action.status, _fault_xml(msg_id, action)
        if isinstance(action, RawHTTP):
            if action.chunked:
                head = (f"HTTP/1.1 {action.status} OK\r\nContent-Type: {action.content_type}\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n")
                try:
                    self.wfile.write(head.encode("latin-1"))
                    for at in range(0, len(action.body), 64 * 1024):
                        piece = action.body[at:at + 64 * 1024]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass   # the client stopped reading
                self._close()
                raise _Abort()
            if action.declared_length is None:
                return action.status, action.body  # content type below is SOAP; fine for garbage tests
            self._send(action.status, action.body, action.content_type, declared_length=action.declared_length)
            self._close()
            raise _Abort()
        if isinstance(action, Drop):
            if action.reset:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._close()
            raise _Abort()
        if isinstance(action, Hang):
            if action.partial:
                full = _envelope(msg_id, req_action + "Response", "<rsp:ReceiveResponse/>")
                self.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n"
                                 f"Content-Length: {len(full)}\r\n\r\n".encode() + full[: len(full) // 2])
            fake.stopping.wait(action.seconds)
            self._close()
            raise _Abort()
        if isinstance(action, Trickle):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n"
                             b"Content-Length: 1000000\r\n\r\n")
            until = time.monotonic() + action.seconds
            while time.monotonic() < until and not fake.stopping.wait(action.interval):
                try:
                    self.wfile.write(b" ")
                except OSError:
                    break
            self._close()
            raise _Abort()
        raise TypeError(f"unknown action {action!r}")

    def _close(self) -> None:
        try:
            self.request.close()
        except OSError:
            pass


def _envelope(msg_id: str, action: str, body: str) -> bytes:
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:x="{NS["x"]}" '
        f'xmlns:w="{NS["w"]}" xmlns:rsp="{NS["rsp"]}" xmlns:p="{NS["p"]}"><s:Header>'
        f'<a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>'
        f'<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>'
        f'<a:RelatesTo>{escape(msg_id)}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


def _fault_xml(msg_id: str, fault: Fault) -> bytes:
    body = (
        f'<s:Fault><s:Code><s:Value>{escape(fault.code)}</s:Value><s:Subcode><s:Value>{escape(fault.subcode)}'
        f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text>'
        f'</s:Reason><s:Detail><f:WSManFault xmlns:f="{NS["f"]}" Code="{fault.wsman_code}" Machine="127.0.0.1">'
        f'<f:Message>{escape(fault.reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>'
    )
    return _envelope(msg_id, "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", body)
