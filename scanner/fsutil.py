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


def write_temp(path: Path, data: bytes, mode: int = 0o666) -> str:
    """Write ``data`` to a new temporary file beside ``path`` (synced, ``mode`` less the umask) and
    return its name; the caller renames it into place. Nothing is left behind on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode & ~UMASK)   # mkstemp alone would leave 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp


def atomic_write(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: readers never see half a file.

    The file gets ``mode`` less the umask, as an ordinary ``open()`` would give it; pass ``0o600``
    for files only the owner may read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


#: What the write probe writes: enough that a full file system says so (an empty file may fit).
PROBE_BYTES = 64 * 1024


def check_can_write(directory: Path) -> None:
    """Write, sync and remove a probe file where ``directory`` is (or would be created), so a
    read-only or full file system shows up before a long collection, not after it.

    Nothing is created when ``directory`` does not exist yet: the probe goes into its nearest
    existing ancestor. Raises :class:`OSError` (``filename`` set) when it cannot write.
    """
    target = Path(directory)
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(target))
    fd, tmp = tempfile.mkstemp(prefix=".lmscan-probe.", dir=target)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(PROBE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        exc.filename = exc.filename or str(target)
        raise
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
