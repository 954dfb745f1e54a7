"""BC5CDR chemical / disease NER in IOB2: one strict reader for ``token<TAB>tag`` files, and entity spans.

The shared copy is ``<shared_data_dir>/other/bc5cdr_iob/{train,devel,test}.tsv`` (CC BY 4.0; cambridgeltl's
MTL-Bioinformatics-2016 conversion): one token a line, a blank line between sentences, tags ``O``,
``B-Chemical``, ``I-Chemical``, ``B-Disease``, ``I-Disease``. ``devel`` is the gate's set (model choice), ``test``
is for reporting only.

Usage::

    sentences = load_bc5cdr("train")                      # list[TaggedSentence]
    entity_spans(sentences[0].tags)                       # [("Chemical", 0, 1), ("Disease", 3, 5), ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BC5CDR_SPLITS = ("train", "devel", "test")
ENTITY_TYPES = ("Chemical", "Disease")
#: The label set of the ``ner`` kind, in the order of the model's output (``O`` first).
NER_LABELS: tuple[str, ...] = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")))


class IOBFormatError(ValueError):
    """A line of an IOB file is not ``token<TAB>tag`` with a known tag."""


@dataclass(frozen=True, slots=True)
class TaggedSentence:
    """One sentence: its tokens and their IOB2 tags (same length)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]


def bc5cdr_path(split: str, shared_data_dir: Path | str | None = None) -> Path:
    """The shared BC5CDR file of ``split`` (``train``, ``devel`` or ``test``); a missing file is an error."""
    if split not in BC5CDR_SPLITS:
        raise ValueError(f"BC5CDR split must be one of {', '.join(BC5CDR_SPLITS)}, got {split!r}")
    if shared_data_dir is None:
        from kpe.settings import get_settings

        shared_data_dir = get_settings().shared_data_dir
    path = Path(shared_data_dir) / "other" / "bc5cdr_iob" / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"BC5CDR {split} not found at {path} (set KPE_SHARED_DATA_DIR)")
    return path


def read_iob(path: Path | str, labels: Sequence[str] = NER_LABELS, limit: int | None = None) -> list[TaggedSentence]:
    """Sentences of an IOB file (``token<TAB>tag``, blank line between sentences); a bad line raises
    :class:`IOBFormatError` with the file and line number (a silently dropped token would shift every score)."""
    known = set(labels)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    path = Path(path)

    def close() -> None:
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(tags)))
            tokens.clear()
            tags.clear()

    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                close()
                if limit is not None and len(sentences) >= limit:
                    return sentences
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0]:
                raise IOBFormatError(f"{path}:{line_no}: expected 'token<TAB>tag', got {line[:80]!r}")
            if parts[1] not in known:
                raise IOBFormatError(f"{path}:{line_no}: unknown tag {parts[1]!r} (known: {', '.join(labels)})")
            tokens.append(parts[0])
            tags.append(parts[1])
    close()
    return sentences[:limit] if limit is not None else sentences


def load_bc5cdr(split: str, shared_data_dir: Path | str | None = None, limit: int | None = None
                ) -> list[TaggedSentence]:
    """The sentences of one BC5CDR split (at most ``limit``)."""
    return read_iob(bc5cdr_path(split, shared_data_dir), limit=limit)


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first token, end token exclusive)`` of every entity in an IOB2 tag sequence.

    An ``I-X`` that does not continue an ``X`` entity starts one (the usual repair of predicted tags; gold IOB2
    never has one)."""
    spans: list[tuple[str, int, int]] = []
    current: list = []  # [type, start]
    for i, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and current and current[0] == kind:
            continue
        if current:
            spans.append((current[0], current[1], i))
            current = []
        if prefix in ("B", "I"):
            current = [kind, i]
    if current:
        spans.append((current[0], current[1], len(tags)))
    return spans


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """Predicted tags made valid IOB2: an ``I-X`` that does not continue an ``X`` entity becomes ``B-X``."""
    out = ["O"] * len(tags)
    for kind, start, end in entity_spans(tags):
        out[start] = f"B-{kind}"
        for i in range(start + 1, end):
            out[i] = f"I-{kind}"
    return out
