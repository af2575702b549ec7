"""Write a scan's report files as one set: all of them, or none of them.

A scan may write several reports (one per format in :data:`scanner.render.FORMATS`, from CLI
options or a config file's ``outputs:``). A full disk or a bad path while writing the third must
not leave the first two replaced, and two scans writing into one directory at the same time
must not leave a mix of both. So:

* :func:`check_outputs` refuses, before anything is scanned, report paths that are directories,
  that two formats share, or that would overwrite (or later be read as) an input file; paths are
  compared after resolving symbolic links and relative parts;
* :func:`write_files` takes the finished bytes of every report, holds an exclusive ``flock`` on
  every target directory itself (no lock file is left behind), writes each report to a
  temporary file beside its target, and renames them into place only when all were written.
  Any failure removes the temporary files and leaves the old reports as they were.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from scanner.errors import InputError
from scanner.fsutil import write_temp

STDOUT = "-"  # a report path of "-" means standard output
#: How long a scan waits for another one to finish writing into the same directory.
LOCK_WAIT = 120.0
#: Inputs read from directories, by suffix: a report with one of these names inside such a
#: directory would be read as input by the next scan.
INPUT_SUFFIXES = (".json", ".yaml", ".yml")


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def check_outputs(outputs: Mapping[str, Path], inputs: Iterable[Path] = ()) -> None:
    """Refuse report paths that cannot be written or that would clobber an input (InputError)."""
    to_stdout = [fmt for fmt, p in outputs.items() if str(p) == STDOUT]
    if len(to_stdout) > 1:
        raise InputError("arguments", "only one report can go to standard output ('-'), not "
                         + " and ".join(f"--{f}" for f in to_stdout))
    seen: dict[Path, str] = {}
    for fmt, path in outputs.items():
        if str(path) == STDOUT:
            continue
        if path.is_dir():
            raise InputError(path, f"--{fmt} names a directory; give a file name")
        parent = path.parent if str(path.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise InputError(path, f"cannot write --{fmt}: {parent} is not a directory")
        real = _resolved(path)
        if real in seen:
            raise InputError(path, f"--{fmt} and --{seen[real]} would write the same file ({real}); "
                             "give each report its own path")
        seen[real] = fmt
    for raw in inputs:
        src = _resolved(raw)
        for real, fmt in seen.items():
            if real == src:
                raise InputError(raw, f"--{fmt} would overwrite this input file; write the report elsewhere")
            if not raw.is_file() and real.is_relative_to(src) and real.suffix.casefold() in INPUT_SUFFIXES:
                raise InputError(raw, f"--{fmt} report {real.name} would be written inside this input "
                                 "directory and read as input by the next scan; write it elsewhere")


@contextmanager
def locked(directory: Path, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the exclusive lock of ``directory`` (created if needed) while the block runs.

    The lock is an ``flock`` on the directory's own descriptor: every lmscan writing there
    takes it, and it goes away with the process, however that ends.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        until = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= until:
                    raise OSError(exc.errno, f"another lmscan has been writing into {directory} "
                                  f"for {wait:.0f} s", str(directory)) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_files(files: Mapping[Path, bytes], mode: int = 0o666) -> None:
    """Write every file or none: temporary files first, then one rename each, under the locks.

    Raises :class:`OSError` (with ``filename`` set to the report that failed) after removing the
    temporary files; existing files are then untouched.
    """
    if not files:
        return
    dirs = sorted({_resolved(p).parent for p in files})   # one order for every process: no deadlock
    temps: dict[Path, str] = {}
    with ExitStack() as stack:
        for d in dirs:
            try:
                stack.enter_context(locked(d))
            except OSError as exc:
                exc.filename = exc.filename or str(d)
                raise
        try:
            for path, data in files.items():
                try:
                    temps[path] = write_temp(_resolved(path), data, mode)
                except OSError as exc:
                    exc.filename = str(path)
                    raise
            for path in list(temps):
                os.replace(temps[path], _resolved(path))
                del temps[path]
            for d in dirs:
                _fsync_dir(d)
        finally:
            for tmp in temps.values():
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
