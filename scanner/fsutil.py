"""Small file-system helpers shared by every writer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once: os.umask() is process-wide and not thread-safe to toggle


def atomic_write(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: readers never see half a file.

    The file gets ``mode`` less the umask, as an ordinary ``open()`` would give it (mkstemp alone
    would leave 0600); pass ``0o600`` for files only the owner may read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode & ~UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
