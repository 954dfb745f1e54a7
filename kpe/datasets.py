"""Every keyphrase dataset by name: one document type, one strict loader, one silver definition.

Training, evaluation and the gate all read documents through this module::

    docs = load_benchmark("inspec", "train")          # the inspec_train file, dataset "inspec"
    dataset, split, path = resolve_benchmark("inspec_dev", shared_data_dir)
    docs = load_jsonl(path, limit=100, dataset=dataset)
    silver = list(silver_documents(rows, split="dev"))  # rows: (doc_id, title, abstract, keywords)

**Names.** The shared benchmark files (:data:`BENCHMARKS`: ``inspec_dev``, ``inspec_train``,
``semeval2017_dev``, ``semeval2017_train``, ``kp20k_small_valid``, ``kp20k_small_train``); training names a
benchmark by its family (``inspec`` = ``inspec_train``, see :func:`benchmark_for`). The silver PubMed set is
``pubmed_silver_dev|train|all`` when evaluated (rows from the warehouse) and ``pubmed`` as a training source
(rows from the Parquet lake; its ``dev`` split is never trained on). Any JSONL file in the format works too.

**Format**: one JSON object a line with ``id``, the text as ``title`` + ``abstract`` or as ``text``, and the
gold list ``keyphrases``; other fields are ignored. Blank lines are skipped. Any other bad line (not JSON,
not an object, no ``id``, a duplicate ``id``, no text field at all, ``keyphrases`` missing or not a list of
strings) raises :class:`BenchmarkFormatError` naming the file and line: a benchmark whose documents silently
disappear would change every score, so the loader never skips one. A document whose text fields are present
but empty is valid (it simply has no present gold; training leaves it out and counts it).

**Silver rule** (:func:`silver_document`): a document with an abstract and at least one author keyword that
occurs in title + abstract (the evaluation's stemmed matching); its gold is *all* its author keywords. The
split is ``kpe.splits.split_of(doc_id)``. This module holds no SQL and opens no file but JSONL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kpe.evaluate.metrics import occurs_in, phrase_key, unique_keys
from kpe.extract.methods import document_text
from kpe.splits import split_of


class BenchmarkFormatError(ValueError):
    """A benchmark file has a line that is not a valid document."""


@dataclass(frozen=True, slots=True)
class GoldDocument:
    """One document with its gold (or silver) keyphrases: its id, the text methods see, the gold list, and the
    dataset it came from (a benchmark name, ``pubmed`` for silver training documents, ``lake`` for the MLM
    corpus)."""

    doc_id: str
    text: str
    keyphrases: tuple[str, ...]
    dataset: str = ""


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A named benchmark file under the shared data folder."""

    name: str
    family: str
    split: str
    relative_path: str
    description: str


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("inspec_dev", "inspec", "dev", "keyphrase/inspec_dev.jsonl",
                  "Inspec (Hulth 2003), uncontrolled gold, 500 abstracts"),
        Benchmark("inspec_train", "inspec", "train", "keyphrase/inspec_train.jsonl", "Inspec train, 1000 abstracts"),
        Benchmark("semeval2017_dev", "semeval2017", "dev", "keyphrase/semeval2017_dev.jsonl",
                  "SemEval-2017 ScienceIE dev, 50 paragraphs"),
        Benchmark("semeval2017_train", "semeval2017", "train", "keyphrase/semeval2017_train.jsonl",
                  "SemEval-2017 ScienceIE train, 350 paragraphs"),
        Benchmark("kp20k_small_valid", "kp20k_small", "valid", "keyphrase/kp20k_small_valid.jsonl",
                  "KP20K subset, 1000 validation papers"),
        Benchmark("kp20k_small_train", "kp20k_small", "train", "keyphrase/kp20k_small_train.jsonl",
                  "KP20K subset, 1000 training papers"),
        Benchmark("nus_dev", "nus", "dev", "keyphrase/nus_dev.jsonl",
                  "NUS (Nguyen & Kan 2007), 100 full-text papers of about 50,000 characters: the long-document set"),
    )
}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(b.family for b in BENCHMARKS.values()))

#: Benchmarks the evaluation flow runs when none are named (the silver PubMed dev set is added when a
#: warehouse with documents exists).
DEFAULT_BENCHMARKS: tuple[str, ...] = ("inspec_dev", "semeval2017_dev", "kp20k_small_valid")

SILVER_DATASET = "pubmed_silver"
SILVER_SPLITS: tuple[str, ...] = ("dev", "train", "all")
#: The silver set as a training source (read from the Parquet lake; its dev split is held out).
SILVER_TRAINING = "pubmed"

_SPLIT_SUFFIXES = ("dev", "valid", "test", "train")


# --- names ---------------------------------------------------------------------------------------------


def silver_name(split: str) -> str:
    """Dataset name of a silver split (``pubmed_silver_dev``)."""
    return f"{SILVER_DATASET}_{split}"


def silver_split(name: str) -> str | None:
    """The split of a silver dataset name (``pubmed_silver_dev`` -> ``dev``), else ``None``."""
    prefix = f"{SILVER_DATASET}_"
    if name.startswith(prefix) and name[len(prefix):] in SILVER_SPLITS:
        return name[len(prefix):]
    return None


def split_from_name(name: str) -> str:
    """The split a dataset name ends with (``inspec_dev`` -> ``dev``), else ``"unknown"``."""
    last = name.rsplit("_", 1)[-1].rsplit("-", 1)[-1].lower()
    return last if last in _SPLIT_SUFFIXES else "unknown"


def benchmark_for(family: str, split: str = "train") -> Benchmark:
    """The benchmark of a family and split (``("inspec", "train")`` -> ``inspec_train``; ``dev`` also finds a
    ``valid`` file); unknown pairs are a ``ValueError``."""
    for bench in BENCHMARKS.values():
        if bench.family == family and (bench.split == split or (split == "dev" and bench.split == "valid")):
            return bench
    raise ValueError(f"unknown benchmark {family!r} / split {split!r}; known: {list(FAMILIES)} x train/dev")


def shared_data_path(shared_data_dir: Path | str | None = None) -> Path:
    """The shared data folder (``kpe.settings`` when not given)."""
    if shared_data_dir is None:
        from kpe.settings import get_settings

        shared_data_dir = get_settings().shared_data_dir
    return Path(shared_data_dir)


def resolve_benchmark(name_or_path: str | Path, shared_data_dir: Path | str | None = None) -> tuple[str, str, Path]:
    """``(dataset name, split, file)`` for a registered benchmark name or a JSONL path."""
    key = str(name_or_path)
    if key in BENCHMARKS:
        bench = BENCHMARKS[key]
        return bench.name, bench.split, shared_data_path(shared_data_dir) / bench.relative_path
    path = Path(name_or_path)
    if path.suffix == ".jsonl" or path.exists():
        return path.stem, split_from_name(path.stem), path
    raise ValueError(f"unknown benchmark {key!r}: give a JSONL file or one of {', '.join(sorted(BENCHMARKS))}")


# --- the strict loader ---------------------------------------------------------------------------------


def _bad(path: Path, line_no: int, reason: str) -> BenchmarkFormatError:
    return BenchmarkFormatError(f"{path}:{line_no}: {reason}")


def parse_document(obj: object, path: Path, line_no: int, dataset: str = "") -> GoldDocument:
    """Validate one decoded JSONL object and turn it into a :class:`GoldDocument`."""
    if not isinstance(obj, dict):
        raise _bad(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
    doc_id = obj.get("id")
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()) or isinstance(doc_id, (dict, list, bool)):
        raise _bad(path, line_no, "missing or empty 'id'")
    if "text" in obj:
        text = obj["text"]
        if text is not None and not isinstance(text, str):
            raise _bad(path, line_no, "'text' must be a string")
        text = (text or "").strip()
    elif "title" in obj or "abstract" in obj:
        title, abstract = obj.get("title"), obj.get("abstract")
        for field, value in (("title", title), ("abstract", abstract)):
            if value is not None and not isinstance(value, str):
                raise _bad(path, line_no, f"'{field}' must be a string")
        text = document_text(title, abstract)
    else:
        raise _bad(path, line_no, "no text: expected 'text' or 'title'/'abstract'")
    gold = obj.get("keyphrases")
    if not isinstance(gold, list) or not all(isinstance(k, str) for k in gold):
        raise _bad(path, line_no, "'keyphrases' must be a list of strings")
    return GoldDocument(doc_id=str(doc_id), text=text, keyphrases=tuple(gold), dataset=dataset)


def iter_jsonl(path: Path | str, dataset: str | None = None) -> Iterator[GoldDocument]:
    """Documents of a benchmark JSONL file in file order (``dataset``: the file's stem when not given)."""
    path = Path(path)
    dataset = dataset if dataset is not None else path.stem
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _bad(path, line_no, f"not JSON (invalid JSON: {exc.msg} at column {exc.colno})") from None
            doc = parse_document(obj, path, line_no, dataset)
            if doc.doc_id in seen:
                raise _bad(path, line_no, f"duplicate id {doc.doc_id!r}")
            seen.add(doc.doc_id)
            yield doc


def load_jsonl(path: Path | str, limit: int | None = None, dataset: str | None = None) -> list[GoldDocument]:
    """The first ``limit`` documents (all when ``None``) of a benchmark JSONL file."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    docs: list[GoldDocument] = []
    for doc in iter_jsonl(path, dataset):
        if limit is not None and len(docs) >= limit:
            break
        docs.append(doc)
    return docs


def load_benchmark(family: str, split: str = "train", shared_data_dir: Path | str | None = None) -> list[GoldDocument]:
    """A benchmark split by family (``inspec``, ``semeval2017``, ``kp20k_small``); the documents' dataset is the
    family name."""
    bench = benchmark_for(family, split)
    return load_jsonl(shared_data_path(shared_data_dir) / bench.relative_path, dataset=family)


def write_jsonl(docs: Iterable[GoldDocument], path: Path | str) -> int:
    """Write documents in the benchmark format (``id``, ``text``, ``keyphrases``); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps({"id": doc.doc_id, "text": doc.text, "keyphrases": list(doc.keyphrases)},
                                    ensure_ascii=False))
            handle.write("\n")
            count += 1
    tmp.replace(path)
    return count


# --- the silver set ------------------------------------------------------------------------------------

SilverRow = tuple[str, "str | None", "str | None", list[str]]
"""``(doc_id, title, abstract, author keywords)`` of one ingested document, from the warehouse or the lake."""


def silver_document(doc_id: str, title: str | None, abstract: str | None, keywords: list[str],
                    dataset: str = "") -> GoldDocument | None:
    """The silver document for one ingested document, or ``None`` when no author keyword is in the text."""
    text = document_text(title, abstract)
    if not abstract or not abstract.strip() or not text:
        return None
    text_key = phrase_key(text)
    if not any(occurs_in(key, text_key) for key in unique_keys(keywords)):
        return None
    return GoldDocument(doc_id=doc_id, text=text, keyphrases=tuple(keywords), dataset=dataset)


def silver_documents(rows: Iterable[SilverRow], split: str = "dev", limit: int | None = None,
                     dataset: str | None = None) -> Iterator[GoldDocument]:
    """Silver documents of one split (``dev``, ``train`` or ``all``) from ``(doc_id, title, abstract,
    keywords)`` rows, at most ``limit`` of them, in row order (``dataset``: ``pubmed_silver_<split>``)."""
    if split not in SILVER_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SILVER_SPLITS)}, got {split!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    dataset = dataset if dataset is not None else silver_name(split)
    count = 0
    for doc_id, title, abstract, keywords in rows:
        if limit is not None and count >= limit:
            return
        if split != "all" and split_of(doc_id) != split:
            continue
        doc = silver_document(doc_id, title, abstract, keywords, dataset)
        if doc is not None:
            count += 1
            yield doc
