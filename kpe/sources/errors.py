"""Errors shared by the source readers."""

from __future__ import annotations

from pathlib import Path


class SourceFileError(RuntimeError):
    """A source file cannot be read to its end (truncated, malformed, undecodable).

    A reader raises it only after every complete record before the problem has been yielded, so the
    caller keeps those records and marks the file partial. ``items_read`` says how many items
    (records, deletions, bad records) were yielded before the problem; ``line`` is the line of the
    (decompressed) input where the problem was found, when the parser knows it. The message names the file
    by its full path.
    """

    def __init__(self, path: str | Path, problem: str, *, line: int | None = None, items_read: int = 0) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.items_read = items_read
        where = f" at line {line}" if line else ""
        super().__init__(f"{path}: {problem}{where} (after {items_read} items)")
