"""Delivery by e-mail: settings, the message (pure) and sending it over SMTP (the only I/O).

A change board gets a digest in the body (verdict, changes, failures most severe first,
unreachable nodes, waivers about to expire) and the full reports as attachments. Building the
message is a pure function of the report, the settings and the attachments, so a test can
compare it byte for byte; :func:`send` is the only code that talks SMTP. TLS is verified
against the system store or a CA bundle, always; a password is only ever named by reference.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from scanner import secrets
from scanner.errors import InputError, ScannerError
from scanner.model import ScanReport, Status
from scanner.render import findings as fnd

WHEN = ("always", "fail", "changed")
SECURITY = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
#: Attachment kinds (contracts §7 ``attach``) and the file name each gets in the message.
ATTACH_NAMES = {"html": "report.html", "junit": "junit.xml", "json": "results.json",
                "sarif": "results.sarif", "remediation": "fix.ps1"}
ATTACH_TYPES = {"html": ("text", "html"), "junit": ("application", "xml"), "json": ("application", "json"),
                "sarif": ("application", "sarif+json"), "remediation": ("text", "plain")}
DEFAULT_ATTACH = ("html", "json")
#: An attachment larger than this is replaced by its path and SHA-256 (mail servers cap at 10-25 MB).
DEFAULT_MAX_ATTACHMENT_MB = 10.0
#: Keys of the config file's ``mail:`` block (contracts §7); ``reply_to`` and
#: ``max_attachment_mb`` are extensions.
MAPPING_KEYS = frozenset({"to", "cc", "from", "reply_to", "smtp_host", "smtp_port", "security", "ca_bundle",
                          "username", "password_env", "password_file", "password_keyring", "when", "attach",
                          "max_attachment_mb"})


# CRLF line ends; headers folded only past 120 characters, so the Message-ID and the hash header
# stay on one line (RFC 5322 allows up to 998).
_POLICY = SMTP_POLICY.clone(max_line_length=120)


class MailError(ScannerError):
    """The message could not be delivered; ``str()`` is the one line the user sees."""


@dataclass(frozen=True)
class PasswordRef:
    """Where the SMTP password is: ``env`` (a variable), ``file`` (owner-only) or ``keyring``."""

    kind: str
    name: str
    user: str | None = None

    def resolve(self, environ: Mapping[str, str]) -> str:
        if self.kind == "env":
            return secrets.from_env(self.name, environ)
        if self.kind == "file":
            return secrets.from_file(Path(self.name))
        return secrets.from_keyring(self.name, self.user or "")


@dataclass(frozen=True)
class MailSettings:
    """Everything needed to send; validated, with the password still a reference."""

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    sender: str = ""
    reply_to: str | None = None
    host: str = ""
    port: int | None = None
    security: str = "starttls"
    ca_bundle: Path | None = None
    username: str | None = None
    password: PasswordRef | None = None
    when: str = "always"
    attach: tuple[str, ...] = DEFAULT_ATTACH
    max_attachment_mb: float = DEFAULT_MAX_ATTACHMENT_MB
    timeout: float = 60.0
    source: str = "mail settings"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, base_dir: Path | None = None,
                     source: str = "config: mail") -> MailSettings:
        """The config file's ``mail:`` block; paths are relative to ``base_dir`` (the config's folder)."""
        unknown = sorted(set(data) - MAPPING_KEYS)
        if unknown:
            raise InputError(source, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(MAPPING_KEYS))})")
        refs = [k for k in ("password_env", "password_file", "password_keyring") if data.get(k) is not None]
        if len(refs) > 1:
            raise InputError(source, f"give one password source, not {' and '.join(refs)}")
        password = None
        if refs:
            value = data[refs[0]]
            if refs[0] == "password_env":
                password = PasswordRef("env", _text(value, source, "password_env"))
            elif refs[0] == "password_file":
                password = PasswordRef("file", str(_path(value, base_dir, source, "password_file")))
            else:
                if not isinstance(value, Mapping) or not isinstance(value.get("service"), str):
                    raise InputError(source, "password_keyring: give {service: NAME, username: USER}")
                password = PasswordRef("keyring", value["service"], value.get("username") or data.get("username"))
        port = data.get("smtp_port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
            raise InputError(source, f"smtp_port: {port!r} is not a TCP port")
        limit = data.get("max_attachment_mb", DEFAULT_MAX_ATTACHMENT_MB)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
            raise InputError(source, f"max_attachment_mb: {limit!r} is not a size in MB")
        return cls(
            to=_addresses(data.get("to"), source, "to"), cc=_addresses(data.get("cc"), source, "cc"),
            sender=_text(data.get("from") or "", source, "from"),
            reply_to=_text(data["reply_to"], source, "reply_to") if data.get("reply_to") else None,
            host=_text(data.get("smtp_host") or "", source, "smtp_host"), port=port,
            security=_choice(data.get("security", "starttls"), SECURITY, source, "security"),
            ca_bundle=_path(data["ca_bundle"], base_dir, source, "ca_bundle") if data.get("ca_bundle") else None,
            username=_text(data["username"], source, "username") if data.get("username") else None,
            password=password, when=_choice(data.get("when", "always"), WHEN, source, "when"),
            attach=_attach_list(data.get("attach", list(DEFAULT_ATTACH)), source),
            max_attachment_mb=float(limit), source=source)

    def merged(self, **options: Any) -> MailSettings:
        """These settings with every option that is not None put over them (the CLI wins)."""
        return dataclasses.replace(self, **{k: v for k, v in options.items() if v is not None})

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    def validate(self) -> MailSettings:
        """Refuse settings that cannot send, before anything is scanned (exit 2)."""
        for where, values in (("to", self.to), ("cc", self.cc), ("from", (self.sender,) if self.sender else ()),
                              ("reply_to", (self.reply_to,) if self.reply_to else ())):
            for value in values:
                _address(value, self.source, where)
        if not self.to:
            raise InputError(self.source, "no recipient: give --mail-to ADDRESS (or mail.to in the config file)")
        if not self.host:
            raise InputError(self.source, "no SMTP server: give --mail-server HOST[:PORT] "
                                          "(or mail.smtp_host in the config file)")
        if not self.sender:
            raise InputError(self.source, "no sender: give --mail-from ADDRESS (or mail.from in the config file)")
        _choice(self.security, SECURITY, self.source, "security")
        _choice(self.when, WHEN, self.source, "when")
        _attach_list(list(self.attach), self.source)
        if self.password is not None and not self.username:
            raise InputError(self.source, "a password source is set but no username: give --mail-username")
        if self.security == "none" and self.password is not None:
            raise InputError(self.source, "refusing to send an SMTP password without TLS (security: none); "
                                          "use starttls or tls")
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise InputError(self.ca_bundle, "the CA bundle for the SMTP server does not exist or is not a file")
        return self

    def password_value(self, environ: Mapping[str, str]) -> str | None:
        """The resolved password (None without authentication); a bad reference is exit 2."""
        if self.password is None:
            return None
        try:
            return self.password.resolve(environ)
        except secrets.SecretError as exc:
            raise InputError(self.source, str(exc)) from None


def parse_server(text: str) -> tuple[str, int | None]:
    """``smtp.contoso.com:587`` -> (host, 587); ``[::1]:2525`` for IPv6; the port is optional."""
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\s\[\]]+)(?::(\d+))?", text.strip())
    if not m:
        raise InputError("--mail-server", f"{text!r} is not HOST or HOST:PORT")
    host = m.group(1) or m.group(3)
    port = m.group(2) or m.group(4)
    if port is not None and not 0 < int(port) < 65536:
        raise InputError("--mail-server", f"{port} is not a TCP port")
    return host, int(port) if port else None


def _text(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise InputError(source, f"{key}: expected one line of text, found {value!r}")
    return value.strip()


def _choice(value: Any, allowed: Sequence[str], source: str, key: str) -> str:
    if value not in allowed:
        raise InputError(source, f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _path(value: Any, base_dir: Path | None, source: str, key: str) -> Path:
    p = Path(_text(value, source, key)).expanduser()
    return p if p.is_absolute() or base_dir is None else base_dir / p


def _addresses(value: Any, source: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InputError(source, f"{key}: expected an address or a list of addresses")
    return tuple(_address(_text(v, source, key), source, key) for v in items)


def _address(value: str, source: str, key: str) -> str:
    """A bare address (``cab@contoso.com``) or ``Name <addr>``; nothing that could inject a header."""
    if not re.fullmatch(r"[^\x00-\x1f\x7f]+", value or ""):
        raise InputError(source, f"{key}: {value!r} is not an e-mail address")
    m = re.fullmatch(r"\s*(?:(.*?)\s*<([^<>\s]+@[^<>\s]+)>|([^<>\s]+@[^<>\s]+))\s*", value)
    if not m:
        raise InputError(source, f"{key}: {value!r} is not an e-mail address (expected name@domain)")
    return value.strip()


def _attach_list(value: Any, source: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(source, "attach: expected a list of html, junit, json, sarif, remediation")
    out: list[str] = []
    for item in items:
        kind = str(item).strip()
        if kind in ("", "none"):
            continue
        if kind not in ATTACH_NAMES:
            raise InputError(source, f"attach: {kind!r} is not one of {', '.join(ATTACH_NAMES)} (or none)")
        if kind not in out:
            out.append(kind)
    return tuple(out)


# ----------------------------------------------------------------------------- when to send

def should_send(report: ScanReport, when: str) -> tuple[bool, str]:
    """(send?, why not). ``changed`` without a history sends: nothing proves the run is unchanged."""
    if when == "fail":
        failed = bool(report.counting_failures()) or any(r.status is Status.ERROR for r in report.results)
        return failed, "" if failed else "the scan passed and --mail-when is fail"
    if when == "changed":
        ch = fnd.changes(report)
        if ch is not None and not ch.any:
            return False, "nothing changed since the last run and --mail-when is changed"
    return True, ""


def subject(report: ScanReport) -> str:
    """``[lmscan] FAIL: 2 of 14 clusters, 3 new failures, 1 resolved``."""
    v = fnd.verdict(report)
    n = v.clusters
    if v.label == "FAIL":
        head = f"FAIL: {v.failing} of {n} cluster{'s' if n != 1 else ''}"
    elif v.label == "INCOMPLETE":
        head = f"INCOMPLETE: {v.incomplete} of {n} cluster{'s' if n != 1 else ''} not fully checked"
    else:
        head = f"PASS: {n} cluster{'s' if n != 1 else ''} compliant"
    parts = [head]
    if v.label == "FAIL" and v.incomplete:
        parts.append(f"{v.incomplete} incomplete")
    ch = fnd.changes(report)
    if ch is not None:
        news = ch.new + ch.reopened
        if news or v.label == "FAIL":
            parts.append(f"{news} new failure{'s' if news != 1 else ''}")
        if ch.resolved:
            parts.append(f"{ch.resolved} resolved")
    else:
        counted = len(fnd.findings(report)) if v.label == "FAIL" else 0
        if counted:
            parts.append(f"{counted} finding{'s' if counted != 1 else ''}")
    return "[lmscan] " + ", ".join(parts)


# ----------------------------------------------------------------------------- the message

@dataclass(frozen=True)
class Attachment:
    """One report for the message: its bytes, or (over the size cap) only where it is and its hash."""

    kind: str
    filename: str
    size: int
    sha256: str
    data: bytes | None
    path: str | None = None

    @property
    def attached(self) -> bool:
        return self.data is not None


def make_attachment(kind: str, data: bytes, path: str | None, max_mb: float) -> Attachment:
    """The report as an attachment, or its path and SHA-256 when it is over ``max_mb``."""
    digest = hashlib.sha256(data).hexdigest()
    name = Path(path).name if path and path != "-" else ATTACH_NAMES[kind]
    keep = len(data) <= max_mb * 1_000_000
    return Attachment(kind, name, len(data), digest, data if keep else None, path if path != "-" else None)


def build_message(report: ScanReport, settings: MailSettings, attachments: Sequence[Attachment], *,
                  date: _dt.datetime, domain: str | None = None) -> EmailMessage:
    """The whole message, pure: the same inputs give the same bytes (``message.as_bytes()``)."""
    from scanner.render.digest import render_digest

    html, text = render_digest(report, attachments, max_mb=settings.max_attachment_mb)
    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = subject(report)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    if settings.cc:
        msg["Cc"] = ", ".join(settings.cc)
    if settings.reply_to:
        msg["Reply-To"] = settings.reply_to
    msg["Date"] = format_datetime(date.astimezone(_dt.timezone.utc))
    host = domain or _domain(settings.sender)
    msg["Message-ID"] = f"<lmscan.{_token(report.scan.id)}.{date.strftime('%Y%m%d%H%M%S')}@{host}>"
    msg["X-Lmscan-Scan-Id"] = _token(report.scan.id)
    msg["X-Lmscan-Results-SHA256"] = fnd.results_sha256(report)
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for a in attachments:
        if a.data is None:
            continue
        maintype, subtype = ATTACH_TYPES[a.kind]
        # Bytes, base64: the attachment is the file, byte for byte, so its SHA-256 can be checked.
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename,
                           params={"charset": "utf-8"} if maintype == "text" else None)
    # Fixed boundaries (the library picks random ones) keep the message reproducible; "=_" cannot
    # occur in quoted-printable or base64 text, so no part can contain them.
    seed = hashlib.sha256(f"{report.scan.id}|{date.isoformat()}".encode()).hexdigest()[:24]
    for n, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_lmscan_{seed}_{n}")
    return msg


def _domain(sender: str) -> str:
    try:
        address = sender[sender.rindex("<") + 1:sender.rindex(">")] if "<" in sender else sender
        domain = Address(addr_spec=address.strip()).domain
    except (ValueError, IndexError):
        domain = ""
    return domain or "lmscan.invalid"


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:80] or "scan"


# ----------------------------------------------------------------------------- sending

def send(message: EmailMessage, settings: MailSettings, password: str | None) -> None:
    """Deliver over SMTP with verified TLS; any failure is one :class:`MailError` line."""
    where = f"{settings.host}:{settings.effective_port}"
    context = ssl.create_default_context(cafile=str(settings.ca_bundle) if settings.ca_bundle else None)
    recipients = [_bare(a) for a in settings.to + settings.cc]
    try:
        if settings.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.effective_port,
                                                     timeout=settings.timeout, context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.effective_port, timeout=settings.timeout)
        with client:
            client.ehlo()
            if settings.security == "starttls":
                if not client.has_extn("starttls"):
                    raise MailError(f"mail not sent: {where} does not offer STARTTLS (set security: tls for "
                                    "implicit TLS, or ask for STARTTLS on the server)")
                client.starttls(context=context)
                client.ehlo()
            if settings.username:
                client.login(settings.username, password or "")
            refused = client.send_message(message, from_addr=_bare(settings.sender), to_addrs=recipients)
        if refused:
            raise MailError(f"mail not sent to {', '.join(sorted(refused))}: {where} refused "
                            f"{'them' if len(refused) > 1 else 'it'}")
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"mail not sent: {where} refused the login for {settings.username}: "
                        f"{exc.smtp_code} {_said(exc.smtp_error)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(f"mail not sent: {where} refused every recipient "
                        f"({', '.join(sorted(exc.recipients))})") from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"mail not sent: {where} answered {exc.smtp_code} {_said(exc.smtp_error)}") from None
    except ssl.SSLCertVerificationError as exc:
        raise MailError(f"mail not sent: the TLS certificate of {where} could not be verified "
                        f"({exc.verify_message}); give the right ca_bundle") from None
    except ssl.SSLError as exc:
        raise MailError(f"mail not sent: TLS with {where} failed: {exc.reason or exc}") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        if isinstance(exc, socket.timeout):
            reason = f"no answer within {settings.timeout:.0f} s"
        raise MailError(f"mail not sent: cannot talk to {where}: {reason}") from None


def _bare(address: str) -> str:
    return address[address.rindex("<") + 1:address.rindex(">")] if "<" in address else address.strip()


def _said(error: bytes | str) -> str:
    text = error.decode("utf-8", errors="replace") if isinstance(error, bytes) else str(error)
    return " ".join(text.split())[:200]
