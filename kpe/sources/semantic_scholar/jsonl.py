"""Reading S2 JSON lines: the decompressed lines of a file (gzip or not, whatever its name), each parsed or
turned into a ``BadRecord``; field helpers shared by every S2 format (text, ints, corpus ids, external ids).

Robustness per line: invalid UTF-8, invalid JSON, or a line that is not an object -> ``BadRecord`` with the line
number; a truncated or corrupt gzip -> every complete line before it, then ``FileProblem``, which ``counted``
turns into ``SourceFileError`` with the number of items yielded before it.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kpe.records import BadRecord, SourceItem
from kpe.sources.errors import SourceFileError
from kpe.sources.stream import DecompressedChunks

SOURCE = "s2"
SNIPPET_CHARS = 300

MAX_JSON_DOCUMENT_BYTES = 256 * 1024 * 1024

_EXTERNAL_ID_NAMES = {
    "pubmed": "pmid",
    "pubmedcentral": "pmcid",
    "corpusid": "s2",
    "doi": "doi",
    "mag": "mag",
    "arxiv": "arxiv",
    "acl": "acl",
    "dblp": "dblp",
}

_ID_IN_LINE = re.compile(rb'"(?:corpusid|corpusId|paper_id|paperId)"\s*:\s*"?([0-9A-Za-z]+)')


class FileProblem(Exception):
    """A fatal problem inside one file; turned into ``SourceFileError`` with the item count by ``counted``."""

    def __init__(self, path: Path, problem: str, line: int | None) -> None:
        super().__init__(problem)
        self.path, self.problem, self.line = path, problem, line


def counted(items: Iterator[SourceItem]) -> Iterator[SourceItem]:
    n = 0
    try:
        for item in items:
            n += 1
            yield item
    except FileProblem as exc:
        raise SourceFileError(exc.path, exc.problem, line=exc.line, items_read=n) from exc.__cause__


# Low-level reading ---------------------------------------------------------------------------------------
def open_binary(path: Path) -> BinaryIO:
    """The decompressed bytes of ``path``: gzip is detected by its magic number, not the name."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # type: ignore[return-value]


def snippet(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw[: SNIPPET_CHARS * 4].decode("utf-8", "replace")
    return raw[:SNIPPET_CHARS]


def _id_from_line(raw: bytes) -> str | None:
    match = _ID_IN_LINE.search(raw[:4096])
    return match.group(1).decode("ascii") if match else None


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRecord, str]]:
    """``(line number, parsed object or BadRecord, raw line)`` for every non-blank line of a JSONL file."""
    line_no = 0
    try:
        for raw in _raw_lines(path):
            line_no += 1
            stripped = raw.strip()
            if line_no == 1 and stripped.startswith(b"\xef\xbb\xbf"):
                stripped = stripped[3:]
            if not stripped:
                continue
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, BadRecord(SOURCE, _id_from_line(stripped), f"invalid UTF-8 at line {line_no}: {exc}",
                                         snippet(stripped)), ""
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line_no, BadRecord(SOURCE, _id_from_line(stripped),
                                         f"invalid JSON at line {line_no}: {exc.msg} (column {exc.colno})",
                                         snippet(text)), text
                continue
            if not isinstance(obj, dict):
                yield line_no, BadRecord(SOURCE, None,
                                         f"not a JSON object at line {line_no}: {type(obj).__name__}",
                                         snippet(text)), text
                continue
            yield line_no, obj, text
    except _TruncatedStream as exc:
        raise FileProblem(path, f"truncated or corrupt file ({exc})", line_no + 1) from None


class _TruncatedStream(Exception):
    """The decompressed stream ended before the file's proper end (the message says why)."""


def _raw_lines(path: Path) -> Iterator[bytes]:
    """The lines of the decompressed file (without their line break). Every complete line before a truncated
    or corrupt gzip end is yielded (unlike ``gzip.open``, which drops the last buffered block), then
    ``_TruncatedStream``; the incomplete last line is not yielded then. A missing or unreadable file raises
    ``OSError`` at once, not as a "corrupt file" problem."""
    chunks = DecompressedChunks(path)
    source = iter(chunks)
    pending = b""
    first = next(source, b"")  # opens the file: OSError here
    for chunk in itertools.chain((first,), source):
        lines = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
        pending = lines.pop()
        yield from lines
    if chunks.problem and chunks.problem != "empty file":
        raise _TruncatedStream(chunks.problem)
    if pending:
        yield pending


def as_text(value: Any) -> str | None:
    """A string field as published; ``None`` for null / empty; lone surrogates replaced (Arrow needs UTF-8)."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if value == "":
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


MAX_CORPUS_ID = 2**63 - 1


def corpus_id(value: Any) -> int | None:
    """A corpus id: a positive integer (or its digits) up to 2^63-1; ``None`` for anything else."""
    number = as_int(value)
    return number if number is not None and 1 <= number <= MAX_CORPUS_ID else None


def id_problem(value: Any) -> str:
    """What is wrong with an id value, for a quarantine reason ("" when it is missing)."""
    if value is None:
        return ""
    return f": {str(value)[:40]!r} is not an id in 1..2^63-1"


def records_with_corpus_id(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any], str] | BadRecord]:
    """Each JSON line of ``path`` as ``(corpusid, obj, raw)``; a line that is not JSON, or whose ``corpusid`` is not
    valid, comes as a ``BadRecord`` ("<what> record without a valid corpusid at line N ...")."""
    for line_no, obj, raw in json_lines(path):
        if isinstance(obj, BadRecord):
            yield obj
            continue
        corpusid = corpus_id(obj.get("corpusid"))
        if corpusid is None:
            yield BadRecord(SOURCE, None, f"{what} record without a valid corpusid at line {line_no}"
                            f"{id_problem(obj.get('corpusid'))}", snippet(raw))
        else:
            yield corpusid, obj, raw


def s2_external_ids(raw: Any, names: dict[str, str] | None = None) -> dict[str, str]:
    """S2 ``externalIds`` with keys lowercased and renamed (``PubMed`` -> ``pmid``, ``CorpusId`` -> ``s2``...)."""
    names = names or _EXTERNAL_ID_NAMES
    out: dict[str, str] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        if value is None or isinstance(value, (dict, list, bool)):
            continue
        value = str(value).strip()
        if value:
            out[names.get(str(key).lower(), str(key).lower())] = value
    return out


def head_lines(path: Path, max_lines: int = 20, max_line_bytes: int = 32 << 20,
               max_bytes: int = 64 << 20) -> list[bytes]:
    """The first lines of the decompressed file (fewer when it is short, truncated or not line-based)."""
    lines: list[bytes] = []
    total = 0
    try:
        with open_binary(path) as fh:
            while len(lines) < max_lines and total < max_bytes:
                line = fh.readline(max_line_bytes)
                if not line:
                    break
                lines.append(line)
                total += len(line)
    except (EOFError, OSError, zlib.error):
        pass
    return lines


def parse_line(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def looks_like_jsonl(path: Path) -> bool:
    """True when one of the first non-blank lines is a JSON object on its own (not a pretty-printed document)."""
    lines = [line for line in head_lines(path, max_lines=10) if line.strip()][:5]
    return any(isinstance(parse_line(line), (dict, list)) for line in lines)

