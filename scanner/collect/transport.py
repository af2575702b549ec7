"""Run one PowerShell script on one Windows node over WinRM, with a hard deadline and no leaks.

The only module that imports :mod:`winrm`. It wraps pywinrm's low-level ``Protocol`` instead of
``Session.run_ps`` because the latter has no overall timeout, leaks shells on errors, is limited
to ~3 KB scripts by cmd.exe, mangles non-ASCII (codepage 437) and honours ``HTTP_PROXY``
(research/ecosystem.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner.errors import CollectionError

NODE_ERROR_KINDS = frozenset(
    {"auth", "connect", "timeout", "tls", "fault", "protocol", "output", "interrupted", "config"}
)


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


@dataclass(frozen=True)
class RunOutput:
    """What one PowerShell run returned, plus what it cost."""

    stdout: bytes
    stderr: bytes
    exit_code: int
    requests: int
    elapsed: float


class NodeError(CollectionError):
    """One node could not be collected; ``str(err)`` is the one line shown for that node."""

    def __init__(self, node: str, kind: str, reason: str, elapsed: float | None = None) -> None:
        self.node = node
        self.kind = kind
        self.reason = reason
        self.elapsed = elapsed
        line = f"{node}: {reason}"
        if elapsed is not None:
            line += f" after {elapsed:.1f} s"
        super().__init__(line)


def run_powershell(endpoint: Endpoint, script: str) -> RunOutput:
    """Run ``script`` on ``endpoint`` and return its output; raise :class:`NodeError` on failure."""
    raise NotImplementedError("transport under construction")
