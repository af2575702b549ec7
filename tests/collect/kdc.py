"""A real MIT Kerberos KDC on loopback, in a temporary directory, for the Kerberos tests.

Written for lmscan with Debian's ``krb5-kdc`` tools (``kdb5_util``, ``kadmin.local``,
``krb5kdc``): a realm, a service principal ``HTTP/localhost`` with its keytab, client
principals with keytabs, and a ``krb5.conf`` handed to the library through ``KRB5_CONFIG``.
The KDC listens on 127.0.0.1 only, on a port picked free at start, so several test runs on
one machine do not collide. One KDC serves a whole test session; :meth:`KDC.stop` and
:meth:`KDC.start` let a test take it away and bring it back.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

REALM = "LMSCAN.TEST"
SERVICE_HOST = "localhost"
CLIENT = "svc-lmscan"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


def missing_tools() -> list[str]:
    """The KDC programs this machine lacks (looked up in sbin too, where Debian puts them)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    return [t for t in TOOLS if shutil.which(t, path=path) is None]


def _tool(name: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise RuntimeError(f"{name} not found (Debian: apt-get install krb5-kdc krb5-admin-server krb5-user)")
    return found


def _die_with_parent() -> None:
    """In the child: be terminated when the test process ends, even if it is killed before its
    teardown could stop the KDC (Linux prctl PR_SET_PDEATHSIG; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port = int(tcp.getsockname()[1])
        udp.bind(("127.0.0.1", port))  # the KDC wants both on one port
        return port


class KDC:
    """One realm: ``kdc.keytab(name)`` writes a keytab, ``kdc.kinit(...)`` a ticket cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.realm = REALM
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.krb5_conf = root / "krb5.conf"
        self.kdc_conf = root / "kdc.conf"
        self.service_keytab = root / "http.keytab"
        self.client_keytab = root / "client.keytab"
        self.env = dict(os.environ, KRB5_CONFIG=str(self.krb5_conf), KRB5_KDC_PROFILE=str(self.kdc_conf))
        self.env.pop("KRB5CCNAME", None)

    # setup

    def create(self) -> KDC:
        self.port = _free_port()
        self._write_config()
        self._run("kdb5_util", "create", "-s", "-r", self.realm, "-P", "master-key-for-tests")
        self.admin(f"addprinc -randkey HTTP/{SERVICE_HOST}",
                   f"ktadd -k {self.service_keytab} HTTP/{SERVICE_HOST}",
                   f"addprinc -randkey {CLIENT}",
                   f"ktadd -k {self.client_keytab} {CLIENT}")
        os.chmod(self.client_keytab, 0o600)
        self.start()
        return self

    def _write_config(self) -> None:
        r = self.root
        self.kdc_conf.write_text(
            "[kdcdefaults]\n"
            f" kdc_listen = 127.0.0.1:{self.port}\n kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "[realms]\n"
            f" {self.realm} = {{\n  database_name = {r}/principal\n  key_stash_file = {r}/stash\n"
            f"  acl_file = {r}/kadm5.acl\n  max_life = 10h\n  max_renewable_life = 1d\n"
            "  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n"
            "  default_principal_flags = +preauth\n }\n"
            "[logging]\n"
            f" kdc = FILE:{r}/kdc.log\n"
        )
        (r / "kadm5.acl").write_text("")
        self.write_krb5_conf(self.krb5_conf)

    def write_krb5_conf(self, path: Path, *, kdc_port: int | None = None) -> Path:
        """A client krb5.conf for this realm (``kdc_port`` points it elsewhere, e.g. nowhere)."""
        path.write_text(
            "[libdefaults]\n"
            f" default_realm = {self.realm}\n"
            " dns_lookup_kdc = false\n dns_lookup_realm = false\n dns_canonicalize_hostname = false\n"
            " rdns = false\n udp_preference_limit = 1\n kdc_timeout = 2s\n max_retries = 1\n"
            "[realms]\n"
            f" {self.realm} = {{\n  kdc = 127.0.0.1:{kdc_port or self.port}\n }}\n"
            "[domain_realm]\n"
            f" {SERVICE_HOST} = {self.realm}\n"
        )
        return path

    def _run(self, tool: str, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run([_tool(tool), *args], input=stdin, env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode != 0 or "error" in done.stderr.lower() and tool == "kadmin.local":
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def admin(self, *commands: str) -> str:
        """Run kadmin.local commands against the realm's database (one process for all)."""
        return self._run("kadmin.local", "-r", self.realm, stdin="\n".join(commands) + "\n")

    # lifecycle

    def start(self) -> None:
        """Start krb5kdc in the foreground on the realm's port; wait until it answers on TCP."""
        log = open(self.root / "krb5kdc.out", "ab")  # noqa: SIM115  (kept by the child)
        self.proc = subprocess.Popen([_tool("krb5kdc"), "-n", "-r", self.realm], env=self.env,
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"krb5kdc exited with {self.proc.returncode}: "
                                   f"{(self.root / 'krb5kdc.out').read_text(errors='replace')[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("krb5kdc did not start listening within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    # credentials for tests

    def principal(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.realm}"

    def add_client(self, name: str, keytab: Path, *options: str) -> Path:
        """A new client principal with a random key, written to ``keytab`` (mode 600)."""
        self.admin(f"addprinc -randkey {' '.join(options)} {name}", f"ktadd -k {keytab} {name}")
        os.chmod(keytab, 0o600)
        return keytab

    @staticmethod
    def copy_keytab(src: Path, dst: Path, *, realm: str) -> Path:
        """``src`` with every entry moved to ``realm`` (keys unchanged), mode 600: a keytab made
        for another realm."""
        data = src.read_bytes()
        out, pos = bytearray(data[:2]), 2
        while pos + 4 <= len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            entry = data[pos + 4:pos + 4 + abs(size)]
            pos += 4 + abs(size)
            if size <= 0:
                continue
            (old,) = struct.unpack_from(">H", entry, 2)
            entry = entry[:2] + struct.pack(">H", len(realm)) + realm.encode() + entry[4 + old:]
            out += struct.pack(">i", len(entry)) + entry
        dst.write_bytes(bytes(out))
        dst.chmod(0o600)
        return dst

    def kinit(self, ccache: Path, *, lifetime: str | None = None, principal: str = CLIENT,
              keytab: Path | None = None) -> Path:
        """A ticket cache for ``principal`` obtained with its keytab, as ``kinit -k`` does."""
        args = ["-k", "-t", str(keytab or self.client_keytab), "-c", f"FILE:{ccache}"]
        if lifetime:
            args += ["-l", lifetime]
        self._run("kinit", *args, self.principal(principal))
        return ccache


def skew_ccache(ccache: Path, seconds: int) -> None:
    """Make the client's clock ``seconds`` off for this cache, as MIT's kdc_timesync records it.

    A version 4 FILE cache carries a header tag 1 (the client's offset to the KDC's time); the
    library adds it to its own clock for every request it builds from this cache, so the KDC
    and the server see timestamps that far off: a real clock skew, with no fake clock."""
    data = ccache.read_bytes()
    if data[:2] != b"\x05\x04":
        raise ValueError(f"{ccache} is not a version 4 credential cache")
    header_len = struct.unpack(">H", data[2:4])[0]
    tag = struct.pack(">HHii", 1, 8, seconds, 0)
    ccache.write_bytes(data[:2] + struct.pack(">H", len(tag)) + tag + data[4 + header_len:])
