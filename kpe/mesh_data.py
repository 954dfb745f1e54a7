"""MeSH training data from the Parquet lake: documents with indexer-assigned MeSH descriptors and an abstract.

The lake's ``mesh`` column holds each document's MeSH headings (descriptor name and major-topic flag, qualifiers
folded into the flag). A labelled document is one current document (latest row per ``doc_id``, warehouse
deletions left out) with at least one heading and a non-empty abstract; its text is title + abstract as every
method sees it (``kpe.extract.methods.document_text``) and its labels are its descriptor names.

Splits are deterministic by ``doc_id`` (:func:`mesh_split`): ``test`` is the project's held-out split
(``kpe.splits.split_of(doc_id) == "dev"``, never trained on nor used to pick anything), ``validation`` a salted
hash slice of the rest (checkpoint selection and thresholds), ``train`` the remainder. With
``holdout_from_year``, documents published in or after that year form a fourth split, ``recent``, left out of
training entirely (how a model trained on older papers does on a later decade).

Usage::

    data = build_mesh_data(lake_dir, min_docs=20)            # MeshData: documents, label vocabulary, summary
    train = data.split("train"); data.labels                   # descriptors in >= 20 training documents
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kpe.extract.methods import document_text
from kpe.splits import DEV_FRACTION, split_of

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test", "recent")
_COLUMNS = ["doc_id", "title", "abstract", "mesh", "year", "ingested_at"]


@dataclass(frozen=True, slots=True)
class LabelledDocument:
    """One document with its MeSH descriptors (as indexed, in the record's order) and its split."""

    doc_id: str
    text: str
    labels: tuple[str, ...]
    year: int | None
    split: str


@dataclass(slots=True)
class MeshData:
    """Labelled documents, the label vocabulary (sorted) and what was counted on the way."""

    documents: list[LabelledDocument]
    labels: list[str]
    min_docs: int
    summary: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[LabelledDocument]:
        """The documents of one split (``train``, ``validation``, ``test``, ``recent``), in ``doc_id`` order."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return [d for d in self.documents if d.split == name]


def mesh_split(doc_id: str, val_fraction: float = DEV_FRACTION) -> str:
    """``test`` (the held-out ``split_of`` dev split), ``validation`` (salted slice of the rest) or ``train``."""
    if split_of(doc_id) == "dev":
        return "test"
    return "validation" if split_of(f"validation:{doc_id}", val_fraction) == "dev" else "train"


def read_lake_rows(lake_dir: Path | str, exclude_doc_ids: Collection[str] = (),
                   columns: Sequence[str] = _COLUMNS) -> list[dict[str, Any]]:
    """Current lake documents (``columns`` of ``kpe.shards.DOCUMENT_SCHEMA``; which rows are current:
    ``kpe.shards.current_rows``, less ``exclude_doc_ids``), sorted by ``doc_id``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kpe.shards import current_rows, document_shard_files

    wanted = list(dict.fromkeys([*columns, "doc_id", "ingested_at"]))
    files = document_shard_files(Path(lake_dir))
    if not files:
        log.info("lake %s: no document shards", lake_dir)
        return []
    table = pa.concat_tables([pq.read_table(path, columns=wanted) for path in files], promote_options="default")
    keep = current_rows(table["doc_id"].to_pylist(), table["ingested_at"].to_pylist(), exclude_doc_ids)
    log.info("lake %s: %d shards, %d rows, %d current documents", lake_dir, len(files), table.num_rows, len(keep))
    return table.take(keep).to_pylist()


def labelled_documents(rows: Iterable[dict[str, Any]], holdout_from_year: int | None = None,
                       val_fraction: float = DEV_FRACTION) -> list[LabelledDocument]:
    """Lake rows with at least one MeSH heading and an abstract, as labelled documents with their split."""
    out = []
    for row in rows:
        abstract = (row.get("abstract") or "").strip()
        names = tuple(dict.fromkeys(m["name"] for m in row.get("mesh") or [] if m.get("name")))
        if not abstract or not names:
            continue
        year = row.get("year")
        recent = holdout_from_year is not None and year is not None and year >= holdout_from_year
        out.append(LabelledDocument(doc_id=row["doc_id"], text=document_text(row.get("title"), abstract),
                                    labels=names, year=year,
                                    split="recent" if recent else mesh_split(row["doc_id"], val_fraction)))
    return out


def label_vocabulary(docs: Iterable[LabelledDocument], min_docs: int) -> list[str]:
    """Descriptors that occur in at least ``min_docs`` of the *training* documents, sorted by name."""
    if min_docs < 1:
        raise ValueError(f"min_docs must be at least 1, got {min_docs}")
    counts = Counter(label for d in docs if d.split == "train" for label in d.labels)
    return sorted(label for label, n in counts.items() if n >= min_docs)


def build_mesh_data(lake_dir: Path | str, min_docs: int | None = None, exclude_doc_ids: Collection[str] = (),
                    holdout_from_year: int | None = None, val_fraction: float = DEV_FRACTION) -> MeshData:
    """Labelled documents of the lake and the label vocabulary (``min_docs`` default: setting ``mesh_min_docs``)."""
    if min_docs is None:
        from kpe.settings import get_settings

        min_docs = get_settings().mesh_min_docs
    rows = read_lake_rows(lake_dir, exclude_doc_ids)
    docs = labelled_documents(rows, holdout_from_year, val_fraction)
    labels = label_vocabulary(docs, min_docs)
    data = MeshData(docs, labels, min_docs)
    data.summary = summarize(data, n_lake_docs=len(rows))
    log.info("MeSH data: %d labelled of %d documents, %d labels (>= %d training docs), splits %s", len(docs),
             len(rows), len(labels), min_docs, data.summary["splits"])
    return data


def summarize(data: MeshData, n_lake_docs: int | None = None) -> dict[str, Any]:
    """Counts for the model card and the report: documents per split, labels, how much of the gold they cover."""
    vocab = set(data.labels)
    out: dict[str, Any] = {"labelled_docs": len(data.documents), "labels": len(data.labels),
                           "min_docs": data.min_docs, "splits": {}}
    if n_lake_docs is not None:
        out["lake_docs"] = n_lake_docs
    for name in SPLITS:
        docs = data.split(name)
        if not docs:
            continue
        assigned = sum(len(d.labels) for d in docs)
        covered = sum(1 for d in docs for label in d.labels if label in vocab)
        out["splits"][name] = {
            "docs": len(docs), "descriptors_assigned": assigned,
            "share_in_vocabulary": round(covered / assigned, 4) if assigned else 0.0,
            "docs_without_vocabulary_label": sum(1 for d in docs if not vocab.intersection(d.labels)),
        }
    return out
