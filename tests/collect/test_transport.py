"""The real pywinrm, through run_powershell, against the loopback WS-Man endpoint.

Every test ends with the fake holding no open shell (the ``wsman`` fixture checks), and every
failure is checked for the password in its text, repr and log records.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
from typing import Any

import pytest
import winrm

from scanner.collect import transport
from scanner.collect.transport import (
    ENV_CHUNK,
    ENV_INCOMPLETE_EXIT,
    ENV_SCRIPT_MAX,
    STDIN_CHUNK,
    Cancellation,
    Endpoint,
    NodeError,
    build_command_line,
    run_powershell,
    script_delivery,
    split_for_env,
)
from scanner.snapshot import parse_snapshot

from .conftest import SECRET, snapshot_doc, snapshot_json
from .fakewsman import (
    CommandRequest,
    Drop,
    FakeWSMan,
    Fault,
    Hang,
    NeverFinishes,
    RawHTTP,
    Reply,
    Trickle,
    clixml_error,
)

# The script travels in the Create request (shell variables), so no Send; a command that finished
# needs no Signal: Delete ends the shell (MS-WSMV 3.1.4.4.1).
HAPPY_STEPS = ["Create", "Command", "Receive", "Delete"]
# A script that cannot go in the environment ('%' might be expanded there) goes over stdin.
STDIN_SCRIPT = "Get-Cluster | % { $_.Name }"


def endpoint(srv: FakeWSMan, node: str = "HV01", **kw: Any) -> Endpoint:
    kw.setdefault("transport", "basic")
    kw.setdefault("username", "u")
    kw.setdefault("password", SECRET)
    kw.setdefault("timeout", 3.0)
    kw.setdefault("allow_unencrypted", True)
    return Endpoint(node=node, url=kw.pop("url", srv.url), **kw)


def secret_forms() -> list[str]:
    return [SECRET, base64.b64encode(f"u:{SECRET}".encode()).decode()]


def fails(ep: Endpoint, caplog: pytest.LogCaptureFixture, script: str = "Get-Cluster") -> NodeError:
    """Run, expect a NodeError, and check the password appears nowhere."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(NodeError) as info:
        run_powershell(ep, script)
    err = info.value
    texts = [str(err), repr(err), err.reason, *map(str, err.args), caplog.text,
             *(r.getMessage() for r in caplog.records)]
    for text in texts:
        for secret in secret_forms():
            assert secret not in text
    assert "\n" not in str(err)
    assert err.kind in transport.NODE_ERROR_KINDS
    return err


# --- healthy runs ---------------------------------------------------------------------------


def test_happy_path_returns_snapshot_at_protocol_minimum(wsman: Any) -> None:
    srv = wsman(Reply(stdout=snapshot_json()))
    out = run_powershell(endpoint(srv), "Get-Cluster | Out-Null\n'done'")
    snap = parse_snapshot(out.stdout, "HV01")
    assert snap.node == "HV01"
    assert snap.sections["ClusterNetwork"][0]["Name"] == "LM Zürich 東京"
    assert out.exit_code == 0 and out.stderr == b""
    assert srv.steps() == HAPPY_STEPS
    assert out.requests == 4
    assert srv.connections == 1


def test_shell_and_command_are_set_up_as_specified(wsman: Any) -> None:
    srv = wsman(Reply(stdout="ok"))
    script = "# Zürich 東京 \u00e9 <&'\">\r\n" + "Write-Output 'x'\r\n" * 1200 + "\n"
    run_powershell(endpoint(srv), script)
    [req] = srv.commands
    assert req.codepage == 65001 and req.noprofile
    assert req.console_mode_stdin  # nothing is sent to stdin
    assert req.command_line.startswith(
        "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ")
    bootstrap = req.encoded_command or ""
    assert "$input" not in bootstrap and "UTF8Encoding" in bootstrap and "Invoke-Expression $s" in bootstrap
    assert req.env_script_names == ["LMSCAN_S0", "LMSCAN_S1", "LMSCAN_S2"]
    assert req.script == script.strip()  # CRs, markup characters and non-ASCII arrive intact
    assert len(req.command_line) < 1500


def test_script_is_cut_into_variables_cmd_exe_passes_on_whole() -> None:
    script = "".join(f"$v{i} = 'Zürich {i}'\n" for i in range(1500))
    pieces = split_for_env(script)
    assert "".join(pieces) == script
    assert all(0 < len(p) <= ENV_CHUNK < 8191 for p in pieces)  # cmd.exe's limit per inherited variable
    assert all(p[0] not in " \t\r\n" and p[-1] not in " \t\r\n" for p in pieces[:-1])
    assert split_for_env("aaaa bbbb", 5) == ["aaa", "a bbb", "b"]
    assert split_for_env(" " * 7, 3) == ["   ", "   ", " "]  # nothing else to cut at
    delivery = script_delivery(script)
    assert [name for name, _ in delivery.env] == [f"LMSCAN_S{i}" for i in range(len(pieces))]
    assert delivery.stdin == b""


@pytest.mark.parametrize("script", ["", "  \n", "x" * (ENV_SCRIPT_MAX + 1), STDIN_SCRIPT, "Write-Output 1\x07",
                                    "'\U0001F600'"])
def test_scripts_the_environment_cannot_carry_go_over_stdin(script: str) -> None:
    delivery = script_delivery(script)
    assert delivery.env == () and delivery.stdin == script.encode()


def test_large_script_goes_over_stdin_in_chunks(wsman: Any) -> None:
    srv = wsman(Reply(stdout="ok"))
    script = "".join(f"$v{i} = 'Zürich {i}'\n" for i in range(12000))
    assert len(script.encode()) > 2 * STDIN_CHUNK
    out = run_powershell(endpoint(srv), script)
    [req] = srv.commands
    assert req.script == script
    assert not req.console_mode_stdin and "$input" in (req.encoded_command or "") and req.env == {}
    sends = srv.steps().count("Send")
    assert sends == -(-len(script.encode()) // STDIN_CHUNK)
    assert out.requests == 4 + sends


def test_a_variable_cut_on_the_way_fails_the_run_instead_of_running_half_a_script(
        wsman: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pieces longer than cmd.exe passes on: the fake cuts them like cmd.exe, and the bootstrap's
    # length check (emulated by the fake) refuses to run what arrived.
    monkeypatch.setattr(transport, "split_for_env", lambda text: [text[:9000], text[9000:]])
    script_delivery.cache_clear()
    ran: list[str] = []
    srv = wsman(lambda req: ran.append(req.script) or Reply(stdout="ran"))
    try:
        out = run_powershell(endpoint(srv), "Write-Output 'x'\n" * 1000)
    finally:
        script_delivery.cache_clear()
    assert ran == [] and out.exit_code == ENV_INCOMPLETE_EXIT
    assert b"the script arrived incomplete in the shell environment (16190 of 16999 characters)" in out.stdout
    assert srv.steps() == HAPPY_STEPS


def test_collector_create_request_stays_far_below_max_envelope_size(wsman: Any) -> None:
    from scanner.collect.script import collector_script

    script = collector_script("winrm")
    srv = wsman(lambda req: Reply(stdout="ok" if req.script == script.strip() else "wrong"))
    out = run_powershell(endpoint(srv), script)
    assert out.stdout == b"ok" and out.requests == 4
    assert len(script_delivery(script).env) <= 4
    [create] = [e for e in srv.log if e.step == "Create"]
    assert create.request_bytes < 150 * 1024 // 4  # 2008 R2's MaxEnvelopeSize is 150 KB


def test_non_ascii_output_survives_codepage_65001(wsman: Any) -> None:
    srv = wsman(Reply(stdout="Zürich 東京\r\n"))  # str: encoded with the shell's codepage, like Windows
    out = run_powershell(endpoint(srv), "x")
    assert out.stdout.decode("utf-8") == "Zürich 東京\r\n"


def test_fake_emulates_codepage_437_so_the_codepage_matters(wsman: Any) -> None:
    srv = wsman(Reply(stdout="Zürich 東京"))
    proto = winrm.protocol.Protocol(srv.url, transport="basic", username="u", password=SECRET, proxy=None,
                                    ca_trust_path=None)
    shell = proto.open_shell()  # pywinrm's default codepage 437
    cmd = proto.run_command(shell, "ipconfig")
    out, _, _ = proto.get_command_output(shell, cmd)
    proto.cleanup_command(shell, cmd)
    proto.close_shell(shell)
    assert out == b"Z\x81rich ??"


def test_non_utf8_garbage_output_passes_through_as_bytes(wsman: Any) -> None:
    junk = b"\xff\xfe\x00\x81garbage\x00\xc3(\r\n" * 10
    srv = wsman(Reply(stdout=junk, stderr=b"\x80\x81", exit_code=3))
    out = run_powershell(endpoint(srv), "x")
    assert (out.stdout, out.stderr, out.exit_code) == (junk, b"\x80\x81", 3)


def test_clixml_error_stream_and_exit_code_pass_through(wsman: Any) -> None:
    err = clixml_error("Get-ClusterNetwork : The term is not recognized")
    srv = wsman(Reply(stdout="", stderr=err, exit_code=1))
    out = run_powershell(endpoint(srv), "x")
    assert out.stderr == err and out.exit_code == 1 and out.stdout == b""


def test_five_megabytes_of_output(wsman: Any) -> None:
    doc = snapshot_doc()
    doc["sections"]["Padding"] = ["Zürich 東京 " * 10] * 36000
    payload = json.dumps(doc, ensure_ascii=False).encode()
    assert len(payload) > 5_000_000
    srv = wsman(Reply(stdout=payload))
    out = run_powershell(endpoint(srv, timeout=20), "x")
    assert out.stdout == payload
    assert srv.steps().count("Receive") >= len(payload) // srv.chunk_size
    assert parse_snapshot(out.stdout, "HV01").node == "HV01"


def test_output_after_a_delay_longer_than_one_receive_wait(wsman: Any) -> None:
    srv = wsman(Reply(stdout="late", delay=1.3))
    out = run_powershell(endpoint(srv, timeout=4), "x")
    assert out.stdout == b"late"
    assert srv.steps().count("Receive") >= 1


def test_http_proxy_in_environment_is_ignored(wsman: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    srv = wsman(Reply(stdout="direct"))
    assert run_powershell(endpoint(srv), "x").stdout == b"direct"


# --- authentication -------------------------------------------------------------------------


def test_wrong_password(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="never"), password="the-right-one")
    err = fails(endpoint(srv, "HV03"), caplog)
    assert err.kind == "auth"
    assert re.fullmatch(r"HV03: authentication failed \(basic\) after \d+\.\d s", str(err))
    assert srv.commands == []


def test_ntlm_with_message_encryption_over_http(wsman: Any) -> None:
    srv = wsman(Reply(stdout=snapshot_json()), auth="ntlm", username="CONTOSO\\svc-lmscan")
    out = run_powershell(endpoint(srv, transport="ntlm", username="CONTOSO\\svc-lmscan",
                                  allow_unencrypted=False), "x")
    assert parse_snapshot(out.stdout, "HV01").node == "HV01"
    assert srv.steps() == HAPPY_STEPS
    assert all(e.encrypted for e in srv.log)  # every WinRS message sealed with the NTLM session key
    assert srv.commands[0].user == "CONTOSO\\svc-lmscan"
    assert out.requests == 3 + 4  # NTLM handshake on the empty setup POST, then the minimum


def test_ntlm_wrong_password(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="never"), auth="ntlm", username="CONTOSO\\svc", password="other-password")
    err = fails(endpoint(srv, "HV03", transport="ntlm", username="CONTOSO\\svc"), caplog)
    assert err.kind == "auth" and "authentication failed (ntlm)" in str(err)


def test_ntlm_over_https_without_message_encryption(wsman: Any, tls: Any) -> None:
    srv = wsman(Reply(stdout="tls"), auth="ntlm", username="CONTOSO\\svc", ssl_context=tls.server_context())
    out = run_powershell(endpoint(srv, transport="ntlm", username="CONTOSO\\svc", ca_bundle=tls.ca_bundle), "x")
    assert out.stdout == b"tls"
    assert not any(e.encrypted for e in srv.log)
    assert srv.steps() == HAPPY_STEPS


def test_client_certificate_auth(wsman: Any, tls: Any) -> None:
    srv = wsman(Reply(stdout="cert"), auth="certificate", ssl_context=tls.server_context(client_certs=True))
    ep = endpoint(srv, transport="certificate", username=None, password=None, ca_bundle=tls.ca_bundle,
                  cert_pem=tls.client_cert, cert_key_pem=tls.client_key)
    assert run_powershell(ep, "x").stdout == b"cert"
    assert srv.commands[0].user == "svc-lmscan"


# --- TLS ------------------------------------------------------------------------------------


def test_https_with_trusted_ca(wsman: Any, tls: Any) -> None:
    srv = wsman(Reply(stdout="ok"), ssl_context=tls.server_context())
    assert run_powershell(endpoint(srv, ca_bundle=tls.ca_bundle, allow_unencrypted=False), "x").stdout == b"ok"


def test_certificate_that_does_not_verify(wsman: Any, tls: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="ok"), ssl_context=tls.server_context())
    err = fails(endpoint(srv, "HV06"), caplog)  # system store: does not know the test CA
    assert err.kind == "tls"
    assert str(err).startswith("HV06: TLS certificate did not verify: ")
    assert srv.commands == []


def test_certificate_for_another_host_does_not_verify(wsman: Any, tls: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="ok"), ssl_context=tls.server_context(hostname="hv99.contoso.com"))
    err = fails(endpoint(srv, "HV06", ca_bundle=tls.ca_bundle), caplog)
    assert err.kind == "tls"


def test_verify_tls_false_accepts_any_certificate(wsman: Any, tls: Any) -> None:
    srv = wsman(Reply(stdout="ok"), ssl_context=tls.server_context(hostname="hv99.contoso.com"))
    assert run_powershell(endpoint(srv, verify_tls=False), "x").stdout == b"ok"


# --- the network misbehaves -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_retried_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/wsman"
    ep = Endpoint("HV04", url, "basic", "u", SECRET, timeout=3, allow_unencrypted=True)
    began = time.monotonic()
    err = fails(ep, caplog)
    assert err.kind == "connect"
    assert re.fullmatch(rf"HV04: connection refused \({re.escape(url)}\) after \d+\.\d s", str(err))
    assert 0.7 <= time.monotonic() - began < 2.0  # two retries: 0.25 s + 0.5 s of backoff
    assert err.requests == 3


def test_connection_reset_on_create_is_retried(wsman: Any) -> None:
    srv = wsman(Reply(stdout="second time"))
    srv.inject("Create", Drop(reset=True), times=1)
    out = run_powershell(endpoint(srv), "x")
    assert out.stdout == b"second time"
    assert srv.connections == 2


def test_connection_reset_after_command_started_is_not_retried(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject("Receive", Drop(reset=True), times=1)
    err = fails(endpoint(srv, "HV04"), caplog)
    assert err.kind == "connect" and "during Receive" in str(err)
    assert len(srv.commands) == 1
    assert srv.steps()[-2:] == ["Signal", "Delete"]


def test_host_that_never_answers(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject("Create", Hang(10))
    began = time.monotonic()
    err = fails(endpoint(srv, "HV05", timeout=1.5), caplog)
    assert str(err) == "HV05: no answer within 1.5 s" and err.kind == "timeout"
    assert time.monotonic() - began < 2.5


def test_host_stops_answering_mid_receive(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject("Receive", Hang(10, partial=True), times=1)
    began = time.monotonic()
    err = fails(endpoint(srv, "HV05", timeout=1.5), caplog)
    assert err.kind == "timeout" and "stopped answering during Receive" in str(err)
    assert time.monotonic() - began < 1.5 + 1.0 + 0.5  # deadline + cleanup budget + slack
    assert srv.steps()[-2:] == ["Signal", "Delete"]


def test_host_trickling_bytes_is_cut_at_the_deadline(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject("Receive", Trickle(interval=0.1), times=1)
    began = time.monotonic()
    err = fails(endpoint(srv, "HV05", timeout=1.5), caplog)
    assert err.kind == "timeout"
    assert time.monotonic() - began < 1.5 + transport.WATCHDOG_SLACK + 1.0 + 0.5


def test_command_that_never_finishes(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(NeverFinishes())
    began = time.monotonic()
    err = fails(endpoint(srv, "HV05", timeout=2.5), caplog)
    assert str(err) == "HV05: command did not finish within 2.5 s" and err.kind == "timeout"
    assert time.monotonic() - began < 2.5 + 1.0
    steps = srv.steps()
    assert steps.count("Receive") >= 2  # OperationTimeout faults just mean "poll again"
    assert steps[-2:] == ["Signal", "Delete"]


@pytest.mark.parametrize("step", ["Create", "Command", "Send", "Receive"])
def test_soap_fault_at_a_working_step(wsman: Any, step: str, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject(step, Fault("Access is denied.", "w:AccessDenied", wsman_code=5))
    err = fails(endpoint(srv, "HV07"), caplog, STDIN_SCRIPT if step == "Send" else "Get-Cluster")
    assert err.kind == "fault"
    assert re.fullmatch(rf"HV07: WS-Man fault on {step}: Access is denied\. \(w:AccessDenied\) after \d+\.\d s",
                        str(err))
    if step != "Create":
        assert "Delete" in srv.steps()


@pytest.mark.parametrize("step", ["Signal", "Delete"])
def test_soap_fault_during_cleanup_does_not_fail_the_node(wsman: Any, step: str) -> None:
    srv = wsman(Reply(stdout="fine"))
    srv.inject(step, Fault("The service is busy.", "w:InternalError", "s:Receiver", 1726), times=1)
    out = run_powershell(endpoint(srv), "x")
    assert out.stdout == b"fine"
    assert srv.steps()[-1] == "Delete"  # a failed Delete is tried once more


@pytest.mark.parametrize("step", ["Create", "Receive"])
def test_garbage_answer(wsman: Any, step: str, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject(step, RawHTTP(200, b"\x00\xffthis is not XML"), times=1)
    err = fails(endpoint(srv, "HV08"), caplog)
    assert err.kind == "protocol" and f"unexpected answer to {step} (ParseError" in str(err)


def test_truncated_answer(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject("Receive", RawHTTP(200, b"<s:Envelope xmlns:s='x'><s:Bo", declared_length=5000), times=1)
    err = fails(endpoint(srv, "HV08"), caplog)
    assert err.kind == "protocol" and "answer to Receive was cut off" in str(err)


def test_http_error_without_soap_body(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject("Command", RawHTTP(503, b"Service Unavailable"), times=1)
    err = fails(endpoint(srv, "HV08"), caplog)
    assert err.kind == "protocol" and "HTTP 503 on Command: Service Unavailable" in str(err)


def test_create_answer_without_shell_id(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(Reply(stdout="x"))
    srv.inject("Create", RawHTTP(200, b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'/>"))
    err = fails(endpoint(srv, "HV08"), caplog)
    assert err.kind == "protocol" and "unexpected answer to Create (StopIteration)" in str(err)


def test_fake_enforces_cmd_exe_limit_that_the_stdin_bootstrap_avoids(wsman: Any) -> None:
    srv = wsman(Reply(stdout="ran"))
    session = winrm.Session(srv.url, auth=("u", SECRET), transport="basic", proxy=None, ca_trust_path=None)
    too_long = session.run_ps("x" * 3062)
    assert (too_long.status_code, too_long.std_err.strip()) == (1, b"The command line is too long.")
    assert run_powershell(endpoint(srv), "x" * 300_000).stdout == b"ran"
    with pytest.raises(ValueError, match="exceeds cmd.exe"):
        build_command_line("Write-Output 1;" * 400)


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("change, expected", [
    ({"allow_unencrypted": False}, "refusing Basic authentication over plain HTTP"),
    ({"transport": "telnet"}, "unknown transport 'telnet'"),
    ({"url": "ftp://hv01/wsman"}, "is not an http(s):// WS-Management URL"),
    ({"url": f"http://u:{SECRET}@127.0.0.1:1/wsman"}, "credentials do not belong in the endpoint URL"),
    ({"transport": "certificate", "url": "https://127.0.0.1:1/wsman"}, "certificate authentication needs cert_pem"),
    ({"password": None}, "basic authentication needs a password"),
    ({"timeout": 0}, "timeout must be a positive number"),
    ({"url": "https://127.0.0.1:1/wsman", "ca_bundle": "/nonexistent/ca.pem"}, "CA bundle not found"),
])
def test_configuration_errors(change: dict[str, Any], expected: str, caplog: pytest.LogCaptureFixture) -> None:
    base = {"node": "HV09", "url": "http://127.0.0.1:1/wsman", "transport": "basic", "username": "u",
            "password": SECRET, "timeout": 2.0, "allow_unencrypted": True}
    err = fails(Endpoint(**{**base, **change}), caplog)
    assert err.kind == "config" and expected in str(err) and str(err).startswith("HV09: ")
    assert err.requests == 0


def test_password_is_not_in_endpoint_repr() -> None:
    ep = Endpoint("HV01", "https://hv01:5986/wsman", "ntlm", "CONTOSO\\svc", SECRET)
    assert SECRET not in repr(ep) and SECRET not in str(ep)


# --- cancellation ---------------------------------------------------------------------------


def test_cancellation_stops_a_run_in_flight_and_cleans_up(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = wsman(NeverFinishes())
    cancel = Cancellation()
    threading.Timer(0.5, cancel.cancel).start()
    began = time.monotonic()
    with cancel.applies():
        err = fails(endpoint(srv, "HV10", timeout=30), caplog)
    assert err.kind == "interrupted"
    assert time.monotonic() - began < 2.0
    assert srv.steps()[-2:] == ["Signal", "Delete"]
    with cancel.applies():  # once cancelled, nothing new starts
        assert fails(endpoint(srv, "HV11"), caplog).requests == 0


def test_handler_sees_the_virtual_node_path(wsman: Any) -> None:
    def answer(req: CommandRequest) -> Reply:
        return Reply(stdout=req.path)

    srv = wsman(answer)
    assert run_powershell(endpoint(srv, url=srv.url_for("HV42/wsman")), "x").stdout == b"/HV42/wsman"


def test_password_appears_nowhere_on_healthy_runs_either(wsman: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Happy Basic and NTLM runs with every logger at DEBUG, progress output included."""
    import io

    from scanner.collect.fleet import NodeJob, collect_nodes
    from scanner.collect.progress import Progress

    caplog.set_level(logging.DEBUG)
    basic = wsman(Reply(stdout=snapshot_json()))
    ntlm = wsman(Reply(stdout=snapshot_json()), auth="ntlm", username="CONTOSO\\svc")
    jobs = [NodeJob("C", endpoint(basic, "HV01")),
            NodeJob("C", endpoint(ntlm, "HV02", transport="ntlm", username="CONTOSO\\svc")),
            NodeJob("C", endpoint(basic, "HV03", password="wrong-" + SECRET))]
    stream = io.StringIO()
    outcomes = collect_nodes(jobs, "x", lambda j, o: parse_snapshot(o.stdout, j.endpoint.node),
                             progress=Progress(stream, isatty=False))
    assert [o.error is None for o in outcomes] == [True, True, False]
    everything = caplog.text + stream.getvalue() + repr(outcomes) + repr(jobs)
    assert "HV03: authentication failed (basic)" in everything
    for secret in secret_forms():
        assert secret not in everything


def test_ctrl_c_in_a_sequential_caller_still_cleans_up(wsman: Any) -> None:
    import os
    import signal

    srv = wsman(NeverFinishes())
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_powershell(endpoint(srv, timeout=30), "x")
    assert time.monotonic() - began < 2.5
    assert srv.steps()[-2:] == ["Signal", "Delete"]


def test_pywinrm_refusing_its_arguments_is_a_config_error(caplog: pytest.LogCaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise winrm.exceptions.WinRMError(f"invalid settings for {kwargs.get('password')}")

    monkeypatch.setattr(transport, "FastProtocol", refuse)
    err = fails(Endpoint("HV09", "https://127.0.0.1:1/wsman", "ntlm", "u", SECRET, timeout=2), caplog)
    assert err.kind == "config" and str(err) == "HV09: WinRMError: invalid settings for ***"


def test_one_watchdog_thread_fires_each_armed_run_once_and_never_a_disarmed_one() -> None:
    dog = transport._Watchdog()
    fired: list[int] = []
    runs = []
    for i in range(40):
        run = transport._Run(Endpoint(f"HV{i}", "http://127.0.0.1:1/wsman"))
        run._expire = lambda i=i: fired.append(i)  # type: ignore[method-assign]
        runs.append(run)
    threads = threading.active_count()
    now = time.monotonic()
    for i, run in enumerate(runs):
        dog.arm(run, now + 0.02 + (i % 5) * 0.01)
    for run in runs[::2]:
        dog.disarm(run)
    dog.arm(runs[0], now + 0.1)  # re-armed later: fires once, at the new time
    dog.arm(runs[1], now + 0.15)  # re-armed: the earlier entry no longer counts
    assert threading.active_count() <= threads + 1
    time.sleep(0.05)
    assert 0 not in fired and 1 not in fired
    deadline = time.monotonic() + 3
    while len(fired) < 21 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert sorted(fired) == [0, *range(1, 40, 2)]
    deadline = time.monotonic() + 3
    while dog._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dog._thread is None  # nothing armed: the thread ended


def test_the_watchdog_thread_ends_as_soon_as_no_run_is_armed() -> None:
    # The offline scan forks only from a single-threaded process: collection leaves no thread.
    dog = transport._Watchdog()
    run = transport._Run(Endpoint("HV01", "http://127.0.0.1:1/wsman"))
    dog.arm(run, time.monotonic() + 60)
    thread = dog._thread
    assert thread is not None and thread.is_alive()
    dog.disarm(run)
    thread.join(2)
    assert not thread.is_alive() and dog._thread is None
