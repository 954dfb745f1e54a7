"""Semantic Scholar inputs: command-line inputs (files, folders, globs, URLs) -> ordered ingest units, and the
``SEMANTIC_SCHOLAR`` source (:class:`kpe.sources.base.Source`) registered in :mod:`kpe.sources`."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpe.records import SourceItem
from kpe.sources.base import InputSpec, failed_spec, local_files, localize_inputs, unreadable
from kpe.sources.errors import SourceFileError
from kpe.sources.semantic_scholar.formats import S2Kind, detect_s2_format, read_s2_unit, reader_for
from kpe.sources.semantic_scholar.jsonl import SOURCE

log = logging.getLogger(__name__)

_SKIP_SUFFIXES = (".part", ".md5", ".txt", ".md", ".yaml", ".yml", ".sqlite", ".csv", ".tsv")


def iter_s2_file(path: Path) -> Iterator[SourceItem]:
    """Items of one local S2 file (format detected) or folder (every unit of ``expand_s2_inputs([folder])``)."""
    path = Path(path)
    if path.is_dir():
        return (item for unit in expand_s2_inputs([path]) for item in unit.iter_items())
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    kind = detect_s2_format(path)
    return reader_for(kind, path)


@dataclass(frozen=True, slots=True)
class S2Input:
    """One ingest unit: a stable ``name`` (the watermark key), its ``kind`` and local ``paths`` in reading
    order. For ``kind == "datasets"``, ``abstract_paths`` lists which of ``paths`` are abstracts."""

    name: str
    kind: S2Kind
    paths: tuple[Path, ...]
    abstract_paths: tuple[Path, ...] = ()

    @property
    def uri(self) -> str:
        """Where the unit was read from: its file, or the folder holding its files."""
        if len(self.paths) == 1:
            return str(self.paths[0])
        return os.path.commonpath([str(p.resolve()) for p in self.paths])

    def iter_items(self, *, work_dir: Path | None = None) -> Iterator[SourceItem]:
        """The unit's items (``work_dir``: where a large abstracts index may go)."""
        return read_s2_unit(self.kind, self.paths, abstract_paths=self.abstract_paths, work_dir=work_dir)

    def sha256(self) -> str:
        """The sha256 of the one file, or for several files of ``"<name> <sha256>\\n"`` lines in order."""
        digests = []
        for path in self.paths:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            digests.append((path.name, digest.hexdigest()))
        if len(digests) == 1:
            return digests[0][1]
        return hashlib.sha256("".join(f"{n} {d}\n" for n, d in digests).encode()).hexdigest()


def _unique_name(path: Path, taken: set[str]) -> str:
    name = path.name
    if name in taken:
        name = f"{path.parent.name}/{path.name}"
    taken.add(name)
    return name


def expand_s2_inputs(paths: Iterable[str | Path], *, problems: list[tuple[str, str]] | None = None) -> list[S2Input]:
    """Ordered ingest units for CLI inputs (files, folders searched recursively, globs).

    - All ``papers`` and ``abstracts`` files form one ``datasets`` unit, placed where the first of them
      appeared; its name is ``"<papers file>+<abstracts file>"`` for one of each, else
      ``"papers+abstracts@<common folder>"``. Abstracts without any papers file: ``ValueError``.
    - Every other paper file is a unit named by its file name (``parent/name`` if two share a name).
    - Delete units come last, so a delete is applied after the updates it belongs with.
    - An explicitly named file that is not S2 paper data raises ``SourceFileError``; in folders and globs
      such files (READMEs, authors, citations, ``.part`` / ``.md5``...) are skipped with a warning.
    - The same file named twice is used once.

    With ``problems`` (a list), nothing is raised for one bad input: ``(full path, message)`` is appended for an
    input that is not found, a file that cannot be opened (a symlink loop, no permission; also inside folders,
    where it would otherwise be skipped), an explicitly named file that is not S2 paper data, and abstracts
    files without papers; the other inputs are planned as usual.
    """
    units: list[S2Input | None] = []
    datasets_at: int | None = None
    papers: list[Path] = []
    abstracts: list[Path] = []
    deletes: list[Path] = []
    seen: set[Path] = set()
    taken: set[str] = set()
    for spec in paths:
        try:
            files, from_folder = local_files(spec)
        except FileNotFoundError as exc:
            if problems is None:
                raise
            problems.append((os.path.abspath(os.path.expanduser(str(spec))), str(exc)))
            continue
        for path in files:
            full = os.path.abspath(path)
            if (problem := unreadable(path)) is not None:
                if problems is not None:
                    problems.append((full, f"{full}: cannot read: {problem}"))
                elif not from_folder:
                    raise SourceFileError(full, f"cannot read: {problem}")
                else:
                    log.warning("skipping %s: cannot read: %s", full, problem)
                continue
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if from_folder and (path.name.lower().startswith("readme") or path.name.lower().endswith(_SKIP_SUFFIXES)):
                log.debug("skipping %s (not a data file)", path)
                continue
            kind = detect_s2_format(path)
            if kind == "unsupported":
                if not from_folder:
                    error = SourceFileError(full, "not a Semantic Scholar paper file (papers, abstracts, s2orc, "
                                                  "Graph API JSON or delete file expected)")
                    if problems is None:
                        raise error
                    problems.append((full, str(error)))
                    continue
                log.warning("skipping %s: not Semantic Scholar paper data", path)
                continue
            if kind in ("papers", "abstracts"):
                (papers if kind == "papers" else abstracts).append(path)
                if datasets_at is None:
                    datasets_at = len(units)
                    units.append(None)  # placeholder for the datasets unit
            elif kind == "deletes":
                deletes.append(path)
            else:
                units.append(S2Input(_unique_name(path, taken), kind, (path,)))
    if abstracts and not papers:
        message = ("abstracts files need their papers files (joined on corpusid): "
                   + ", ".join(os.path.abspath(p) for p in abstracts))
        if problems is None:
            raise ValueError(message)
        problems.extend((os.path.abspath(p), message) for p in abstracts)
        abstracts, datasets_at = [], None
        units = [u for u in units if u is not None]
    if datasets_at is not None:
        if len(papers) == 1 and len(abstracts) <= 1:
            name = "+".join(p.name for p in (*papers, *abstracts))
        else:
            common = Path(os.path.commonpath([str(p.resolve()) for p in (*papers, *abstracts)]))
            name = f"papers+abstracts@{common.name or common}"
        taken.add(name)
        units[datasets_at] = S2Input(name, "datasets", (*papers, *abstracts), tuple(abstracts))
    result = [u for u in units if u is not None]
    result.extend(S2Input(_unique_name(path, taken), "deletes", (path,)) for path in deletes)
    return result


class SemanticScholarSource:
    """Semantic Scholar files as a :class:`kpe.sources.base.Source`: one spec per unit of
    :func:`expand_s2_inputs` (the papers and abstracts files together, delete files last)."""

    name = SOURCE
    file_patterns = ("*.jsonl", "*.jsonl.gz", "*.json", "*.json.gz", "*.gz")
    """S2 file names on the command line (after MEDLINE's ``*.xml.gz``, which the registry tries first)."""

    def expand(self, inputs: Sequence[str], download_dir: Path, **http: Any) -> list[InputSpec]:
        """Semantic Scholar inputs (files, folders, globs, URLs) as ingest specs, in a stable order.

        An input that cannot be used (not found, unsupported, unreadable, a failed download) is a failed spec
        naming its full path or URL, placed first; the others are unaffected.
        """
        local, urls, failed = localize_inputs(SOURCE, inputs, download_dir, **http)  # one bad input never stops others
        problems: list[tuple[str, str]] = []
        units = expand_s2_inputs(local, problems=problems)
        failed += [failed_spec(SOURCE, where, message) for where, message in problems]
        return failed + [
            InputSpec(source=SOURCE, name=unit.name, uri=urls.get(str(unit.paths[0]), unit.uri)
                      if len(unit.paths) == 1 else unit.uri, paths=[str(p) for p in unit.paths], kind=unit.kind)
            for unit in units
        ]

    def read(self, spec: InputSpec) -> Iterator[SourceItem]:
        """The items of one planned unit (:func:`read_s2_unit` with the spec's ``kind`` and ``paths``)."""
        return read_s2_unit(spec.kind, [Path(p) for p in spec.paths])


SEMANTIC_SCHOLAR = SemanticScholarSource()
