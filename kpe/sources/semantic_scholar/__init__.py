"""Semantic Scholar readers: Datasets API files, incremental diffs, S2ORC, Graph API JSON.

Every reader yields ``kpe.records`` items (``SourceRecord(source="s2")``, ``Deletion``, ``BadRecord``);
``source_id`` is the S2 corpus id (the Graph API ``paperId`` only when a response has no ``corpusId``).
One module per format:

- ``inputs``: ``expand_s2_inputs(paths)``: CLI inputs (files, folders, globs) -> ordered ingest units
  (``S2Input``), each with a stable ``name``, its local ``paths`` and ``iter_items()``. Every ``papers`` and
  ``abstracts`` file among the inputs forms ONE ``datasets`` unit (the join on ``corpusid`` needs all of them);
  every other file is a unit of its own; delete files come last. In folders and globs, files that are not paper
  records (authors, citations, embeddings, READMEs...) are skipped with a warning. ``iter_s2_file(path)``: the
  items of one local file or folder. ``SEMANTIC_SCHOLAR``: the source registered in :mod:`kpe.sources`.
- ``formats``: ``detect_s2_format(path)`` (from the content, gzip or not, whatever the name) and
  ``read_s2_unit(kind, paths)`` (a unit's items from plain data). A lone ``abstracts`` file is refused
  (``SourceFileError``): abstracts are joined to papers.
- ``datasets``: ``iter_s2_datasets(papers, abstracts)``, the join (abstracts indexed in a dict or SQLite).
- ``diffs``: ``plan_diff(diff_json)`` (a library API for notebooks, with ``kpe.sources.s2_api.S2Client``) and
  ``iter_s2_delete_file(path)``.
- ``s2orc``: ``iter_s2orc_metadata(path)``, ``iter_s2orc_fulltext(path)``.
- ``graph_api``: ``iter_graph_papers(obj)`` (a Graph API paper with its citing / referenced papers, or a page of
  results) and ``iter_graph_file(path)``.
- ``jsonl``: reading lines and fields, shared by the others.

Robustness per line: invalid UTF-8, invalid JSON, or a record without a valid id (a corpus id is an integer
in 1..2^63-1) -> ``BadRecord`` with the line number; a truncated or corrupt gzip -> every complete item before
it is yielded, then ``SourceFileError``.
"""

from kpe.sources.semantic_scholar.datasets import (
    ABSTRACT_ORPHAN_REASON,
    IN_MEMORY_ABSTRACTS_MAX_BYTES,
    iter_s2_datasets,
)
from kpe.sources.semantic_scholar.diffs import DiffStep, iter_s2_delete_file, plan_diff
from kpe.sources.semantic_scholar.formats import S2Kind, detect_s2_format, read_s2_unit
from kpe.sources.semantic_scholar.graph_api import iter_graph_file, iter_graph_papers
from kpe.sources.semantic_scholar.inputs import (
    SEMANTIC_SCHOLAR,
    S2Input,
    SemanticScholarSource,
    expand_s2_inputs,
    iter_s2_file,
)
from kpe.sources.semantic_scholar.jsonl import MAX_CORPUS_ID, MAX_JSON_DOCUMENT_BYTES, SNIPPET_CHARS, SOURCE
from kpe.sources.semantic_scholar.s2orc import iter_s2orc_fulltext, iter_s2orc_metadata

__all__ = [
    "ABSTRACT_ORPHAN_REASON", "IN_MEMORY_ABSTRACTS_MAX_BYTES", "MAX_CORPUS_ID", "MAX_JSON_DOCUMENT_BYTES",
    "SEMANTIC_SCHOLAR", "SNIPPET_CHARS", "SOURCE", "DiffStep", "S2Input", "S2Kind", "SemanticScholarSource",
    "detect_s2_format", "expand_s2_inputs", "iter_graph_file", "iter_graph_papers", "iter_s2_datasets",
    "iter_s2_delete_file", "iter_s2_file", "iter_s2orc_fulltext", "iter_s2orc_metadata", "plan_diff", "read_s2_unit",
]
