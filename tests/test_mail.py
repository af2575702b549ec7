"""Sending the digest: a real SMTP server on loopback (aiosmtpd) with STARTTLS or implicit TLS
(certificates from trustme) and AUTH; the received message is parsed back.

Also the pure parts: the message is the same bytes for the same inputs, the digest stays under
Gmail's clipping size for a 500-cluster fleet, and bad mail settings stop a scan before it starts.
"""

from __future__ import annotations

import datetime as _dt
import email
import hashlib
import json
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from scanner import mail
from scanner.cli import main
from scanner.errors import InputError
from scanner.model import Status

from render.conftest import build_big, build_sample  # tests/ is on sys.path (rootless test modules)

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")
trustme = pytest.importorskip("trustme")

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "scanner" / "demo"
USER, PASSWORD = "svc-lmscan", "s3cret-not-in-logs"


@dataclass
class Inbox:
    """What the loopback server received, and how to reach it."""

    port: int
    ca_file: Path
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def only(self) -> Message:
        assert len(self.messages) == 1, self.messages
        return email.message_from_bytes(self.messages[0][2], policy=default_policy)


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.inbox.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, ssl.SSLContext]:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return authority, ca_file, server_ctx


def _serve(ca: tuple[Any, Path, ssl.SSLContext], *, implicit: bool = False) -> Iterator[Inbox]:
    _, ca_file, server_ctx = ca
    inbox = Inbox(_free_port(), ca_file)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = data.login.decode() == USER and data.password.decode() == PASSWORD
        if ok:
            inbox.logins.append(data.login.decode())
        return aiosmtpd_smtp.AuthResult(success=ok, handled=False)   # handled=False: the server answers 535

    # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; an implicit-TLS session is TLS anyway.
    kwargs: dict[str, Any] = {"authenticator": authenticate, "auth_require_tls": not implicit}
    if implicit:
        kwargs["ssl_context"] = server_ctx
    else:
        kwargs.update(tls_context=server_ctx, require_starttls=True)
    controller = aiosmtpd_controller.Controller(_Handler(inbox), hostname="127.0.0.1", port=inbox.port, **kwargs)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp(ca: tuple[Any, Path, ssl.SSLContext]) -> Iterator[Inbox]:
    yield from _serve(ca)


@pytest.fixture
def smtps(ca: tuple[Any, Path, ssl.SSLContext]) -> Iterator[Inbox]:
    yield from _serve(ca, implicit=True)


def _mail_args(inbox: Inbox, *extra: str) -> list[str]:
    return ["--mail-to", "cab@contoso.com", "--mail-cc", "Ops Team <ops@contoso.com>",
            "--mail-from", "lmscan@contoso.com", "--mail-reply-to", "hyperv-team@contoso.com",
            "--mail-server", f"127.0.0.1:{inbox.port}", "--mail-ca-bundle", str(inbox.ca_file),
            "--mail-username", USER, "--mail-password-env", "LMSCAN_TEST_SMTP_PASSWORD", *extra]


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCAN_TEST_SMTP_PASSWORD", PASSWORD)


def _parts(msg: Message) -> tuple[str, str, dict[str, bytes]]:
    text = html = ""
    files: dict[str, bytes] = {}
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        name = part.get_filename()
        if name:
            files[name] = part.get_payload(decode=True)
        elif part.get_content_type() == "text/plain":
            text = part.get_content()
        elif part.get_content_type() == "text/html":
            html = part.get_content()
    return text, html, files


def test_scan_sends_the_digest_over_starttls_with_auth(smtp: Inbox, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["scan", "--demo", "--out-dir", str(out), "-q",
                 *_mail_args(smtp, "--mail-attach", "html,junit,json")])
    assert code == 1                       # the demo fails; sending does not change that
    assert smtp.logins == [USER]
    sender, rcpts, raw = smtp.messages[0]
    assert sender == "lmscan@contoso.com" and rcpts == ["cab@contoso.com", "ops@contoso.com"]
    msg = smtp.only()
    assert msg["Subject"] == "[lmscan] FAIL: 3 of 4 clusters, 14 findings"
    assert msg["To"] == "cab@contoso.com" and msg["Cc"] == "Ops Team <ops@contoso.com>"
    assert msg["Reply-To"] == "hyperv-team@contoso.com" and msg["Date"] and msg["Message-ID"].endswith("@contoso.com>")
    assert msg.get_content_type() == "multipart/mixed"
    text, html, files = _parts(msg)
    assert set(files) == {"report.html", "junit.xml", "results.json"}
    for name in files:
        assert files[name] == (out / name).read_bytes(), name
    sha = hashlib.sha256((out / "results.json").read_bytes()).hexdigest()
    assert msg["X-Lmscan-Results-SHA256"].strip() == sha
    for body in (text, html):
        assert "3 of 4 clusters are not compliant." in body
        assert sha in body
        assert "AZL-N04" in body                                        # the unreachable node
        assert body.index("LM001") < body.index("LM004")                # critical first
    assert f"SHA-256 of the results JSON: {sha}" in text
    assert re.search(rf"SHA-256 of the results JSON: <span[^>]*>{sha}</span>", (out / "report.html").read_text())
    assert PASSWORD.encode() not in raw
    err = capsys.readouterr().err
    assert PASSWORD not in err


def test_implicit_tls(smtps: Inbox, tmp_path: Path) -> None:
    code = main(["scan", "--snapshot", str(DEMO / "HVCLU22"), "--policy", str(DEMO / "policy.yaml"), "-q",
                 "--json", str(tmp_path / "r.json"), *_mail_args(smtps, "--mail-security", "tls")])
    assert code == 0
    msg = smtps.only()
    assert msg["Subject"] == "[lmscan] PASS: 1 cluster compliant"
    assert set(_parts(msg)[2]) == {"report.html", "r.json"}


@pytest.mark.parametrize("why, args, expect", [
    ("wrong password", ["--mail-password-env", "WRONG_PASSWORD"], "refused the login for svc-lmscan: 535"),
    ("untrusted certificate", ["--mail-ca-bundle", "SYSTEM"], "TLS certificate of 127.0.0.1"),
    ("server does not answer TLS", ["--mail-security", "tls"], "TLS with 127.0.0.1"),
])
def test_a_failed_send_still_writes_every_report_and_exits_3(
        smtp: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        why: str, args: list[str], expect: str) -> None:
    monkeypatch.setenv("WRONG_PASSWORD", "nope")
    base = _mail_args(smtp)
    if args[:2] == ["--mail-ca-bundle", "SYSTEM"]:
        i = base.index("--mail-ca-bundle")
        del base[i:i + 2]                 # verify against the system store, which does not know trustme's CA
        args = []
    out = tmp_path / "out"
    code = main(["scan", "--snapshot", str(DEMO / "HVCLU22"), "--policy", str(DEMO / "policy.yaml"), "-q",
                 "--out-dir", str(out), *base, *args])
    assert code == 3, why
    assert {p.name for p in out.iterdir()} == {"report.html", "junit.xml", "results.json", "results.sarif", "summary.md"}
    assert smtp.messages == []
    err = capsys.readouterr().err.strip().splitlines()
    lines = [e for e in err if e.startswith("lmscan: error:")]
    assert len(lines) == 1 and expect in lines[0] and lines[0].startswith("lmscan: error: mail not sent"), err
    assert "nope" not in "\n".join(err) and PASSWORD not in "\n".join(err)


def test_a_failed_send_keeps_exit_1_when_the_scan_fails(smtp: Inbox, tmp_path: Path) -> None:
    code = main(["scan", "--demo", "--out-dir", str(tmp_path), "-q",
                 *[a if a != f"127.0.0.1:{smtp.port}" else f"127.0.0.1:{_free_port()}" for a in _mail_args(smtp)]])
    assert code == 1 and (tmp_path / "report.html").exists()


def test_mail_when(smtp: Inbox, tmp_path: Path) -> None:
    clean = ["scan", "--snapshot", str(DEMO / "HVCLU22"), "--policy", str(DEMO / "policy.yaml"), "-q"]
    assert main([*clean, *_mail_args(smtp, "--mail-when", "fail")]) == 0
    assert smtp.messages == []
    failing = ["scan", "--snapshot", str(DEMO / "HVCLU19"), "--policy", str(DEMO / "policy.yaml"), "-q"]
    assert main([*failing, *_mail_args(smtp, "--mail-when", "fail")]) == 1
    assert len(smtp.messages) == 1


def test_mail_from_results_sends_a_past_run(smtp: Inbox, tmp_path: Path) -> None:
    assert main(["scan", "--demo", "--out-dir", str(tmp_path), "-q"]) == 1
    results = tmp_path / "results.json"
    assert main(["mail", "--from-results", str(results), *_mail_args(smtp, "--mail-attach", "html,json")]) == 0
    msg = smtp.only()
    assert msg["Subject"] == "[lmscan] FAIL: 3 of 4 clusters, 14 findings"
    text, html, files = _parts(msg)
    assert files["results.json"] == results.read_bytes()
    sha = hashlib.sha256(results.read_bytes()).hexdigest()
    assert sha in text and sha in html and sha in files["report.html"].decode()
    # The re-rendered report says the same as the one the scan wrote.
    scan_id = json.loads(results.read_text())["scan"]["id"]
    assert scan_id in files["report.html"].decode() and "3 of 4 clusters are not compliant." in html
    # A failed send of a past run is exit 3 too.
    assert main(["mail", "--from-results", str(results),
                 *[a if a != f"127.0.0.1:{smtp.port}" else f"127.0.0.1:{_free_port()}"
                   for a in _mail_args(smtp)]]) == 3


@pytest.mark.parametrize("args, problem", [
    (["--mail-to", "not an address"], "is not an e-mail address"),
    (["--mail-to", "a@b.c", "--mail-from", "x@y.z"], "no SMTP server"),
    (["--mail-to", "a@b.c", "--mail-server", "smtp:70000", "--mail-from", "x@y.z"], "not a TCP port"),
    (["--mail-to", "a@b.c", "--mail-server", "h", "--mail-from", "x@y.z", "--mail-username", "u",
      "--mail-password-env", "NOT_SET_ANYWHERE_X"], "environment variable NOT_SET_ANYWHERE_X is not set"),
    (["--mail-to", "a@b.c", "--mail-server", "h", "--mail-from", "x@y.z", "--mail-attach", "pdf"],
     "'pdf' is not one of"),
    (["--mail-to", "a@b.c", "--mail-server", "h", "--mail-from", "x@y.z", "--mail-security", "none",
      "--mail-username", "u", "--mail-password-env", "LMSCAN_TEST_SMTP_PASSWORD"], "without TLS"),
])
def test_bad_mail_settings_stop_the_scan_before_it_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          args: list[str], problem: str) -> None:
    assert main(["scan", "--demo", "--out-dir", str(tmp_path / "out"), "-q", *args]) == 2
    assert not (tmp_path / "out").exists()
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_settings_from_the_config_mapping(tmp_path: Path) -> None:
    s = mail.MailSettings.from_mapping({
        "to": ["cab@contoso.com"], "cc": [], "from": "lmscan@contoso.com", "smtp_host": "smtp.contoso.com",
        "smtp_port": 587, "security": "starttls", "ca_bundle": "pki/corp-ca.pem", "username": "svc-lmscan",
        "password_env": "LMSCAN_SMTP_PASSWORD", "when": "changed", "attach": ["html", "json", "remediation"]},
        base_dir=tmp_path)
    assert s.ca_bundle == tmp_path / "pki/corp-ca.pem" and s.when == "changed"
    assert s.password == mail.PasswordRef("env", "LMSCAN_SMTP_PASSWORD") and s.effective_port == 587
    assert s.merged(to=("other@contoso.com",), when=None).to == ("other@contoso.com",)
    k = mail.MailSettings.from_mapping({"to": "a@b.c", "password_keyring": {"service": "smtp"}, "username": "u"})
    assert k.password == mail.PasswordRef("keyring", "smtp", "u")
    for bad, problem in [({"to": "a@b.c", "password": "x"}, "unknown key 'password'"),
                         ({"password_env": "A", "password_file": "f"}, "one password source"),
                         ({"security": "ssl"}, "'ssl' is not one of"), ({"smtp_port": "25"}, "not a TCP port"),
                         ({"to": "a@b.c\nBcc: x@y.z"}, "one line")]:
        with pytest.raises(InputError, match=problem):
            mail.MailSettings.from_mapping(bad)


def _settings() -> mail.MailSettings:
    return mail.MailSettings(to=("cab@contoso.com",), sender="lmscan@contoso.com", host="smtp.contoso.com")


def test_the_message_is_pure() -> None:
    report = build_sample()
    when = _dt.datetime(2026, 11, 26, 2, 5, tzinfo=_dt.timezone.utc)
    atts = [mail.make_attachment("json", b'{"x": 1}\n', "out/results.json", 10)]
    a = mail.build_message(report, _settings(), atts, date=when).as_bytes()
    b = mail.build_message(report, _settings(), atts, date=when).as_bytes()
    assert a == b
    parsed = email.message_from_bytes(a, policy=default_policy)
    assert parsed["Message-ID"] == "<lmscan.2f1e6c1a-9a4b-4d0e-8f3c-0b5a7d9e1c2f.20261126020500@contoso.com>"
    assert parsed["Date"] == "Thu, 26 Nov 2026 02:05:00 +0000"
    # Every line fits SMTP's limit, and the reports are attached byte for byte.
    assert max(len(line) for line in a.split(b"\r\n")) <= 998
    assert _parts(parsed)[2] == {"results.json": b'{"x": 1}\n'}


def test_oversized_attachments_are_replaced_by_path_and_hash() -> None:
    big = b"x" * 1_500_000
    att = mail.make_attachment("junit", big, "/srv/reports/junit.xml", 1)
    assert not att.attached and att.sha256 == hashlib.sha256(big).hexdigest()
    msg = mail.build_message(build_sample(), _settings(), [att], date=_dt.datetime.now(_dt.timezone.utc))
    text, html, files = _parts(email.message_from_bytes(msg.as_bytes(), policy=default_policy))
    assert files == {}
    for body in (text, html):
        assert "junit.xml" in body and "/srv/reports/junit.xml" in body and att.sha256 in body


def test_a_500_cluster_digest_stays_under_100_kb_and_keeps_the_head() -> None:
    report = build_big(500)
    # Make the fleet's failures of every severity, so the cut shows what it dropped.
    sev = ["critical", "high", "medium", "low"]
    results = tuple(replace(r, status=Status.FAIL, severity=type(r.severity)(sev[i % 4]))
                    if r.rule == "HOST002" and i % 3 == 0 else r for i, r in enumerate(report.results))
    report = replace(report, results=results)
    atts = [mail.make_attachment("html", b"<html></html>", "reports/report.html", 10)]
    msg = mail.build_message(report, _settings(), atts, date=_dt.datetime.now(_dt.timezone.utc))
    text, html, _ = _parts(email.message_from_bytes(msg.as_bytes(), policy=default_policy))
    size = len(html.encode("utf-8"))
    print(f"500-cluster digest: {size} bytes of HTML, {len(text.encode())} of text, "
          f"{len(msg.as_bytes())} bytes of message")
    assert size < 100_000
    assert "more findings" in html and "see report.html (attached)" in html
    assert "more findings" in text
    first = html.index("What failed")
    assert html.index("critical", first) < html.index(">high<", first) if ">high<" in html[first:] else True
    assert "SHA-256 of the results JSON" in html   # the footer survives the cut


def test_subject_carries_changes_when_history_exists() -> None:
    import dataclasses

    from scanner.changes import baselines_from_report, mark_changes
    report = build_sample()
    failing = [r for r in report.results if r.status is Status.FAIL]
    # The compared run: the first failure still passed, and a finding that is gone now failed.
    gone = dataclasses.replace(failing[1], id=failing[1].id + "-gone")
    before = dataclasses.replace(report, results=tuple(
        dataclasses.replace(r, status=Status.PASS) if r.id == failing[0].id else r for r in report.results) + (gone,))
    marked = mark_changes(report, baselines_from_report(before), "baseline")
    assert mail.subject(marked) == "[lmscan] FAIL: 3 of 4 clusters, 1 new failure, 1 resolved"
    assert mail.should_send(marked, "changed")[0]
    same = mark_changes(report, baselines_from_report(report), "baseline")
    assert not mail.should_send(same, "changed")[0]


def test_send_refuses_a_server_without_starttls(tmp_path: Path) -> None:
    inbox = Inbox(_free_port(), tmp_path / "none.pem")
    controller = aiosmtpd_controller.Controller(_Handler(inbox), hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        settings = replace(_settings(), host="127.0.0.1", port=inbox.port)
        msg = EmailMessage()
        with pytest.raises(mail.MailError, match="does not offer STARTTLS"):
            mail.send(msg, settings, None)
    finally:
        controller.stop()
    assert inbox.messages == []


def _config(tmp_path: Path, inbox: Inbox, snapshots: Path, when: str) -> Path:
    cfg = tmp_path / "lmscan.yaml"
    cfg.write_text(f"""lmscan_config: 1
snapshots: [{snapshots}]
policy: {DEMO / "policy.yaml"}
outputs: {{dir: reports}}
history: history.db
mail:
  to: [cab@contoso.com]
  from: lmscan@contoso.com
  reply_to: hyperv-team@contoso.com
  smtp_host: 127.0.0.1
  smtp_port: {inbox.port}
  security: starttls
  ca_bundle: {inbox.ca_file}
  username: {USER}
  password_env: LMSCAN_TEST_SMTP_PASSWORD
  when: {when}
  attach: [html, json]
""")
    return cfg


def test_nightly_config_sends_with_changes_and_stays_quiet_when_nothing_changed(smtp: Inbox, tmp_path: Path) -> None:
    cfg = _config(tmp_path, smtp, DEMO / "HVCLU19", "changed")
    assert main(["scan", "--config", str(cfg), "-q"]) == 1
    assert len(smtp.messages) == 1                 # the first run: everything is new
    first = email.message_from_bytes(smtp.messages[0][2], policy=default_policy)
    assert first["Subject"].startswith("[lmscan] FAIL: 1 of 1 cluster, ") and "new failures" in first["Subject"]
    print(first["Subject"])
    assert first["Reply-To"] == "hyperv-team@contoso.com"
    assert set(_parts(first)[2]) == {"report.html", "results.json"}
    assert main(["scan", "--config", str(cfg), "-q"]) == 1
    assert len(smtp.messages) == 1                 # the same findings again: no mail with when: changed
    # A past run goes out again with the same settings, whatever `when` says.
    results = next((tmp_path / "reports").rglob("results.json"))
    assert main(["mail", "--from-results", str(results), "--config", str(cfg), "--mail-when", "always"]) == 0
    assert len(smtp.messages) == 2


def test_a_password_file_others_can_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o644)
    args = ["scan", "--demo", "--out-dir", str(tmp_path / "out"), "-q", "--mail-to", "a@b.c", "--mail-from", "x@y.z",
            "--mail-server", "smtp.invalid", "--mail-username", USER, "--mail-password-file", str(secret)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "can be read by other users; restrict it with: chmod 600" in err and PASSWORD not in err
    assert not (tmp_path / "out").exists()
