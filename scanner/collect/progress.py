"""Tell the user how a collection is going: one live line on a terminal, log lines otherwise.

Workers call :meth:`Progress.started` from their threads; everything that writes runs in the
thread that drives the pool (``finished``, ``tick``, ``close``), so lines never interleave.
Only node names, cluster names and the already-redacted error lines are ever written, each
through :func:`scanner.term.clean`.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import TextIO

from scanner.term import clean


class Progress:
    """Progress of one fleet collection, written to ``stream``.

    On a terminal (``isatty``): failures as permanent lines, plus one line rewritten in place
    with nodes done / failed / running and the slowest running nodes. Otherwise: one line per
    finished node and a summary every ``summary_every`` seconds.
    """

    def __init__(self, stream: TextIO, isatty: bool | None = None, *, summary_every: float = 30.0,
                 slowest: int = 3, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        if isatty is None:
            probe = getattr(stream, "isatty", None)
            isatty = bool(probe()) if callable(probe) else False
        self.isatty = isatty
        self.summary_every = summary_every
        self.slowest = slowest
        self.clock = clock
        self.total = 0
        self.done = 0
        self.failed = 0
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()
        self._began = clock()
        self._last_summary = self._began
        self._live_line = False

    # called from worker threads

    def started(self, cluster: str, node: str) -> None:
        with self._lock:
            self._running[node] = self.clock()

    # called from the driving thread

    def start(self, total: int) -> None:
        self.total = total
        self._began = self._last_summary = self.clock()
        if not self.isatty:
            self._write(f"collect: {total} node{'s' if total != 1 else ''} to collect\n")
        self.tick()

    def finished(self, cluster: str, node: str, error: str | None, elapsed: float) -> None:
        with self._lock:
            self._running.pop(node, None)
        self.done += 1
        if error:
            self.failed += 1
            reason = error[len(node) + 2:] if error.startswith(f"{node}: ") else error
            self._line(f"collect: {node} ({cluster}) FAILED after {elapsed:.1f} s: {reason}")
        elif not self.isatty:
            self._line(f"collect: {node} ({cluster}) collected in {elapsed:.1f} s")
        if self.isatty:
            self._redraw()

    def tick(self) -> None:
        """Refresh the live line, or write the periodic summary when it is due."""
        if self.isatty:
            self._redraw()
        elif self.clock() - self._last_summary >= self.summary_every:
            self._last_summary = self.clock()
            self._write(clean(f"collect: {self.status()}") + "\n")

    def close(self, interrupted: bool = False) -> None:
        took = self.clock() - self._began
        ok = self.done - self.failed
        text = f"collected {ok} of {self.total} nodes in {took:.1f} s"
        if self.failed:
            text += f", {self.failed} failed"
        if interrupted:
            text = f"interrupted: {text}, {self.total - self.done} not finished"
        self._line(f"collect: {text}")

    def status(self) -> str:
        """``12/205 done, 2 failed, 32 running; slowest: HV07 4.9 s, HV08 4.8 s``."""
        now = self.clock()
        with self._lock:
            running = sorted(self._running.items(), key=lambda kv: kv[1])
        text = f"{self.done}/{self.total} done, {self.failed} failed, {len(running)} running"
        if running:
            slow = ", ".join(f"{node} {now - since:.1f} s" for node, since in running[: self.slowest])
            text += f"; slowest: {slow}"
        return text

    # output

    def _redraw(self) -> None:
        width = shutil.get_terminal_size((100, 24)).columns
        text = clean(f"collect: {self.status()}")
        if len(text) >= width:
            text = text[: max(10, width - 2)] + "…"
        self._write("\r\x1b[2K" + text)
        self._live_line = True

    def _line(self, text: str) -> None:
        if self._live_line:
            self._write("\r\x1b[2K")
            self._live_line = False
        self._write(clean(text) + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the collection
            pass
