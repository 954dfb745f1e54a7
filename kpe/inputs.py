"""Plan ingest inputs: command-line inputs per source -> ordered, serialisable ingest specs, and a spec -> the
readable unit that ``kpe.ingest.ingest_unit`` ingests. Every source is reached through ``kpe.sources.SOURCES``.

Usage::

    specs = plan_specs({"pubmed": ["baseline/"], "s2": ["papers.jsonl.gz"]}, download_dir)
    for spec in specs:
        report = failed_report(spec) if spec.error else ingest_unit(unit_from_spec(spec), store, ...)

One bad input never stops the others: an input that cannot be planned (missing, a symlink loop, unreadable,
not a supported file, a download that failed) becomes a spec with ``error`` set, naming the input by its full
path (or redacted URL); ingesting that spec gives a ``failed`` report and nothing else (:func:`failed_report`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kpe.ingest import FileReport, InputUnit
from kpe.sources import SOURCES
from kpe.sources.base import InputSpec, failed_spec, is_url
from kpe.sources.pubmed import MEDLINE_PATTERNS

__all__ = ["MEDLINE_PATTERNS", "InputSpec", "assign_inputs", "failed_report", "failed_spec", "plan_specs",
           "pubmed_specs", "s2_specs", "source_of_file", "unit_from_spec"]


def plan_specs(inputs: Mapping[str, Sequence[str]], download_dir: Path, **http: Any) -> list[InputSpec]:
    """Every source's inputs (``{source name: [path, folder, glob or URL, ...]}``) as ingest specs: the sources in
    registry order, each source's specs in its own order (its failed specs first)."""
    unknown = sorted(set(inputs) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; expected one of {', '.join(SOURCES)}")
    specs: list[InputSpec] = []
    for name, source in SOURCES.items():
        if inputs.get(name):
            specs += source.expand(list(inputs[name]), download_dir, **http)
    return specs


def pubmed_specs(specs: list[str], download_dir: Path, **http: Any) -> list[InputSpec]:
    """MEDLINE inputs in ingest order (see ``kpe.sources.pubmed.PubmedSource.expand``)."""
    return SOURCES["pubmed"].expand(specs, download_dir, **http)


def s2_specs(specs: list[str], download_dir: Path, **http: Any) -> list[InputSpec]:
    """Semantic Scholar inputs in a stable order (see ``kpe.sources.semantic_scholar.SemanticScholarSource``)."""
    return SOURCES["s2"].expand(specs, download_dir, **http)


def unit_from_spec(spec: InputSpec) -> InputUnit:
    """The readable unit behind a spec (``ValueError`` for a failed spec: use :func:`failed_report`)."""
    if spec.error:
        raise ValueError(f"input {spec.uri} cannot be ingested: {spec.error}")
    source = SOURCES[spec.source]
    return InputUnit(spec.source, spec.name, spec.uri, [Path(p) for p in spec.paths], lambda: source.read(spec))


def failed_report(spec: InputSpec) -> FileReport:
    """The report of an input that failed before it could be read (``spec.error`` set)."""
    return FileReport(spec.source, spec.name, "failed", error=spec.error, uri=spec.uri)


def source_of_file(name: str) -> str | None:
    """The source a file name (or a glob of file names) belongs to by its ``file_patterns``: the first source in
    registry order that claims it, ``None`` for none (``*.xml.gz`` is MEDLINE; ``*.jsonl.gz``, ``*.json``,
    another ``*.gz`` is Semantic Scholar)."""
    base = Path(name).name.lower()
    return next((source.name for source in SOURCES.values()
                 if any(fnmatch.fnmatchcase(base, pattern) for pattern in source.file_patterns)), None)


def assign_inputs(by_option: Mapping[str, Sequence[str]], loose: Sequence[str]) -> dict[str, list[str]]:
    """Inputs per source: those given after a source's option, plus the ``loose`` ones (given without an option,
    as a shell glob after ``--pubmed a.xml.gz`` leaves them), each assigned by its file name
    (:func:`source_of_file`). A loose folder, URL or file name no source claims is ambiguous: ``ValueError``
    saying to put the source's option in front of it."""
    assigned = {name: list(by_option.get(name) or []) for name in SOURCES}
    options = " or ".join(f"--{name}" for name in SOURCES)
    for item in loose:
        if is_url(item):
            from kpe.sources.http import redact_url

            raise ValueError(f"{redact_url(item)} is a URL: which source it is cannot be told from its name; "
                             f"put {options} in front of it")
        if Path(item).expanduser().is_dir():
            raise ValueError(f"{item} is a folder: which source it holds cannot be told from its name; "
                             f"put {options} in front of it")
        source = source_of_file(item)
        if source is None:
            raise ValueError(f"{item}: which source this file is cannot be told from its name; "
                             f"put {options} in front of it")
        assigned[source].append(item)
    return assigned
