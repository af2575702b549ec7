"""Tell the user how a collection is going: one live line on a terminal, log lines otherwise."""

from __future__ import annotations

from typing import TextIO


class Progress:
    """Progress of a fleet collection, written to ``stream``."""

    def __init__(self, stream: TextIO, isatty: bool | None = None, total: int = 0) -> None:
        self.stream = stream
        self.isatty = stream.isatty() if isatty is None else isatty
        self.total = total
