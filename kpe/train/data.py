"""Training documents: benchmark train files (gold) and ingested MEDLINE documents (silver author keywords).

Every document is a ``kpe.datasets.GoldDocument`` read by the one strict loader; silver documents follow the one
silver rule (``kpe.datasets.silver_document``), their rows read from the Parquet lake with Hugging Face
``datasets``. Nothing here opens the warehouse: the documents it marks deleted come in as ``exclude_doc_ids``
(the train tasks read them with ``warehouse.documents.deleted_doc_ids``).

Usage::

    docs = load_benchmark("inspec", "train")                  # list[GoldDocument], dataset "inspec"
    silver = silver_docs(lake_dir, exclude_doc_ids=deleted)   # documents whose author keywords occur in the text
    train_docs, val_docs = split_docs(docs)                   # PubMed dev split held out, salted validation
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kpe.datasets import FAMILIES, SILVER_TRAINING, GoldDocument, load_benchmark, load_jsonl, silver_documents
from kpe.extract.methods import document_text
from kpe.splits import DEV_FRACTION, split_of

log = logging.getLogger(__name__)

SILVER = SILVER_TRAINING  # "pubmed": silver labels of the ingested documents
LAKE = "lake"  # lake documents without labels (the masked-LM corpus)
#: Training sources when none are named; ``pubmed`` is added when the lake has documents.
DEFAULT_TRAIN_DATA: tuple[str, ...] = ("inspec", "semeval2017")
_LAKE_COLUMNS = ["doc_id", "source", "title", "abstract", "keywords", "content_hash", "ingested_at"]


def clean_phrases(phrases: Iterable[Any]) -> tuple[str, ...]:
    """Gold phrases as training uses them: strings with whitespace collapsed, empty ones and repeats dropped."""
    out = []
    for p in phrases or []:
        if isinstance(p, str) and p.strip():
            out.append(" ".join(p.split()))
    return tuple(dict.fromkeys(out))


def training_key(doc: GoldDocument) -> str:
    """What training hashes a document by (validation slice, sampling): the warehouse ``doc_id`` of an ingested
    document (unique already: ``pmid:...``), ``<dataset>:<id>`` for a benchmark document (ids repeat across files)."""
    return doc.doc_id if doc.dataset in (SILVER, LAKE) else f"{doc.dataset}:{doc.doc_id}"


def load_lake_documents(
    lake_dir: Path | str,
    exclude_doc_ids: Collection[str] = (),
    source: str | None = None,
    cache_dir: Path | str | None = None,
) -> list[dict[str, Any]]:
    """Current documents of the Parquet lake, read with Hugging Face ``datasets``.

    Keeps the latest row per ``doc_id`` (by ``ingested_at``) and drops ``exclude_doc_ids`` (the documents the
    warehouse marks deleted). Rows are dicts with ``doc_id, source, title, abstract, keywords, content_hash,
    ingested_at``, sorted by ``doc_id``.
    """
    from datasets import Dataset

    from kpe.shards import document_shard_files

    files = document_shard_files(Path(lake_dir), source)
    if not files:
        log.warning("no document shards under %s", lake_dir)
        return []
    if cache_dir is None:
        from kpe.settings import get_settings

        cache_dir = get_settings().cache_dir / "datasets"
    ds = Dataset.from_parquet(
        [str(f) for f in files], columns=_LAKE_COLUMNS, cache_dir=str(cache_dir), keep_in_memory=True
    )
    latest: dict[str, dict[str, Any]] = {}
    for row in ds:
        current = latest.get(row["doc_id"])
        if current is None or row["ingested_at"] >= current["ingested_at"]:
            latest[row["doc_id"]] = row
    excluded = set(exclude_doc_ids)
    rows = [latest[d] for d in sorted(latest) if d not in excluded]
    log.info("lake: %d shards, %d rows, %d documents, %d deleted left out", len(files), len(ds), len(rows),
             len(set(latest) & excluded))
    return rows


def silver_docs(
    lake_dir: Path | str,
    exclude_doc_ids: Collection[str] = (),
    cache_dir: Path | str | None = None,
) -> list[GoldDocument]:
    """The silver set of the lake (``kpe.datasets.silver_documents``, every split): documents with an abstract
    and at least one author keyword present in title/abstract; the gold list keeps every author keyword (absent
    ones are ignored by the present-gold metrics and are reported as unaligned)."""
    rows = ((r["doc_id"], r.get("title"), r.get("abstract"), list(clean_phrases(r.get("keywords"))))
            for r in load_lake_documents(lake_dir, exclude_doc_ids, cache_dir=cache_dir))
    return list(silver_documents(rows, split="all", dataset=SILVER))


def corpus_texts(lake_dir: Path | str | None, exclude_doc_ids: Collection[str] = (),
                 cache_dir: Path | str | None = None) -> list[GoldDocument]:
    """Every current lake document with text (for masked-LM pretraining); keyphrases are left empty."""
    if lake_dir is None:
        return []
    docs = []
    for row in load_lake_documents(lake_dir, exclude_doc_ids, cache_dir=cache_dir):
        text = document_text(row.get("title"), row.get("abstract"))
        if text.strip():
            docs.append(GoldDocument(doc_id=row["doc_id"], text=text, keyphrases=(), dataset=LAKE))
    return docs


def split_docs(docs: Sequence[GoldDocument], dev_fraction: float = DEV_FRACTION
               ) -> tuple[list[GoldDocument], list[GoldDocument]]:
    """``(train, validation)``, stable across runs and machines.

    PubMed silver documents (and unlabelled lake documents of the masked-LM corpus) of the held-out split
    (``kpe.splits.split_of(doc_id) == "dev"``) are left out entirely: they are the gate's and the harness's
    PubMed dev set, so neither training, domain-adaptive pretraining nor checkpoint selection may see them.
    Validation is a *salted* hash slice of what remains, so it never coincides with that dev set.
    """
    train, val = [], []
    for doc in docs:
        if doc.dataset in (SILVER, LAKE) and split_of(doc.doc_id) == "dev":
            continue
        (val if split_of(f"validation:{training_key(doc)}", dev_fraction) == "dev" else train).append(doc)
    return train, val


class SourceDocs(list):
    """The usable documents of one training source (a list) and ``n_empty``: how many had no text."""

    def __init__(self, docs: Iterable[GoldDocument] = (), n_empty: int = 0):
        super().__init__(docs)
        self.n_empty = n_empty


def load_sources(
    sources: Sequence[str],
    *,
    lake_dir: Path | None = None,
    exclude_doc_ids: Collection[str] = (),
    shared_data_dir: Path | None = None,
    max_docs: int | None = None,
) -> dict[str, SourceDocs]:
    """Training documents per source: benchmark families (their *train* file), JSONL paths, or ``"pubmed"``.

    Gold phrases are cleaned (:func:`clean_phrases`); documents without text are left out and counted;
    ``max_docs`` keeps a stable pseudo-random sample of each source (salted :func:`training_key` hash order).
    """
    out: dict[str, SourceDocs] = {}
    for source in sources:
        if source == SILVER:
            if lake_dir is None:
                raise ValueError("'pubmed' silver data needs lake_dir")
            docs = silver_docs(lake_dir, exclude_doc_ids)
        elif source in FAMILIES:
            docs = load_benchmark(source, "train", shared_data_dir)
        elif source.endswith(".jsonl") or Path(source).exists():
            path = Path(source)
            source = path.stem
            docs = load_jsonl(path, dataset=source)
        else:
            raise ValueError(f"unknown training source {source!r}: a benchmark ({sorted(FAMILIES)}), "
                             "a .jsonl path or 'pubmed'")
        docs = [replace(d, keyphrases=clean_phrases(d.keyphrases)) for d in docs]
        empty = [d for d in docs if not d.text.strip()]
        if empty:
            log.warning("%s: %d documents without text left out (e.g. %s)", source, len(empty), empty[0].doc_id)
            docs = [d for d in docs if d.text.strip()]
        if max_docs is not None and len(docs) > max_docs:
            # salted: the unsalted hash is what split_of uses, and would pick validation documents first
            docs = sorted(docs, key=lambda d: hashlib.sha256(f"sample:{training_key(d)}".encode()).digest())[:max_docs]
        out[source] = SourceDocs(docs, len(empty))
    return out


def train_val_docs(config: Any) -> tuple[list[GoldDocument], list[GoldDocument], dict[str, Any]]:
    """The labelled documents of a run (a ``TrainConfig``): ``(train, validation, summary per source)``."""
    sources = load_sources(config.train_data, lake_dir=config.lake_dir, exclude_doc_ids=config.exclude_doc_ids,
                           shared_data_dir=config.shared_data_dir, max_docs=config.max_docs)
    train_docs: list[GoldDocument] = []
    val_docs: list[GoldDocument] = []
    summary: dict[str, Any] = {}
    for name, source in sources.items():
        tr, va = split_docs(source, config.val_fraction)
        train_docs += tr
        val_docs += va
        summary[name] = {"docs": len(source), "train_docs": len(tr), "val_docs": len(va),
                         "empty_text_left_out": source.n_empty,
                         "phrases": sum(len(d.keyphrases) for d in source)}
    if not train_docs:
        raise ValueError(f"no training documents in {config.train_data}")
    if config.max_val_docs is not None:
        val_docs = val_docs[: config.max_val_docs]
    if not val_docs:
        log.warning("no validation documents (split_of gave none): no early stopping, the last model is kept")
    return train_docs, val_docs, summary


@dataclass(frozen=True, slots=True)
class DataPlan:
    """The training sources of a run, resolved and counted before any model is loaded."""

    sources: list[str]
    docs: dict[str, int]
    empty: list[str] = field(default_factory=list)
    lake_dir: str | None = None


def plan_training_data(
    train_data: Sequence[str] | None,
    *,
    lake_dir: Path,
    shared_data_dir: Path | None = None,
    exclude_doc_ids: Collection[str] = (),
    max_docs: int | None = None,
) -> DataPlan:
    """Resolve and load the training sources once, so that a bad name fails before training starts.

    Default sources: :data:`DEFAULT_TRAIN_DATA`, plus ``pubmed`` when the lake has documents. Sources without a
    single document (e.g. no author keyword in the ingested PubMed records) are left out and listed in ``empty``.
    """
    from kpe.shards import document_shard_files

    lake_has_docs = bool(document_shard_files(Path(lake_dir)))
    sources = list(train_data) if train_data else [*DEFAULT_TRAIN_DATA, *([SILVER] if lake_has_docs else [])]
    if SILVER in sources and not lake_has_docs:
        raise ValueError(f"training source {SILVER!r} needs ingested documents, but {lake_dir} has no shards")
    loaded = load_sources(sources, lake_dir=Path(lake_dir) if SILVER in sources else None,
                          exclude_doc_ids=exclude_doc_ids, shared_data_dir=shared_data_dir, max_docs=max_docs)
    counts = {name: len(docs) for name, docs in loaded.items()}
    kept = [s for s in sources if counts.get(Path(s).stem if s.endswith(".jsonl") else s, 1) > 0]
    if not kept or not any(counts.values()):
        raise ValueError(f"no training documents in {sources}")
    return DataPlan(sources=kept, docs=counts, empty=[s for s in sources if s not in kept],
                    lake_dir=str(lake_dir) if SILVER in kept else None)
