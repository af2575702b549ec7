"""Passwords by reference: an environment variable, an owner-only file or the system keyring.

Shared by the inventory (WinRM) and the mail settings (SMTP), so both refuse the same things in
the same words. Each function returns the secret or raises :class:`SecretError` with the
problem and the fix; the caller adds where the reference was written. A secret never appears in
a message.
"""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path


class SecretError(Exception):
    """A password reference that cannot be resolved; ``str()`` is the problem and its fix."""


def from_env(variable: str, environ: Mapping[str, str]) -> str:
    value = environ.get(variable)
    if not value:
        state = "is empty" if value == "" else "is not set"
        raise SecretError(f"environment variable {variable} {state}; export it with the password "
                          "before running lmscan")
    return value


def owner_only(path: Path, what: str = "password file") -> None:
    """Refuse a file that is missing, not a file, or readable by group or others (on POSIX)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise SecretError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"{what} {path} is not a file")
    if os.name != "nt" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{what} {path} can be read by other users; restrict it with: chmod 600 {path}")


def from_file(path: Path) -> str:
    """The first line of an owner-only file (group and others may not read it on POSIX)."""
    owner_only(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"cannot read password file {path}: {exc}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise SecretError(f"password file {path} is empty")
    return secret


def from_keyring(service: str, user: str) -> str:
    try:
        keyring = importlib.import_module("keyring")  # optional: only needed for password_keyring
    except ImportError:
        raise SecretError("password_keyring needs the keyring package: pip install keyring") from None
    try:
        secret = keyring.get_password(service, user)
    except Exception as exc:  # noqa: BLE001 - any keyring backend failure, said in one line
        raise SecretError(f"the system keyring failed: {type(exc).__name__}: {exc}") from None
    if not secret:
        raise SecretError(f"no password in the system keyring for service '{service}' and user "
                          f"'{user}'; store one with: keyring set {service} {user}")
    return str(secret)
