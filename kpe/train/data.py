"""Training documents: benchmark JSONL train files (gold) and ingested MEDLINE documents (silver author keywords).

Usage::

    docs = load_benchmark("inspec", "train")                  # list[KeyphraseDoc]
    silver = silver_docs(lake_dir, warehouse_path)            # documents whose author keywords occur in the text
    train_docs, val_docs = split_docs(docs)                   # PubMed dev split held out, salted validation
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kpe.extract.methods import document_text
from kpe.splits import DEV_FRACTION, split_of

log = logging.getLogger(__name__)

BENCHMARKS: dict[str, dict[str, str]] = {
    "inspec": {"train": "inspec_train.jsonl", "dev": "inspec_dev.jsonl"},
    "semeval2017": {"train": "semeval2017_train.jsonl", "dev": "semeval2017_dev.jsonl"},
    "kp20k_small": {"train": "kp20k_small_train.jsonl", "dev": "kp20k_small_valid.jsonl"},
}
SILVER = "pubmed"
LAKE = "lake"  # lake documents without labels (the masked-LM corpus)
_LAKE_COLUMNS = ["doc_id", "source", "title", "abstract", "keywords", "content_hash", "ingested_at"]


@dataclass(slots=True)
class KeyphraseDoc:
    """One document with its gold (or silver) keyphrases; ``doc_id`` is unique across datasets."""

    doc_id: str
    text: str
    keyphrases: list[str]
    dataset: str
    meta: dict[str, Any] = field(default_factory=dict)


def shared_keyphrase_dir(shared_data_dir: Path | None = None) -> Path:
    """``<shared_data_dir>/keyphrase`` (default from ``kpe.settings``)."""
    if shared_data_dir is None:
        from kpe.settings import get_settings

        shared_data_dir = get_settings().shared_data_dir
    return Path(shared_data_dir) / "keyphrase"


def benchmark_path(name: str, split: str = "train", shared_data_dir: Path | None = None) -> Path:
    """Path of a benchmark split file; unknown names or splits get a clear error."""
    try:
        filename = BENCHMARKS[name][split]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r} / split {split!r}; known: {sorted(BENCHMARKS)} x train/dev") from None
    return shared_keyphrase_dir(shared_data_dir) / filename


def _clean_phrases(phrases: Iterable[Any]) -> list[str]:
    out = []
    for p in phrases or []:
        if isinstance(p, str) and p.strip():
            out.append(" ".join(p.split()))
    return list(dict.fromkeys(out))


def load_jsonl(path: Path | str, dataset: str | None = None) -> list[KeyphraseDoc]:
    """Documents of a keyphrase JSONL file (``id``, ``title``+``abstract`` or ``text``, ``keyphrases``).

    A line that is not JSON or lacks ``id`` gets a ``ValueError`` naming the file and line; a record with empty
    text is kept (as the evaluation does) and left out of training by ``load_sources``, which counts it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"keyphrase file not found: {path}")
    dataset = dataset or path.name.removesuffix(".jsonl")
    docs = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if "id" not in row:
                raise ValueError(f"{path}:{lineno}: record without 'id'")
            text = row.get("text") or document_text(row.get("title"), row.get("abstract"))
            docs.append(
                KeyphraseDoc(
                    doc_id=f"{dataset}:{row['id']}",
                    text=text,
                    keyphrases=_clean_phrases(row.get("keyphrases")),
                    dataset=dataset,
                )
            )
    return docs


def load_benchmark(name: str, split: str = "train", shared_data_dir: Path | None = None) -> list[KeyphraseDoc]:
    """A benchmark split (``inspec``, ``semeval2017``, ``kp20k_small``) as documents with gold keyphrases."""
    return load_jsonl(benchmark_path(name, split, shared_data_dir), dataset=name)


def deleted_doc_ids(warehouse_path: Path | str | None) -> set[str]:
    """Document ids the warehouse marks deleted (read-only connection; no warehouse: none)."""
    if warehouse_path is None or not Path(warehouse_path).exists():
        return set()
    import duckdb

    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT doc_id FROM documents WHERE deleted").fetchall()}
    finally:
        con.close()


def load_lake_documents(
    lake_dir: Path | str,
    warehouse_path: Path | str | None = None,
    source: str | None = None,
    cache_dir: Path | str | None = None,
) -> list[dict[str, Any]]:
    """Current documents of the Parquet lake, read with Hugging Face ``datasets``.

    Keeps the latest row per ``doc_id`` (by ``ingested_at``) and drops documents the warehouse marks deleted.
    Rows are dicts with ``doc_id, source, title, abstract, keywords, content_hash, ingested_at``, sorted by
    ``doc_id``.
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
    deleted = deleted_doc_ids(warehouse_path)
    rows = [latest[d] for d in sorted(latest) if d not in deleted]
    log.info("lake: %d shards, %d rows, %d documents, %d deleted left out", len(files), len(ds), len(rows),
             len(set(latest) & deleted))
    return rows


def silver_docs(
    lake_dir: Path | str,
    warehouse_path: Path | str | None = None,
    cache_dir: Path | str | None = None,
) -> list[KeyphraseDoc]:
    """Documents with an abstract and at least one author keyword present in title/abstract: silver labels.

    The rule is the silver benchmark's (``kpe.evaluate.silver.silver_document``: stemmed matching); the gold
    list keeps every author keyword (absent ones are ignored by the present-gold metrics and are reported
    as unaligned).
    """
    from kpe.evaluate.silver import silver_document

    docs = []
    for row in load_lake_documents(lake_dir, warehouse_path, source=None, cache_dir=cache_dir):
        keywords = _clean_phrases(row.get("keywords"))
        gold = silver_document(row["doc_id"], row.get("title"), row.get("abstract"), keywords) if keywords else None
        if gold is not None:
            docs.append(KeyphraseDoc(doc_id=gold.doc_id, text=gold.text, keyphrases=list(gold.keyphrases),
                                     dataset=SILVER, meta={"content_hash": row.get("content_hash")}))
    return docs


def corpus_texts(lake_dir: Path | str | None, warehouse_path: Path | str | None = None,
                 cache_dir: Path | str | None = None) -> list[KeyphraseDoc]:
    """Every current lake document with text (for masked-LM pretraining); keyphrases are left empty."""
    if lake_dir is None:
        return []
    docs = []
    for row in load_lake_documents(lake_dir, warehouse_path, cache_dir=cache_dir):
        text = document_text(row.get("title"), row.get("abstract"))
        if text.strip():
            docs.append(KeyphraseDoc(doc_id=row["doc_id"], text=text, keyphrases=[], dataset=LAKE))
    return docs


def split_docs(docs: Sequence[KeyphraseDoc], dev_fraction: float = DEV_FRACTION) -> tuple[list[KeyphraseDoc], list[KeyphraseDoc]]:
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
        (val if split_of(f"validation:{doc.doc_id}", dev_fraction) == "dev" else train).append(doc)
    return train, val


class SourceDocs(list):
    """The usable documents of one training source (a list) and ``n_empty``: how many had no text."""

    def __init__(self, docs: Iterable[KeyphraseDoc] = (), n_empty: int = 0):
        super().__init__(docs)
        self.n_empty = n_empty


def load_sources(
    sources: Sequence[str],
    *,
    lake_dir: Path | None = None,
    warehouse_path: Path | None = None,
    shared_data_dir: Path | None = None,
    max_docs: int | None = None,
) -> dict[str, SourceDocs]:
    """Training documents per source: benchmark names (their *train* file), JSONL paths, or ``"pubmed"``.

    Documents without text are left out and counted; ``max_docs`` keeps a stable pseudo-random sample of
    each source (salted ``doc_id`` hash order).
    """
    out: dict[str, SourceDocs] = {}
    for source in sources:
        if source == SILVER:
            if lake_dir is None:
                raise ValueError("'pubmed' silver data needs lake_dir")
            docs = silver_docs(lake_dir, warehouse_path)
        elif source in BENCHMARKS:
            docs = load_benchmark(source, "train", shared_data_dir)
        elif source.endswith(".jsonl") or Path(source).exists():
            docs = load_jsonl(source)
            source = docs[0].dataset if docs else Path(source).stem
        else:
            raise ValueError(f"unknown training source {source!r}: a benchmark ({sorted(BENCHMARKS)}), "
                             "a .jsonl path or 'pubmed'")
        empty = [d for d in docs if not d.text.strip()]
        if empty:
            log.warning("%s: %d documents without text left out (e.g. %s)", source, len(empty), empty[0].doc_id)
            docs = [d for d in docs if d.text.strip()]
        if max_docs is not None and len(docs) > max_docs:
            import hashlib

            # salted: the unsalted hash is what split_of uses, and would pick validation documents first
            docs = sorted(docs, key=lambda d: hashlib.sha256(f"sample:{d.doc_id}".encode()).digest())[:max_docs]
        out[source] = SourceDocs(docs, len(empty))
    return out
