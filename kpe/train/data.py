"""Training documents: benchmark train files (gold) and ingested MEDLINE documents (silver author keywords).

Every document is a ``kpe.datasets.GoldDocument`` read by the one strict loader; silver documents follow the one
silver rule (``kpe.datasets.silver_document``). The lake side is Hugging Face ``datasets`` end to end: the Parquet
shards are read with ``Dataset.from_parquet`` (an Arrow copy cached under ``settings.cache_dir/datasets``), the
latest row per ``doc_id`` selected, and the silver rule applied with ``Dataset.map`` (cached, keyed by the shards'
fingerprint and the rule's code). A kind's tokenisation and label alignment runs as one batched ``Dataset.map``
too (:func:`map_features`), cached on disk keyed by the documents, the tokenizer, the settings and the code, so a
second run over the same data loads the Arrow file instead of tokenising again. Nothing here opens the warehouse:
the documents it marks deleted come in as ``exclude_doc_ids`` (the train tasks read them with
``warehouse.documents.deleted_doc_ids``).

Usage::

    docs = load_benchmark("inspec", "train")                  # list[GoldDocument], dataset "inspec"
    silver = silver_docs(lake_dir, exclude_doc_ids=deleted)   # documents whose author keywords occur in the text
    train_docs, val_docs = split_docs(docs)                   # PubMed dev split held out, salted validation
    feats = map_features(train_docs, featurize, tokenizer=tok, settings={"max_length": 256, "stride": 64})
    feats.dataset, feats.stats, feats.from_cache              # Arrow rows, alignment per source, cache hit?
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kpe.datasets import FAMILIES, SILVER_TRAINING, GoldDocument, load_benchmark, load_jsonl, silver_documents
from kpe.extract.methods import document_text
from kpe.splits import DEV_FRACTION, split_of, stable_hash
from kpe.train.alignment import AlignmentStats

log = logging.getLogger(__name__)

SILVER = SILVER_TRAINING  # "pubmed": silver labels of the ingested documents
LAKE = "lake"  # lake documents without labels (the masked-LM corpus)
#: Training sources when none are named; ``pubmed`` is added when the lake has documents.
DEFAULT_TRAIN_DATA: tuple[str, ...] = ("inspec", "semeval2017")
#: The data summary's entry about the tokenised examples (not a source).
FEATURES_KEY = "examples"
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


def datasets_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """Where ``datasets`` keeps its Arrow copies and the feature caches: ``settings.cache_dir/datasets``."""
    if cache_dir is None:
        from kpe.settings import get_settings

        cache_dir = get_settings().cache_dir / "datasets"
    return Path(cache_dir)


def lake_dataset(
    lake_dir: Path | str,
    exclude_doc_ids: Collection[str] = (),
    source: str | None = None,
    cache_dir: Path | str | None = None,
) -> Any:
    """Current documents of the Parquet lake as a ``datasets.Dataset`` (``None`` without shards).

    ``Dataset.from_parquet`` over every document shard (its Arrow copy is cached under ``cache_dir``), then the
    latest row per ``doc_id`` (by ``ingested_at``, later shards winning ties) less ``exclude_doc_ids`` (the
    documents the warehouse marks deleted), in ``doc_id`` order. Columns: ``doc_id, source, title, abstract,
    keywords, content_hash, ingested_at``.
    """
    from datasets import Dataset

    from kpe.shards import current_rows, document_shard_files

    files = document_shard_files(Path(lake_dir), source)
    if not files:
        log.warning("no document shards under %s", lake_dir)
        return None
    ds = Dataset.from_parquet([str(f) for f in files], columns=_LAKE_COLUMNS,
                              cache_dir=str(datasets_cache_dir(cache_dir)))
    columns = ds.select_columns(["doc_id", "ingested_at"]).with_format("arrow")[:]
    doc_ids = columns["doc_id"].to_pylist()
    keep = current_rows(doc_ids, columns["ingested_at"].to_pylist(), exclude_doc_ids)
    log.info("lake: %d shards, %d rows, %d documents, %d deleted left out", len(files), len(ds), len(keep),
             len(set(doc_ids) & set(exclude_doc_ids)))
    return ds.select(keep)


def load_lake_documents(
    lake_dir: Path | str,
    exclude_doc_ids: Collection[str] = (),
    source: str | None = None,
    cache_dir: Path | str | None = None,
) -> list[dict[str, Any]]:
    """The rows of :func:`lake_dataset` as dicts (``[]`` without shards)."""
    ds = lake_dataset(lake_dir, exclude_doc_ids, source, cache_dir)
    return [] if ds is None else ds.to_list()


def _silver_rows(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``Dataset.map`` body of :func:`silver_dataset`: the one silver rule on a batch of lake rows."""
    rows = ((d, t, a, list(clean_phrases(k)))
            for d, t, a, k in zip(batch["doc_id"], batch["title"], batch["abstract"], batch["keywords"]))
    out: dict[str, list[Any]] = {"doc_id": [], "text": [], "keyphrases": [], "dataset": []}
    for doc in silver_documents(rows, split="all", dataset=SILVER):
        out["doc_id"].append(doc.doc_id)
        out["text"].append(doc.text)
        out["keyphrases"].append(list(doc.keyphrases))
        out["dataset"].append(doc.dataset)
    return out


def silver_dataset(
    lake_dir: Path | str,
    exclude_doc_ids: Collection[str] = (),
    cache_dir: Path | str | None = None,
) -> Any:
    """The silver set of the lake (every split) as a ``datasets.Dataset`` with ``doc_id, text, keyphrases,
    dataset`` (``None`` without shards): :func:`lake_dataset` mapped through ``kpe.datasets.silver_documents``.

    The map is cached beside the lake's Arrow copy, keyed by that copy's fingerprint, the rows kept and the
    rule's code, so a second call over the same shards reads the cached Arrow file.
    """
    import inspect

    from kpe import datasets as kpe_datasets

    current = lake_dataset(lake_dir, exclude_doc_ids, cache_dir=cache_dir)
    if current is None:
        return None
    code = inspect.getsource(kpe_datasets) + inspect.getsource(_silver_rows) + inspect.getsource(clean_phrases)
    key = _digest({"rows": current._fingerprint, "code": _digest(code)})
    path = datasets_cache_dir(cache_dir) / "silver" / f"silver-{key}.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    return current.map(_silver_rows, batched=True, batch_size=1000, remove_columns=current.column_names,
                       cache_file_name=str(path), new_fingerprint=key, load_from_cache_file=True,
                       desc="silver rule")


def silver_docs(
    lake_dir: Path | str,
    exclude_doc_ids: Collection[str] = (),
    cache_dir: Path | str | None = None,
) -> list[GoldDocument]:
    """The silver set of the lake (:func:`silver_dataset`, every split) as documents in ``doc_id`` order:
    documents with an abstract and at least one author keyword present in title/abstract; the gold list keeps
    every author keyword (absent ones are ignored by the present-gold metrics and are reported as unaligned)."""
    ds = silver_dataset(lake_dir, exclude_doc_ids, cache_dir)
    if ds is None:
        return []
    return [GoldDocument(doc_id=r["doc_id"], text=r["text"], keyphrases=tuple(r["keyphrases"]), dataset=r["dataset"])
            for r in ds]


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


def fold_of(doc: GoldDocument, folds: int) -> int:
    """The fold (``0 .. folds - 1``) a training document falls in when the training split is cut into ``folds``
    (the span ranker's fold taggers, ``TrainConfig.ranker_folds``): a salted hash of its training key, stable
    across runs and machines, independent of the validation slice."""
    return stable_hash(f"fold:{training_key(doc)}") % folds


def _digest(value: Any) -> str:
    """24 hex digits of sha256 over a JSON-able value (cache keys)."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _code_digest(fn: Callable[..., Any]) -> str:
    """A digest of the code a feature function runs: its source, the source of the functions and classes of its
    own module it calls (followed through their calls), and the label alignment module. Edits elsewhere in the
    kind's module (prediction, extraction) leave the cache valid."""
    import functools
    import inspect

    from kpe.train import alignment

    while isinstance(fn, functools.partial):
        fn = fn.func
    digest = hashlib.sha256(Path(inspect.getsourcefile(alignment) or "").read_bytes())
    module = inspect.getmodule(fn)
    todo, seen = [fn], set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        try:
            digest.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):
            digest.update(repr(obj).encode())
            continue
        codes = [obj.__code__] if inspect.isfunction(obj) else [
            m.__code__ for m in vars(obj).values() if inspect.isfunction(m)] if inspect.isclass(obj) else []
        names: set[str] = set()
        while codes:  # the function's code and the code nested in it (comprehensions, inner functions)
            code = codes.pop()
            names |= set(code.co_names)
            codes += [c for c in code.co_consts if inspect.iscode(c)]
        for name in sorted(names):
            ref = getattr(module, name, None)
            if (inspect.isfunction(ref) or inspect.isclass(ref)) and inspect.getmodule(ref) is module:
                todo.append(ref)
    return digest.hexdigest()[:24]


def tokenizer_digest(tokenizer: Any) -> str:
    """What a tokenizer computes: its class and its fast tokenizer's JSON (vocabulary, normalizer, pre- and
    post-processor; not the truncation / padding state a call leaves behind)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return _digest(f"{type(tokenizer).__name__}\n{getattr(tokenizer, 'name_or_path', '')}")
    state = json.loads(backend.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    return _digest({"class": type(tokenizer).__name__, "tokenizer": state})


def documents_digest(docs: Iterable[GoldDocument]) -> str:
    """A digest of documents (source, id, text, gold phrases, in order): the data part of a feature cache key."""
    digest = hashlib.sha256()
    for d in docs:
        digest.update("\x1f".join((d.dataset, d.doc_id, d.text, "\x1e".join(d.keyphrases))).encode("utf-8"))
        digest.update(b"\x1d")
    return digest.hexdigest()[:24]


#: Feature caches kept per name (the newest; a weekly run over a growing lake writes a new one each time).
KEEP_FEATURE_CACHES = 4


def _prune_feature_caches(folder: Path, name: str, keep: int) -> None:
    """Delete all but the ``keep`` newest ``<name>-<key>.arrow`` caches (and their statistics) in ``folder``."""
    def mtime(file: Path) -> float:
        try:
            return file.stat().st_mtime
        except OSError:  # removed meanwhile by another run
            return 0.0

    caches = sorted(folder.glob(f"{name}-*.arrow"), key=mtime, reverse=True)
    for old in caches[keep:]:
        for file in (old, old.with_suffix(".stats.json")):
            file.unlink(missing_ok=True)
        log.info("removed an old feature cache: %s", old)


@dataclass(slots=True)
class FeatureSet:
    """A kind's training examples as an Arrow-backed ``datasets.Dataset`` (one row per window), the label
    alignment per source, the cache file and whether it was loaded from there instead of computed."""

    dataset: Any
    stats: dict[str, AlignmentStats]
    cache_file: Path
    from_cache: bool

    def __len__(self) -> int:
        return len(self.dataset)


#: What a kind hands :func:`map_features`: documents -> (one feature dict per example, alignment per source).
Featurize = Callable[[Sequence[GoldDocument]], tuple[list[dict[str, Any]], Mapping[str, AlignmentStats]]]


def map_features(
    docs: Sequence[GoldDocument],
    featurize: Featurize,
    *,
    tokenizer: Any,
    settings: Mapping[str, Any],
    name: str = "features",
    cache_dir: Path | str | None = None,
    batch_size: int = 256,
) -> FeatureSet:
    """Tokenise and label-align ``docs`` with one batched ``Dataset.map`` of ``featurize``, cached on disk.

    The cache file (``<cache_dir>/features/<name>-<key>.arrow``, ``cache_dir`` defaulting to
    ``settings.cache_dir/datasets``) is keyed by the documents' content (so by the lake shards, the deletions left
    out and the split), the tokenizer, ``settings`` (e.g. ``max_length``, ``stride``) and the code of
    ``featurize``'s module and of the alignment; the alignment statistics are stored beside it (``.stats.json``).
    A second call with the same inputs loads the Arrow file and does not tokenise again (``from_cache``).
    """
    import json

    from datasets import Dataset

    key = _digest({"docs": documents_digest(docs), "tokenizer": tokenizer_digest(tokenizer),
                   "settings": dict(settings), "code": _code_digest(featurize), "name": name})
    path = datasets_cache_dir(cache_dir) / "features" / f"{name}-{key}.arrow"
    stats_path = path.with_suffix(".stats.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    from_cache = path.is_file() and stats_path.is_file()
    stats: dict[str, AlignmentStats] = {}
    columns: list[str] = []

    def batch_features(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {c: [] for c in columns}
        for doc_id, text, phrases, dataset in zip(batch["doc_id"], batch["text"], batch["keyphrases"],
                                                  batch["dataset"]):
            feats, doc_stats = featurize([GoldDocument(doc_id, text, tuple(phrases), dataset)])
            for source, s in doc_stats.items():
                total = stats.setdefault(source, AlignmentStats())
                total.n_docs += s.n_docs
                total.n_phrases += s.n_phrases
                total.n_unaligned += s.n_unaligned
                total.examples.extend(s.examples[: max(0, 5 - len(total.examples))])
            for feature in feats:
                for column, value in feature.items():
                    if column not in out:
                        columns.append(column)
                        out[column] = []
                    out[column].append(value)
        return out

    table = Dataset.from_dict({"doc_id": [d.doc_id for d in docs], "text": [d.text for d in docs],
                               "keyphrases": [list(d.keyphrases) for d in docs],
                               "dataset": [d.dataset for d in docs]})
    features = table.map(batch_features, batched=True, batch_size=batch_size, remove_columns=table.column_names,
                         cache_file_name=str(path), new_fingerprint=key, load_from_cache_file=from_cache,
                         desc=f"tokenize + align ({name})")
    if from_cache:
        stats = {source: AlignmentStats(**s) for source, s in json.loads(stats_path.read_text()).items()}
    else:
        tmp = stats_path.with_name(stats_path.name + ".tmp")
        tmp.write_text(json.dumps({source: {"n_docs": s.n_docs, "n_phrases": s.n_phrases,
                                            "n_unaligned": s.n_unaligned, "examples": s.examples}
                                   for source, s in stats.items()}))
        tmp.replace(stats_path)
        _prune_feature_caches(path.parent, name, keep=KEEP_FEATURE_CACHES)
    log.info("%s: %d documents -> %d examples (%s %s)", name, len(docs), len(features),
             "loaded from" if from_cache else "cached in", path)
    return FeatureSet(features, stats, path, from_cache)


def training_features(docs: Sequence[GoldDocument], featurize: Featurize, *, tokenizer: Any,
                      settings: Mapping[str, Any], name: str, summary: dict[str, Any]) -> Any:
    """:func:`map_features` for a kind's ``setup``: the examples as a ``datasets.Dataset``; the alignment per
    source and the example count / cache go into the run's data ``summary`` (model card, registry)."""
    from kpe.train.kinds import add_alignment

    feats = map_features(docs, featurize, tokenizer=tokenizer, settings=settings, name=name)
    add_alignment(summary, feats.stats)
    tokens = 0
    if "input_ids" in feats.dataset.column_names:
        import pyarrow.compute as pc

        tokens = int(pc.sum(pc.list_value_length(feats.dataset.with_format("arrow")["input_ids"])).as_py() or 0)
    summary[FEATURES_KEY] = {"examples": len(feats), "tokens": tokens, "documents": len(docs),
                             "from_cache": feats.from_cache, "cache_file": str(feats.cache_file)}
    return feats.dataset


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


def capped_validation(val_docs: list[GoldDocument], config: Any) -> list[GoldDocument]:
    """The validation documents a run evaluates each epoch on: the first ``config.max_val_docs``."""
    return val_docs if config.max_val_docs is None else val_docs[: config.max_val_docs]


def train_val_docs(config: Any, capped: bool = True) -> tuple[list[GoldDocument], list[GoldDocument], dict[str, Any]]:
    """The labelled documents of a run (a ``TrainConfig``): ``(train, validation, summary per source)``; the
    validation slice cut to ``config.max_val_docs`` unless ``capped`` is False (the tagger's span ranker is
    fitted on all of it)."""
    sources = load_sources(config.train_data, lake_dir=config.lake_dir, exclude_doc_ids=config.exclude_doc_ids,
                           shared_data_dir=config.shared_data_dir, max_docs=config.max_docs)
    train_docs: list[GoldDocument] = []
    val_docs: list[GoldDocument] = []
    summary: dict[str, Any] = {}
    holdout = config.holdout_fold
    for name, source in sources.items():
        tr, va = split_docs(source, config.val_fraction)
        summary[name] = {"docs": len(source), "train_docs": len(tr), "val_docs": len(va),
                         "held_out_dev": len(source) - len(tr) - len(va), "empty_text_left_out": source.n_empty,
                         "phrases": sum(len(d.keyphrases) for d in source)}
        if holdout:  # a fold tagger: one fold of the training split left out
            tr = [d for d in tr if fold_of(d, holdout[1]) != holdout[0]]
            summary[name].update(train_docs=len(tr), held_out_fold=f"{holdout[0] + 1} of {holdout[1]}")
        train_docs += tr
        val_docs += va
    if not train_docs:
        raise ValueError(f"no training documents in {config.train_data}")
    if capped:
        val_docs = capped_validation(val_docs, config)
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
