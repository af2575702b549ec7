"""Run one PowerShell script on one Windows node over WinRM, with a hard deadline and no leaks.

The only module that imports :mod:`winrm`. It drives pywinrm's low-level ``Protocol`` instead of
``Session.run_ps``, which has no overall timeout, leaks shells on errors, stops at ~3 KB scripts
(cmd.exe's 8191-character limit), mangles non-ASCII (codepage 437) and honours ``HTTP_PROXY``
even for loopback (research/ecosystem.md §1). Here:

* the shell uses codepage 65001 and no profile; ``powershell.exe`` gets a tiny ``-EncodedCommand``
  bootstrap, and the real script travels in the Create request as shell environment variables
  (the collector: Create, Command, Receive, Delete) or, when it is too big or unsuitable for
  that, over stdin in Send requests, so its size does not matter (see :func:`script_delivery`);
* every HTTP request is clamped to the node's own deadline, and a watchdog shuts the sockets
  down if a server trickles bytes past it, so a run never outlives ``Endpoint.timeout`` by more
  than the short cleanup;
* Signal and Delete are always attempted (bounded) so no shell stays open on the node;
* every failure becomes one :class:`NodeError` line that never carries the password.
"""

from __future__ import annotations

import base64
import functools
import heapq
import http.client
import itertools
import logging
import os
import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from winrm import transport as winrm_transport
from winrm.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from scanner.collect.kerberos import KerberosError
from scanner.collect.wsman import FastProtocol
from scanner.errors import CollectionError

log = logging.getLogger(__name__)

NODE_ERROR_KINDS = frozenset(
    {"auth", "connect", "timeout", "tls", "fault", "protocol", "output", "interrupted", "config"}
)
TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic", "certificate")

#: cmd.exe refuses longer command lines (WinRS runs every command through it).
CMD_LINE_LIMIT = 8191
#: Raw stdin bytes per Send: base64 (+33 %) plus the envelope stays under the 150 KB
#: MaxEnvelopeSize of Server 2008 R2 (500 KB later).
STDIN_CHUNK = 96 * 1024
#: Script characters per shell environment variable. Windows allows 32,767 per variable
#: (SetEnvironmentVariable), but WinRS starts every command through cmd.exe, whose 8191-character
#: limit also covers "individual environment variables that are inherited by other processes"
#: (Microsoft, "Command prompt (Cmd.exe) command-line string limitation"); so stay under that.
ENV_CHUNK = 8000
#: Longest script that travels in the Create request (6 variables); its envelope stays far below
#: the 150 KB MaxEnvelopeSize of Server 2008 R2. Longer scripts go over stdin.
ENV_SCRIPT_MAX = 48_000
#: Names of the variables that carry the script: LMSCAN_S0, LMSCAN_S1, ...
ENV_PREFIX = "LMSCAN_S"
#: Longest a Receive may be held by the server (its OperationTimeout) before we poll again.
RECEIVE_WAIT_MAX = 20
#: Connection refused/reset on Create is retried this often, after 0.25 s, 0.5 s.
CREATE_RETRIES = 2
RETRY_BACKOFF = 0.25
#: Delete always gets at least this long, even after Signal used up the cleanup budget.
DELETE_BUDGET_MIN = 3.0
#: The watchdog cuts sockets this long after a phase's limit (requests' own timeouts are per read).
WATCHDOG_SLACK = 0.5
#: Most a node may print (stdout and stderr together) before it becomes an ``output`` error. The
#: largest real snapshots (a 2008 R2 cluster with hundreds of VM resources) are a few MB.
DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
#: One HTTP answer may hold the output base64-encoded (4/3) inside a SOAP envelope.
_ENVELOPE_SLACK = 1024 * 1024

# Sets UTF-8 both ways, then runs whatever arrives on stdin. Kept PowerShell 2.0-compatible.
# ConstrainedLanguage (App Control, on by default on Azure Local) refuses UTF8Encoding,
# [Console] and [ScriptBlock]::Create: there the encodings stay as the shell's code page (65001)
# set them, and the script runs through Invoke-Expression, which that mode allows.
BOOTSTRAP = (
    "$ProgressPreference='SilentlyContinue';"
    "if($ExecutionContext.SessionState.LanguageMode -eq 'FullLanguage'){"
    "try{$e=New-Object Text.UTF8Encoding $false;[Console]::InputEncoding=$e;[Console]::OutputEncoding=$e}catch{};"
    "& ([ScriptBlock]::Create(($input|Out-String)))"
    "}else{Invoke-Expression ($input|Out-String)}"
)
POWERSHELL = "powershell.exe"
#: The exit code of the environment bootstrap when the script did not arrive whole.
ENV_INCOMPLETE_EXIT = 97


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one node. The password never appears in ``repr``."""

    node: str
    url: str
    transport: str = "ntlm"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_bundle: str | None = None
    cert_pem: str | None = None
    cert_key_pem: str | None = None
    timeout: float = 120.0
    allow_unencrypted: bool = False
    #: Kerberos: the client principal (selects the ticket, or the keytab's key) and its keytab.
    principal: str | None = None
    keytab: str | None = None
    #: Kerberos: the service principal's class, or the whole SPN when WinRM answers under another name.
    service: str = "HTTP"
    spn: str | None = None
    max_output: int = DEFAULT_MAX_OUTPUT


@dataclass(frozen=True)
class RunOutput:
    """What one PowerShell run returned, plus what it cost."""

    stdout: bytes
    stderr: bytes
    exit_code: int
    requests: int
    elapsed: float


class NodeError(CollectionError):
    """One node could not be collected; ``str(err)`` is the one line shown for that node.

    ``kind`` is one of :data:`NODE_ERROR_KINDS`; ``requests`` is how many HTTP requests the
    failed run made (0 when unknown).
    """

    def __init__(self, node: str, kind: str, reason: str, elapsed: float | None = None) -> None:
        self.node = node
        self.kind = kind
        self.reason = reason
        self.elapsed = elapsed
        self.requests = 0
        line = f"{node}: {reason}"
        if elapsed is not None:
            line += f" after {elapsed:.1f} s"
        super().__init__(line)


def build_command_line(bootstrap: str = BOOTSTRAP) -> tuple[str, list[str]]:
    """The ``powershell.exe`` command and arguments; refuses what cmd.exe would cut off."""
    encoded = base64.b64encode(bootstrap.encode("utf-16-le")).decode("ascii")
    args = ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded]
    length = len(POWERSHELL) + 1 + len(" ".join(args))
    if length > CMD_LINE_LIMIT:
        raise ValueError(f"command line of {length} characters exceeds cmd.exe's {CMD_LINE_LIMIT}")
    return POWERSHELL, args


_COMMAND, _ARGS = build_command_line()

# XML 1.0 cannot carry these characters at all (not even escaped).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_SPACE = " \t\r\n"


def split_for_env(script: str, size: int = ENV_CHUNK) -> list[str]:
    """``script`` cut into pieces of at most ``size`` characters, in order.

    A cut never lands beside whitespace, so a server that trimmed a value could not silently
    change the joined script (the bootstrap's length check would still catch it).
    """
    pieces: list[str] = []
    start = 0
    while len(script) - start > size:
        cut = start + size
        while cut > start + 1 and (script[cut - 1] in _XML_SPACE or script[cut] in _XML_SPACE):
            cut -= 1
        if cut == start + 1:  # nothing but whitespace around: cut anywhere
            cut = start + size
        pieces.append(script[start:cut])
        start = cut
    pieces.append(script[start:])
    return pieces


def env_bootstrap(names: list[str], length: int) -> str:
    """The ``-EncodedCommand`` that joins the script from the shell variables ``names`` and runs it.

    PowerShell 2.0-compatible and ConstrainedLanguage-safe outside its FullLanguage branch (only
    ``$env:``, ``+``, ``-ne``, string ``Length``, cmdlets), like :data:`BOOTSTRAP`. It refuses to
    run a script whose length (UTF-16 code units) is not ``length``: a value cut or changed on
    the way fails the node with exit code :data:`ENV_INCOMPLETE_EXIT` instead of running half a
    script. The variables are removed before the script runs, so nothing it starts inherits them.
    """
    joined = "+".join(f"$env:{n}" for n in names)
    return (
        "$ProgressPreference='SilentlyContinue';"
        f"$s={joined};"
        f"if($s.Length -ne {length}){{\"lmscan: the script arrived incomplete in the shell environment "
        f"($($s.Length) of {length} characters)\";exit {ENV_INCOMPLETE_EXIT}}};"
        "Remove-Item " + ",".join(f"'Env:{n}'" for n in names) + ";"
        "if($ExecutionContext.SessionState.LanguageMode -eq 'FullLanguage'){"
        "try{$e=New-Object Text.UTF8Encoding $false;[Console]::OutputEncoding=$e}catch{};"
        "& ([ScriptBlock]::Create($s))"
        "}else{Invoke-Expression $s}"
    )


@dataclass(frozen=True)
class Delivery:
    """How one script reaches the node: shell variables (``env``) or stdin (``stdin``, when env is empty)."""

    env: tuple[tuple[str, str], ...]
    command: str
    args: tuple[str, ...]
    stdin: bytes


@functools.lru_cache(maxsize=8)
def script_delivery(script: str) -> Delivery:
    """The cheapest way to send ``script``: in the Create request when it fits, else over stdin.

    In the Create request (MS-WSMV 2.2.4.37 Shell, ``rsp:Environment/rsp:Variable``; what
    ``winrs -env:NAME=value`` sends) the run needs no Send: Create, Command, Receive, Delete.
    Over stdin when the script is empty, longer than :data:`ENV_SCRIPT_MAX`, holds a character
    XML cannot carry or one outside the BMP (two UTF-16 units: the limits count units), or holds
    ``%`` (a cmd shell may expand ``%NAME%`` in variable values). Cached: a fleet sends one script
    to every node.
    """
    text = script.strip(_XML_SPACE)
    units = len(text.encode("utf-16-le")) // 2  # what PowerShell's String.Length counts
    if 0 < units == len(text) <= ENV_SCRIPT_MAX and "%" not in text and not _NOT_XML.search(text):
        pieces = split_for_env(text)
        names = [f"{ENV_PREFIX}{i}" for i in range(len(pieces))]
        command, args = build_command_line(env_bootstrap(names, units))
        return Delivery(tuple(zip(names, pieces, strict=True)), command, tuple(args), b"")
    return Delivery((), _COMMAND, tuple(_ARGS), script.encode("utf-8"))


#: Longest text :func:`redact` looks at; error lines show a few hundred characters of it.
REDACT_SCAN_MAX = 1 << 20
#: Base64 of a secret inside a longer base64 text is only recognised by this many stable characters.
_B64_MIN = 6
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _char_forms(ch: str) -> str:
    """A regex for one character of a secret in any encoding an echo of it may carry."""
    code = ord(ch)
    literal = ["".join(f"%{b:02x}" for b in ch.encode("utf-8")), f"_x{code:04x}_"]
    if code < 0x10000:
        literal.append(f"\\u{code:04x}")
    forms = [f"(?i:{re.escape(f)})" for f in literal] + [f"&#0*{code};", f"(?i:&#x0*{code:x};)"]
    if ch in _ENTITIES:
        forms.insert(0, re.escape(_ENTITIES[ch]))
    if ch in '"\\/':
        forms.insert(0, re.escape("\\" + ch))
    if ch == " ":
        forms.append(r"\+")
    return "(?:" + "|".join([*forms, re.escape(ch)]) + ")"


def _base64_forms(data: bytes) -> list[str]:
    """Base64 (standard and URL-safe) of ``data`` on its own and at any offset inside a longer text."""
    out = [base64.b64encode(data).decode("ascii")]
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data).decode("ascii")
        core = enc[4 if k else 0:((len(data) + k) // 3) * 4]
        if len(core) >= _B64_MIN:
            out.append(core)
    return out + [f.translate(str.maketrans("+/", "-_")) for f in out]


@functools.lru_cache(maxsize=64)
def _secret_pattern(username: str, password: str) -> re.Pattern[str]:
    """Every form of the password a node, a proxy or a library may echo back.

    Plain, percent-encoded (``quote``, ``quote_plus``, every byte), as XML/HTML character
    references or entities, JSON ``\\u`` escapes, CLIXML ``_xHHHH_`` escapes, as UTF-16 read
    one byte at a time, and base64 (standard and URL-safe) of the password in UTF-8 and UTF-16LE
    (PowerShell's ``-EncodedCommand``) and of ``user:password`` (a Basic header), also inside a
    longer base64 text.
    """
    chars = (_char_forms(ch) for ch in password)
    plain = "\x00?".join(chars)
    b64 = {f for data in (password.encode("utf-8"), password.encode("utf-16-le"),
                          f"{username}:{password}".encode()) for f in _base64_forms(data)}
    alternatives = sorted(b64, key=len, reverse=True)
    return re.compile("|".join([*map(re.escape, alternatives), plain]))


def redact(text: str, endpoint: Endpoint) -> str:
    """``text`` without the endpoint's password, in any encoding, or URL userinfo.

    Call it on the whole text *before* cutting it short: a cut can split a secret so that no
    form of it matches any more. Only the first :data:`REDACT_SCAN_MAX` characters are kept.
    """
    text = text[:REDACT_SCAN_MAX]
    if endpoint.password:
        text = _secret_pattern(endpoint.username or "", endpoint.password).sub("***", text)
    return re.sub(r"(\w+://)[^/@\s]*@", r"\1", text)


def scrubber(endpoint: Endpoint) -> Callable[[str], str]:
    """:func:`redact` for one endpoint, for code that builds error text from a node's output."""
    return functools.partial(redact, endpoint=endpoint)


# --- cancellation ---------------------------------------------------------------------------

_local = threading.local()


class Cancellation:
    """Lets another thread stop the runs bound to it: they stop at once, clean up briefly and
    raise :class:`NodeError` of kind ``interrupted``. Used by the worker pool on Ctrl-C."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: set[_Run] = set()
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            runs = list(self._runs)
        for run in runs:
            run.abort("interrupted")

    @contextmanager
    def applies(self) -> Iterator[None]:
        """Bind this cancellation to runs started in the current thread."""
        previous = getattr(_local, "cancel", None)
        _local.cancel = self
        try:
            yield
        finally:
            _local.cancel = previous

    def _attach(self, run: _Run) -> bool:
        with self._lock:
            if self._cancelled:
                return False
            self._runs.add(run)
            return True

    def _detach(self, run: _Run) -> None:
        with self._lock:
            self._runs.discard(run)


# --- per-run state and the instrumented HTTP layer ------------------------------------------


class _Stop(Exception):
    """Raised before a request when the run has been aborted or its time is up."""


class _Watchdog:
    """One daemon thread that fires each armed run's ``_expire`` when its phase's limit has passed.

    A ``threading.Timer`` per phase started a thread three times per node, and ``Thread.start``
    waits until the new thread runs: CPU and latency that grow with the pool on a busy scan host.
    Disarming forgets the run's ticket (stale entries are dropped when they come up); when no run
    is armed the thread ends, so a process that collected has no thread left over (the offline
    scan forks its second process only from a single-threaded process).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Run]] = []
        self._tickets = itertools.count()
        self._armed = 0  # runs whose ticket is in the heap
        self._thread: threading.Thread | None = None

    def arm(self, run: _Run, when: float) -> None:
        with self._cond:
            if run._ticket is None:
                self._armed += 1
            run._ticket = ticket = next(self._tickets)
            heapq.heappush(self._heap, (when, ticket, run))
            if self._thread is None or not self._thread.is_alive():  # idle before, or after a fork
                self._thread = threading.Thread(target=self._loop, name="lmscan-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][1] == ticket:
                self._cond.notify()

    def disarm(self, run: _Run) -> None:
        with self._cond:
            if run._ticket is not None:
                run._ticket = None
                self._armed -= 1
                if not self._armed:
                    self._cond.notify()  # let the thread drop the stale entries and end

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    heap = self._heap
                    while heap and heap[0][2]._ticket != heap[0][1]:
                        heapq.heappop(heap)
                    if not heap:
                        self._thread = None
                        return
                    now = time.monotonic()
                    if heap[0][0] <= now:
                        _, _, run = heapq.heappop(heap)
                        run._ticket = None
                        self._armed -= 1
                        break
                    self._cond.wait(heap[0][0] - now)
            try:
                run._expire()
            except Exception:  # noqa: BLE001  (the watchdog must outlive any one run)
                log.exception("%s: watchdog callback failed", run.endpoint.node)


class _Run:
    """One run's clock, request count, sockets and abort state (shared with the watchdog)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.start = time.monotonic()
        self.limit = self.start + endpoint.timeout
        self.step = "Create"
        self.requests = 0
        self.cleaning = False
        self.poll_clamped = False
        self.aborted: str | None = None  # "interrupted" | "deadline"
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._ticket: int | None = None  # the watchdog entry that counts; None: disarmed

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.limit - time.monotonic()

    def admit(self, timeout: Any) -> float:
        """Count one HTTP request and return its timeout, clamped to what is left."""
        if self.aborted and not self.cleaning:
            raise _Stop(self.aborted)
        left = self.remaining()
        if left <= 0:
            raise _Stop("deadline")
        self.requests += 1
        wanted = timeout if isinstance(timeout, (int, float)) and timeout > 0 else left
        return max(0.01, min(float(wanted), left))

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks = [s for s in self._socks if s.fileno() != -1]
            self._socks.append(sock)

    def cut_sockets(self) -> None:
        """Unblock any read in progress (it fails at once); a later request reconnects."""
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def abort(self, why: str) -> None:
        if self.aborted is None:
            self.aborted = why
        self._wake.set()
        self.cut_sockets()

    def _expire(self) -> None:
        if not self.cleaning:
            self.abort("deadline")
        else:
            self.cut_sockets()

    def arm(self) -> None:
        """Start (or restart) the watchdog for the current phase's limit."""
        _WATCHDOG.arm(self, max(time.monotonic(), self.limit) + WATCHDOG_SLACK)

    def disarm(self) -> None:
        _WATCHDOG.disarm(self)

    def sleep(self, seconds: float) -> None:
        """Back off, but wake up at once if the run is aborted."""
        if self._wake.wait(seconds):
            raise _Stop(self.aborted or "interrupted")


_WATCHDOG = _Watchdog()


class _TracksSocket:
    """Registers each new socket (TLS-wrapped for https) with the run of the current thread."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        run = getattr(_local, "run", None)
        if run is not None and self.sock is not None:
            run.track(self.sock)


class _TrackedHTTPConnection(_TracksSocket, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_TracksSocket, HTTPSConnection):
    pass


class _TrackedPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _Adapter(HTTPAdapter):
    """Counts requests (NTLM handshake legs included), clamps timeouts, registers sockets."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedPool, "https": _TrackedHTTPSPool}

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        timeout = self._run.admit(timeout)
        response = super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        # requests reads the body later (auth hooks first): bound that read, wherever it happens.
        limit = self._run.endpoint.max_output * 4 // 3 + _ENVELOPE_SLACK
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise _too_much(self._run)
        response.__class__ = _BoundedResponse
        assert isinstance(response, _BoundedResponse)
        response.run, response.limit = self._run, limit
        return response


class _BoundedResponse(requests.Response):
    """A response whose body may not grow past ``limit`` while it is read: memory stays bounded
    by the node's output limit however large an answer a node (or a proxy) sends."""

    run: _Run
    limit: int

    def iter_content(self, chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
        size = 0
        for chunk in super().iter_content(chunk_size, decode_unicode):
            size += len(chunk)
            if size > self.limit:
                self.close()
                raise _too_much(self.run)
            yield chunk


def _too_much(run: _Run) -> NodeError:
    limit = run.endpoint.max_output
    shown = f"{limit / 1048576:g} MB" if limit >= 1048576 else f"{limit} bytes"
    return NodeError(run.endpoint.node, "output", f"the node's output exceeds the limit of {shown} "
                     "(max_output_mb in the inventory)", run.elapsed())


class _Transport(winrm_transport.Transport):
    """pywinrm's transport with our adapter mounted before the first request goes out."""

    run: _Run

    def build_session(self) -> requests.Session:
        if self.session is None:
            if self.auth_method == "kerberos":
                self._kerberos_session()
            else:
                super().build_session()
            assert self.session is not None
            self._instrument(self.session)
        return self.session

    def _kerberos_session(self) -> None:
        """Kerberos through python-gssapi (scanner.collect.kerberos) instead of pywinrm's pykerberos;
        pywinrm's MS-WSMV encryption is kept: it calls the auth's wrap_winrm/unwrap_winrm."""
        from scanner.collect import kerberos

        ep = self.run.endpoint
        session = requests.Session()
        self._instrument(session)
        if self.server_cert_validation == "validate":
            session.verify = self.ca_trust_path or True
        else:
            session.verify = False
        spn = kerberos.service_principal(urlsplit(self.endpoint).hostname or "", ep.service, ep.spn)
        session.auth = kerberos.WinRMKerberosAuth(kerberos.credentials(ep.principal, ep.keytab), spn)
        session.headers.update(self.default_headers)
        self.session = session
        if not self.endpoint.lower().startswith("https"):
            self.setup_encryption(session)

    def setup_encryption(self, session: requests.Session) -> None:
        # pywinrm sends its first (empty) request from here, before build_session returns.
        self._instrument(session)
        super().setup_encryption(session)

    def _instrument(self, session: requests.Session) -> None:
        # Nothing from the environment (proxies, netrc, REQUESTS_CA_BUNDLE) may steer a run;
        # it also saves the proxy-bypass lookups requests would repeat on every request.
        session.trust_env = False
        if not isinstance(session.get_adapter("http://x"), _Adapter):
            adapter = _Adapter(self.run)
            session.mount("http://", adapter)
            session.mount("https://", adapter)


# --- configuration checks -------------------------------------------------------------------


def _config_problem(ep: Endpoint) -> str | None:
    """Why this endpoint cannot be used as configured, or None."""
    if ep.transport not in TRANSPORTS:
        return f"unknown transport {ep.transport!r}; use one of {', '.join(TRANSPORTS)}"
    parts = urlsplit(ep.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"endpoint {redact(ep.url, ep)!r} is not an http(s):// WS-Management URL"
    if "@" in parts.netloc:
        return "credentials do not belong in the endpoint URL; use username and a password source"
    if not ep.timeout or ep.timeout <= 0:
        return f"timeout must be a positive number of seconds, not {ep.timeout!r}"
    https = parts.scheme == "https"
    if ep.transport == "basic" and not https and not ep.allow_unencrypted:
        return ("refusing Basic authentication over plain HTTP (the password would cross the network "
                "unencrypted); use https or set allow_unencrypted: true for this node")
    if ep.transport == "certificate":
        if not https:
            return "certificate authentication needs an https:// endpoint"
        for label, path in (("cert_pem", ep.cert_pem), ("cert_key_pem", ep.cert_key_pem)):
            if not path:
                return f"certificate authentication needs {label}"
            if not os.path.isfile(path):
                return f"{label} file not found: {path}"
    elif ep.transport != "kerberos":
        if not ep.username:
            return f"{ep.transport} authentication needs a username"
        if ep.password is None:
            return f"{ep.transport} authentication needs a password"
    if ep.transport == "kerberos":
        from scanner.collect import kerberos

        if not kerberos.available():
            return f"kerberos needs python-gssapi: {kerberos.INSTALL_HINT}"
        if ep.keytab and not ep.principal:
            return "a keytab needs principal: (the account the keytab was made for)"
        if ep.keytab and not os.path.isfile(ep.keytab):
            return f"keytab not found: {ep.keytab}"
    if ep.transport == "credssp" and not winrm_transport.HAVE_CREDSSP:
        return "credssp needs pywinrm's credssp extra (pip install 'pywinrm[credssp]')"
    if ep.ca_bundle and not os.path.exists(ep.ca_bundle):
        return f"CA bundle not found: {ep.ca_bundle}"
    return None


def _system_ca() -> str | None:
    """The system trust store (requests would otherwise use certifi's bundle only)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.capath):
        if candidate and os.path.exists(candidate):
            return str(candidate)
    return None


def _protocol(ep: Endpoint, run: _Run) -> Protocol:
    proto = FastProtocol(
        ep.url,
        transport=ep.transport,  # type: ignore[arg-type]
        username=ep.username,
        password=ep.password,
        ca_trust_path=ep.ca_bundle or _system_ca(),  # type: ignore[arg-type]
        cert_pem=ep.cert_pem,
        cert_key_pem=ep.cert_key_pem,
        server_cert_validation="validate" if ep.verify_tls else "ignore",
        read_timeout_sec=max(2, int(ep.timeout) + 1),
        operation_timeout_sec=1,
        message_encryption="auto",
        proxy=None,
    )
    # Mount our adapter on the session pywinrm builds; see _Transport.
    proto.transport.__class__ = _Transport
    proto.transport.run = run  # type: ignore[attr-defined]
    return proto


# --- the run --------------------------------------------------------------------------------


def run_powershell(endpoint: Endpoint, script: str) -> RunOutput:
    """Run ``script`` on ``endpoint`` and return its output; raise :class:`NodeError` on failure.

    stdout and stderr come back as bytes, exactly as the node sent them; a non-zero exit code
    is not an error here (the caller judges the output).
    """
    problem = _config_problem(endpoint)
    if problem:
        raise NodeError(endpoint.node, "config", problem)
    run = _Run(endpoint)
    cancel: Cancellation | None = getattr(_local, "cancel", None)
    if cancel is not None and not cancel._attach(run):
        raise NodeError(endpoint.node, "interrupted", "interrupted", 0.0)
    _local.run = run
    proto: Protocol | None = None
    shell_id: str | None = None
    command_id: str | None = None
    failure: NodeError | None = None
    result: tuple[bytes, bytes, int] | None = None
    try:
        run.arm()
        try:
            try:
                proto = _protocol(endpoint, run)
            except Exception as exc:  # noqa: BLE001  (pywinrm validates its arguments here)
                raise NodeError(endpoint.node, "config", _one_line(redact(f"{type(exc).__name__}: {exc}",
                                                                          endpoint))) from None
            delivery = script_delivery(script)
            shell_id = _open_shell(proto, run, delivery.env)
            run.step = "Command"
            # With the script in the environment nothing is sent to stdin: the console-mode stdin
            # that pywinrm's run_cmd and Ansible use when they send no input.
            command_id = proto.run_command(shell_id, delivery.command, delivery.args,
                                           console_mode_stdin=bool(delivery.env))
            if not delivery.env:
                run.step = "Send"
                payload = delivery.stdin
                for offset in range(0, max(len(payload), 1), STDIN_CHUNK):
                    last = offset + STDIN_CHUNK >= len(payload)
                    proto.send_command_input(shell_id, command_id, payload[offset:offset + STDIN_CHUNK], end=last)
            run.step = "Receive"
            result = _receive_all(proto, run, shell_id, command_id)
        except NodeError as exc:
            failure = exc
        except Exception as exc:  # noqa: BLE001  (every library failure becomes one line, see _classify)
            failure = _classify(exc, run)
        except BaseException:  # Ctrl-C in a caller's main thread: clean up quickly, then let it go
            run.aborted = run.aborted or "interrupted"
            raise
    finally:
        run.disarm()
        if proto is not None:
            # A command that reported Done needs no Signal: Delete frees the shell and everything
            # in it (MS-WSMV 3.1.4.4.1), one request less per node.
            _cleanup(proto, run, shell_id, command_id if result is None else None)
        _local.run = None
        if cancel is not None:
            cancel._detach(run)
    if failure is not None:
        failure.requests = run.requests
        raise failure
    assert result is not None
    stdout, stderr, code = result
    return RunOutput(stdout=stdout, stderr=stderr, exit_code=code, requests=run.requests, elapsed=run.elapsed())


def check_auth(endpoint: Endpoint) -> float:
    """Authenticate and open a shell, then delete it; no command runs. Returns the seconds taken;
    raises :class:`NodeError` like :func:`run_powershell`. Opening a shell proves the credentials
    and the account's right to use WinRM (Remote Management Users), which a bare Identify would not."""
    problem = _config_problem(endpoint)
    if problem:
        raise NodeError(endpoint.node, "config", problem)
    run = _Run(endpoint)
    _local.run = run
    proto: Protocol | None = None
    shell_id: str | None = None
    try:
        run.arm()
        try:
            proto = _protocol(endpoint, run)
            shell_id = _open_shell(proto, run)
        except NodeError:
            raise
        except Exception as exc:  # noqa: BLE001  (one line per failure, as for a run)
            raise _classify(exc, run) from None
    finally:
        run.disarm()
        if proto is not None:
            _cleanup(proto, run, shell_id, None)
        _local.run = None
    return run.elapsed()


def _open_shell(proto: Protocol, run: _Run, env: tuple[tuple[str, str], ...] = ()) -> str:
    """Create the shell (with ``env`` as its variables); retry only refused/reset connections
    (nothing ran yet), with backoff."""
    env_vars = dict(env) or None
    for attempt in range(CREATE_RETRIES + 1):
        try:
            return proto.open_shell(codepage=65001, noprofile=True, env_vars=env_vars)
        except requests.exceptions.ConnectionError as exc:
            delay = RETRY_BACKOFF * (2 ** attempt)
            if attempt == CREATE_RETRIES or not _refused_or_reset(exc) or run.remaining() < delay + 0.1:
                raise
            log.debug("%s: %s on Create, retrying in %.2f s", run.endpoint.node, type(exc).__name__, delay)
            proto.transport.close_session()  # rebuilds auth/encryption state from scratch
            run.sleep(delay)
    raise AssertionError("unreachable")


def _receive_all(proto: Protocol, run: _Run, shell_id: str, command_id: str) -> tuple[bytes, bytes, int]:
    """Poll Receive until Done, never past the deadline; OperationTimeout just means poll again."""
    out: list[bytes] = []
    err: list[bytes] = []
    received = 0
    while True:
        left = run.remaining()
        if left <= 0.05:
            raise NodeError(run.endpoint.node, "timeout",
                            f"command did not finish within {_secs(run.endpoint.timeout)} s")
        wait = max(1, min(RECEIVE_WAIT_MAX, int(left - 0.5)))
        # If the server may legitimately hold this Receive past our deadline, a read timeout
        # means "still running", not "stopped answering".
        run.poll_clamped = wait + 0.25 > left
        proto.operation_timeout_sec = wait
        try:
            stdout, stderr, code, done = proto.get_command_output_raw(shell_id, command_id)
        except WinRMOperationTimeoutError:
            continue
        out.append(stdout)
        err.append(stderr)
        received += len(stdout) + len(stderr)
        if received > run.endpoint.max_output:
            raise _too_much(run)
        if done:
            return b"".join(out), b"".join(err), code


def _cleanup(proto: Protocol, run: _Run, shell_id: str | None, command_id: str | None) -> None:
    """Signal (a command still running) and Delete, best effort, in bounded time; errors are only logged."""
    try:
        if shell_id is not None:
            run.cleaning = True
            budget = 1.0 if run.aborted == "interrupted" else min(5.0, max(1.0, run.endpoint.timeout / 4))
            run.limit = time.monotonic() + budget
            run.arm()
            proto.operation_timeout_sec = 1
            if command_id is not None:
                run.step = "Signal"
                try:
                    proto.cleanup_command(shell_id, command_id)
                except Exception as exc:  # noqa: BLE001  (cleanup is best effort)
                    log.debug("%s: Signal failed: %s", run.endpoint.node, type(exc).__name__)
            # Delete gets a budget of its own, whatever Signal used: on a scan host whose CPU is
            # saturated, a thread can wait longer for its turn than Signal's whole budget, and a
            # Delete never sent is a shell left open on the node.
            run.limit = time.monotonic() + max(budget, DELETE_BUDGET_MIN)
            run.arm()
            run.step = "Delete"
            for attempt in (1, 2):  # Delete is idempotent; one retry covers a transient failure
                try:
                    proto.close_shell(shell_id, close_session=False)
                    break
                except Exception as exc:  # noqa: BLE001  (cleanup is best effort)
                    log.debug("%s: Delete attempt %d failed: %s", run.endpoint.node, attempt, type(exc).__name__)
                    if run.remaining() <= 0.05:
                        break
    finally:
        run.disarm()
        try:
            proto.transport.close_session()
        except Exception as exc:  # noqa: BLE001  (closing a pool cannot change the outcome)
            log.debug("%s: closing the HTTP session failed: %s", run.endpoint.node, type(exc).__name__)


# --- turning exceptions into one line -------------------------------------------------------


def _secs(value: float) -> str:
    return f"{value:g}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests/urllib3 nest several levels deep)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen or len(seen) > 20:
            continue
        seen.add(id(cur))
        yield cur
        nested = [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))


def _refused_or_reset(exc: BaseException) -> bool:
    return any(isinstance(c, (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected))
               for c in _causes(exc))


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tls_detail(exc: BaseException, ep: Endpoint) -> str:
    text = redact(" ".join(str(c) for c in _causes(exc)), ep)
    match = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"\[SSL: ([A-Z_]+)\]", text) or re.search(r"(\w*SSL\w*Error[^'\"]*)", text)
    return match.group(1).strip() if match else type(exc).__name__


def _fault_text(exc: WSManFaultError, ep: Endpoint) -> str:
    reason = _one_line(redact(exc.reason or "no reason given", ep))
    code = exc.fault_subcode or exc.fault_code
    return f"{reason} ({code})" if code else reason


def _classify(exc: BaseException, run: _Run) -> NodeError:
    """Map whatever pywinrm, requests, urllib3 or pyspnego raised to a one-line NodeError."""
    ep = run.endpoint
    elapsed = run.elapsed()
    step = run.step
    url = redact(ep.url, ep)
    timeout = _secs(ep.timeout)
    kind, reason, with_elapsed = _describe(exc, run, step, url, timeout)
    limit = 400 if kind == "auth" else 240  # a Kerberos line carries its fix
    return NodeError(ep.node, kind, _one_line(redact(reason, ep), limit), elapsed if with_elapsed else None)


def _describe(exc: BaseException, run: _Run, step: str, url: str, timeout: str) -> tuple[str, str, bool]:
    ep = run.endpoint
    causes = list(_causes(exc))

    def say(value: object, limit: int = 160) -> str:  # redact first, then cut
        return _one_line(redact(str(value), ep), limit)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(c, types) for c in causes)

    no_answer = f"no answer within {timeout} s" + ("" if step == "Create" else f" (the node stopped answering during {step})")
    if run.aborted == "interrupted" or (isinstance(exc, _Stop) and exc.args == ("interrupted",)):
        return "interrupted", "interrupted", True
    if run.aborted == "deadline" or isinstance(exc, _Stop):
        return "timeout", no_answer, False
    if has(urllib3.exceptions.NameResolutionError):
        return "connect", f"host name not found ({urlsplit(ep.url).hostname})", True
    if has(ConnectionRefusedError):
        return "connect", f"connection refused ({url})", True
    # (urllib3 2 makes NewConnectionError a ConnectTimeoutError, hence refused/DNS first)
    if has(requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, requests.exceptions.ConnectTimeout,
           urllib3.exceptions.ConnectTimeoutError, TimeoutError, socket.timeout):
        if step == "Receive" and run.poll_clamped:
            return "timeout", f"command did not finish within {timeout} s", False
        return "timeout", no_answer, False
    kerberos_error = next((c for c in causes if isinstance(c, KerberosError)), None)
    if kerberos_error is not None:
        return "auth", f"Kerberos: {kerberos_error}", False
    if isinstance(exc, AuthenticationError):
        return "auth", f"authentication failed ({ep.transport})", True
    if any(type(c).__module__.startswith(("spnego", "requests_ntlm", "requests_credssp", "winrm.vendor"))
           for c in causes) or isinstance(exc, PermissionError):
        return "auth", f"authentication failed ({ep.transport}): {say(str(exc), 120)}", True
    if has(requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError):
        text = " ".join(str(c) for c in causes)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text.lower():
            return "tls", f"TLS certificate did not verify: {_tls_detail(exc, ep)} ({url})", False
        return "tls", f"TLS handshake failed: {_tls_detail(exc, ep)} ({url})", True
    if has(requests.exceptions.ProxyError, urllib3.exceptions.ProxyError):
        return "connect", f"proxy error reaching {url}", True
    if has(ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
        return "connect", f"connection closed by the node during {step} ({url})", True
    if has(urllib3.exceptions.NewConnectionError, OSError) and isinstance(exc, requests.exceptions.ConnectionError):
        return "connect", f"cannot connect to {url}: {say(str(causes[-1]), 100)}", True
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)) or has(
            urllib3.exceptions.ProtocolError, http.client.IncompleteRead):
        return "protocol", f"answer to {step} was cut off", True
    if isinstance(exc, WSManFaultError):
        return "fault", f"WS-Man fault on {step}: {_fault_text(exc, ep)}", True
    if isinstance(exc, WinRMOperationTimeoutError):
        return "timeout", f"WS-Man operation timeout on {step}", True
    if isinstance(exc, WinRMTransportError):
        body = say(exc.response_text or "", 80)
        return "protocol", f"HTTP {exc.code} on {step}" + (f": {body}" if body else ""), True
    if isinstance(exc, WinRMError):
        return "protocol", f"{step}: {say(str(exc), 120)}", True
    if isinstance(exc, (StopIteration, AssertionError, ET.ParseError, KeyError, ValueError, IndexError,
                        TypeError, AttributeError, UnicodeError)):
        detail = say(str(exc), 80)
        what = type(exc).__name__ + (f": {detail}" if detail else "")
        return "protocol", f"unexpected answer to {step} ({what})", True
    if isinstance(exc, requests.exceptions.RequestException):
        return "connect", f"HTTP failure on {step}: {say(str(exc), 100)}", True
    if isinstance(exc, OSError):
        return "connect", f"{step}: {type(exc).__name__}: {say(str(exc), 100)}", True
    return "protocol", f"unexpected {type(exc).__name__} on {step}: {say(str(exc), 100)}", True
