"""One base error, one subclass per stage; the CLI turns each into an exit code and one line."""

from __future__ import annotations


class ScannerError(Exception):
    """Base of every error lmscan raises on purpose.

    ``str(err)`` is the one line shown to the user: which file, where, what is wrong and,
    where it helps, what to do.
    """


class InputError(ScannerError):
    """Bad user input (policy, rule pack, snapshot, inventory, arguments): exit code 2."""

    def __init__(self, source: object, problem: str, where: str | None = None) -> None:
        self.source = str(source)
        self.where = where
        self.problem = problem
        place = f"{self.source}:{where}" if where else self.source
        super().__init__(f"{place}: {problem}")


class RenderError(ScannerError):
    """A report could not be produced or written."""


class CollectionError(ScannerError):
    """One node could not be collected. Never fatal to a scan: it becomes that node's error."""
