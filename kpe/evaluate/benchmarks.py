"""Keyphrase benchmarks: one JSONL format, the registry of the shared sets, loading and writing.

Format: one JSON object a line with ``id``, the text as ``title`` + ``abstract`` or as ``text``, and the
gold list ``keyphrases``; other fields are ignored. Blank lines are skipped. Any other bad line (not
JSON, not an object, no ``id``, a duplicate ``id``, no text field at all, ``keyphrases`` missing or not a
list of strings) raises :class:`BenchmarkFormatError` naming the file and line: a benchmark whose
documents silently disappear would change every score, so the loader never skips one. A document whose
text fields are present but empty is valid (it simply has no present gold).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kpe.extract.methods import document_text


class BenchmarkFormatError(ValueError):
    """A benchmark file has a line that is not a valid document."""


@dataclass(frozen=True, slots=True)
class GoldDocument:
    """One benchmark document: its id, the text methods see, and its gold keyphrases."""

    doc_id: str
    text: str
    keyphrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A named benchmark file under the shared data folder."""

    name: str
    relative_path: str
    split: str
    description: str


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("inspec_dev", "keyphrase/inspec_dev.jsonl", "dev", "Inspec (Hulth 2003), uncontrolled gold, 500 abstracts"),
        Benchmark("inspec_train", "keyphrase/inspec_train.jsonl", "train", "Inspec train, 1000 abstracts"),
        Benchmark("semeval2017_dev", "keyphrase/semeval2017_dev.jsonl", "dev", "SemEval-2017 ScienceIE dev, 50 paragraphs"),
        Benchmark("semeval2017_train", "keyphrase/semeval2017_train.jsonl", "train", "SemEval-2017 ScienceIE train, 350 paragraphs"),
        Benchmark("kp20k_small_valid", "keyphrase/kp20k_small_valid.jsonl", "valid", "KP20K subset, 1000 validation papers"),
        Benchmark("kp20k_small_train", "keyphrase/kp20k_small_train.jsonl", "train", "KP20K subset, 1000 training papers"),
    )
}

#: Benchmarks the evaluation flow runs when none are named (the silver PubMed dev set is added when a
#: warehouse with documents exists).
DEFAULT_BENCHMARKS: tuple[str, ...] = ("inspec_dev", "semeval2017_dev", "kp20k_small_valid")

_SPLIT_SUFFIXES = ("dev", "valid", "test", "train")


def _bad(path: Path, line_no: int, reason: str) -> BenchmarkFormatError:
    return BenchmarkFormatError(f"{path}:{line_no}: {reason}")


def parse_document(obj: object, path: Path, line_no: int) -> GoldDocument:
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
    return GoldDocument(doc_id=str(doc_id), text=text, keyphrases=tuple(gold))


def iter_jsonl(path: Path | str) -> Iterator[GoldDocument]:
    """Documents of a benchmark JSONL file in file order (see the module docstring for errors)."""
    path = Path(path)
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _bad(path, line_no, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            doc = parse_document(obj, path, line_no)
            if doc.doc_id in seen:
                raise _bad(path, line_no, f"duplicate id {doc.doc_id!r}")
            seen.add(doc.doc_id)
            yield doc


def load_jsonl(path: Path | str, limit: int | None = None) -> list[GoldDocument]:
    """The first ``limit`` documents (all when ``None``) of a benchmark JSONL file."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    docs: list[GoldDocument] = []
    for doc in iter_jsonl(path):
        if limit is not None and len(docs) >= limit:
            break
        docs.append(doc)
    return docs


def write_jsonl(docs: Iterable[GoldDocument], path: Path | str) -> int:
    """Write documents in the benchmark format (``id``, ``text``, ``keyphrases``); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps({"id": doc.doc_id, "text": doc.text, "keyphrases": list(doc.keyphrases)}, ensure_ascii=False))
            handle.write("\n")
            count += 1
    tmp.replace(path)
    return count


def split_from_name(name: str) -> str:
    """The split a dataset name ends with (``inspec_dev`` -> ``dev``), else ``"unknown"``."""
    last = name.rsplit("_", 1)[-1].rsplit("-", 1)[-1].lower()
    return last if last in _SPLIT_SUFFIXES else "unknown"


def resolve_benchmark(name_or_path: str | Path, shared_data_dir: Path | str) -> tuple[str, str, Path]:
    """``(dataset name, split, file)`` for a registered benchmark name or a JSONL path."""
    key = str(name_or_path)
    if key in BENCHMARKS:
        bench = BENCHMARKS[key]
        return bench.name, bench.split, Path(shared_data_dir) / bench.relative_path
    path = Path(name_or_path)
    if path.suffix == ".jsonl" or path.exists():
        return path.stem, split_from_name(path.stem), path
    raise ValueError(f"unknown benchmark {key!r}: give a JSONL file or one of {', '.join(sorted(BENCHMARKS))}")
