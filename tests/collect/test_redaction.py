"""An error that echoes the password shows no part of it, in any encoding (issue 7 item 14).

Real pywinrm against the loopback WS-Man fake: the node (or a proxy in front of it) answers a
request with an HTTP error or an error stream whose text carries the password, placed so that
the error line's cut falls inside it, as it did when redaction ran after truncation.
"""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from scanner.collect import collect_inventory
from scanner.collect.inventory import ClusterPlan, Inventory
from scanner.collect.transport import Endpoint, NodeError, redact, run_powershell

from .fakewsman import CommandRequest, FakeWSMan, RawHTTP, Reply, clixml_error

USER = "CONTOSO\\svc-lmscan"
#: Has characters every encoding below changes: space, &, <, ", /, +, %. (Basic authentication
#: sends Latin-1, so the end-to-end tests use ASCII; the unit test adds non-ASCII.)
PASSWORD = "Pw 7f&3a<9c\"/Un+iq%e-x"


def forms(password: str = PASSWORD, user: str = USER) -> dict[str, str]:
    """The password as an echo may carry it."""
    u16 = password.encode("utf-16-le")
    return {
        "plain": password,
        "base64": base64.b64encode(password.encode()).decode(),
        "basic-header": base64.b64encode(f"{user}:{password}".encode()).decode(),
        "base64-urlsafe": base64.urlsafe_b64encode(password.encode()).decode(),
        "url-quote": urllib.parse.quote(password),
        "url-quote-plus": urllib.parse.quote_plus(password),
        "percent-every-byte": "".join(f"%{b:02X}" for b in password.encode()),
        "percent-lowercase": "".join(f"%{b:02x}" for b in password.encode()),
        "xml-escaped": html.escape(password),
        "char-refs": "".join(f"&#{ord(c)};" for c in password),
        "json-escaped": json.dumps(password)[1:-1],
        "json-ascii": json.dumps(password, ensure_ascii=True).replace("/", "\\/")[1:-1],
        "utf16le-base64": base64.b64encode(u16).decode(),
        # PowerShell -EncodedCommand of a script that carries the password, at each alignment.
        **{f"encoded-command-{k}": base64.b64encode(("x" * k + f"$p='{password}'").encode("utf-16-le")).decode()
           for k in range(3)},
    }


def leaked(text: str, secret: str, size: int = 6) -> str | None:
    """A piece of ``secret`` (``size`` characters, or all of a shorter one) found in ``text``."""
    n = min(size, len(secret))
    return next((secret[i:i + n] for i in range(len(secret) - n + 1) if secret[i:i + n] in text), None)


def decoded_leak(text: str, password: str = PASSWORD) -> str | None:
    """A piece of the password (4+ characters) that base64 anywhere in ``text`` decodes to."""
    for run in re.findall(r"[A-Za-z0-9+/_-]{4,}", text):
        run = run.translate(str.maketrans("-_", "+/"))
        for start in range(4):
            chunk = run[start:]
            chunk = chunk[: len(chunk) // 4 * 4]
            try:
                raw = base64.b64decode(chunk)
            except ValueError:
                continue
            for data in (raw, raw[1:]):
                for enc in ("utf-8", "utf-16-le"):
                    piece = leaked(data.decode(enc, errors="ignore"), password, 4)
                    if piece:
                        return piece
    return None


def leaked_anyhow(text: str, form: str, secret: str, password: str = PASSWORD) -> str | None:
    """The password, or a piece of this form of it, or base64 that decodes to a piece of it."""
    if form.startswith("encoded-command"):
        return decoded_leak(text, password)
    return leaked(text, secret.replace("=", "")) or decoded_leak(text, password)


def endpoint(srv: FakeWSMan) -> Endpoint:
    return Endpoint("HV01", srv.url, "basic", USER, PASSWORD, timeout=5, allow_unencrypted=True)


@pytest.mark.parametrize("form", list(forms()))
def test_issue7_item14_http_error_body_echoing_the_password_is_redacted_before_the_cut(
        wsman: Callable[..., FakeWSMan], form: str) -> None:
    secret = forms()[form]
    srv = wsman(username=USER, password=PASSWORD)
    for pad in (60, 75):   # the error line shows 80 characters of the body: the cut falls inside
        srv.inject("Create", RawHTTP(500, ("x" * pad + secret + " trailing text").encode(), "text/plain"), times=1)
        with pytest.raises(NodeError) as info:
            run_powershell(endpoint(srv), "Get-Cluster")
        text = str(info.value)
        assert "HTTP 500 on Create" in text, text
        assert "***" in text or form.startswith("encoded-command"), text
        assert leaked_anyhow(text, form, secret) is None, (form, text)


@pytest.mark.parametrize("form", ["plain", "base64", "utf16le-base64", "url-quote", "xml-escaped"])
def test_issue7_item14_error_stream_echoing_the_password_never_shows_a_piece_of_it(
        wsman: Callable[..., FakeWSMan], form: str) -> None:
    secret = forms()[form]

    def handler(req: CommandRequest) -> Reply:
        return Reply(stderr=clixml_error("y" * 280 + " logon failed for " + secret), exit_code=1)

    srv = wsman(handler, username=USER, password=PASSWORD)
    ep = endpoint(srv)
    inventory = Inventory("inline", (ClusterPlan("C1", (ep,), None),))
    [outcome] = collect_inventory(inventory, workers=1)
    assert outcome.error is not None and "collector failed" in outcome.error
    assert leaked_anyhow(outcome.error, form, secret) is None, outcome.error


@pytest.mark.parametrize("password", [PASSWORD, "Pässwort-東京-€uro", "a+b/c=d?e#f"])
def test_redact_covers_every_form_and_keeps_other_text(password: str) -> None:
    ep = Endpoint("HV01", "http://hv01:5985/wsman", "basic", USER, password)
    for name, secret in forms(password).items():
        out = redact(f"before {secret} after", ep)
        assert out.startswith("before ") and out.endswith(" after"), (name, out)
        assert leaked_anyhow(out, name, secret, password) is None, (name, out)
    assert redact("nothing secret here: Pw 7f", ep) == "nothing secret here: Pw 7f"
    assert redact("https://u:pw@hv01/wsman", ep) == "https://hv01/wsman"


def test_utf16_text_read_one_byte_at_a_time_is_redacted() -> None:
    ep: Any = Endpoint("HV01", "http://hv01:5985/wsman", "basic", USER, PASSWORD)
    raw = ("error: " + PASSWORD).encode("utf-16-le").decode("latin-1")
    assert "***" in redact(raw, ep) and "7\x00f\x00&" not in redact(raw, ep)
