"""Gold keyphrases -> character spans -> BIO tags on the first sub-token of each word.

Matching is case-insensitive, on word boundaries (``"net"`` never matches inside ``"network"``) and finds every
occurrence. Overlapping gold spans are resolved longest first. Words are the fast tokenizer's own words
(``word_ids``); long texts are cut into overlapping windows (``max_length``, ``stride``) with the tokenizer's
``return_overflowing_tokens``; each window knows the character span of every word it holds completely.

Usage::

    windows = tokenize_windows(tokenizer, text, max_length=256, stride=64)
    spans, unaligned = gold_spans(text, ["neural network", "SVM"])
    labels = [bio_labels(w, spans) for w in windows]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

O, B, I = 0, 1, 2  # noqa: E741 -- the standard BIO tag names, imported elsewhere
LABELS: tuple[str, ...] = ("O", "B", "I")
IGNORE_INDEX = -100

Span = tuple[int, int]


def phrase_pattern(phrase: str) -> re.Pattern[str] | None:
    """Case-insensitive regex for a phrase on word boundaries, any run of whitespace between its parts."""
    parts = phrase.split()
    if not parts:
        return None
    body = r"\s+".join(re.escape(part) for part in parts)
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def find_occurrences(text: str, phrase: str) -> list[Span]:
    """Every ``(start, end)`` character span where ``phrase`` occurs in ``text`` (case-insensitive, whole words)."""
    pattern = phrase_pattern(phrase)
    if pattern is None:
        return []
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def gold_spans(text: str, phrases: Iterable[str]) -> tuple[list[Span], list[str]]:
    """Non-overlapping spans of every occurrence of the gold phrases, and the phrases that occur nowhere.

    Longer occurrences win over shorter ones they overlap ("regulatory compliance unit" over
    "regulatory compliance"); the result is sorted by start.
    """
    found: list[Span] = []
    unaligned: list[str] = []
    for phrase in dict.fromkeys(p.strip() for p in phrases):
        occurrences = find_occurrences(text, phrase)
        if not occurrences:
            unaligned.append(phrase)
        found.extend(occurrences)
    chosen: list[Span] = []
    for span in sorted(set(found), key=lambda s: (-(s[1] - s[0]), s[0])):
        if all(span[1] <= c[0] or span[0] >= c[1] for c in chosen):
            chosen.append(span)
    return sorted(chosen), unaligned


@dataclass(slots=True)
class Window:
    """One tokenized window of a text.

    ``first[i]`` is true when token ``i`` is the first sub-token of a word whose sub-tokens all lie in this
    window; ``word_spans`` maps those words (global word index) to their character span in the text.
    """

    input_ids: list[int]
    attention_mask: list[int]
    word_ids: list[int | None]
    first: list[bool]
    word_spans: dict[int, Span]
    token_type_ids: list[int] | None = None

    def words(self) -> list[int]:
        """The complete words of this window in text order (global word indices)."""
        return [w for w, f in zip(self.word_ids, self.first) if f and w is not None]

    def model_inputs(self) -> dict[str, list[int]]:
        """``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes them)."""
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.token_type_ids is not None:
            inputs["token_type_ids"] = self.token_type_ids
        return inputs


def tokenize_windows(tokenizer: Any, text: str, max_length: int, stride: int) -> list[Window]:
    """Overlapping windows of at most ``max_length`` tokens (``stride`` tokens shared between neighbours).

    Needs a fast tokenizer (offset mapping and ``word_ids``); a slow one gets a clear error.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("keyphrase alignment needs a fast tokenizer (offset mapping / word_ids)")
    if stride >= max_length - 2:
        raise ValueError(f"stride ({stride}) must be smaller than max_length - 2 ({max_length - 2})")
    enc = tokenizer(
        text,
        max_length=max_length,
        stride=stride,
        truncation=True,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    n_windows = len(enc["input_ids"])
    # Character extent of every word over the whole text (windows may cut a word in two).
    extent: dict[int, list[int]] = {}
    per_window_ids = [enc.word_ids(w) for w in range(n_windows)]
    for w in range(n_windows):
        for wid, (start, end) in zip(per_window_ids[w], enc["offset_mapping"][w]):
            if wid is None:
                continue
            e = extent.setdefault(wid, [start, end])
            e[0] = min(e[0], start)
            e[1] = max(e[1], end)
    windows = []
    for w in range(n_windows):
        word_ids = per_window_ids[w]
        offsets = enc["offset_mapping"][w]
        # The span a window sees of each word; complete when it equals the word's whole extent.
        seen: dict[int, list[int]] = {}
        for wid, (start, end) in zip(word_ids, offsets):
            if wid is not None:
                s = seen.setdefault(wid, [start, end])
                s[0] = min(s[0], start)
                s[1] = max(s[1], end)
        complete = {wid for wid, s in seen.items() if s == extent[wid]}
        first = []
        previous = None
        for wid, (start, _end) in zip(word_ids, offsets):
            first.append(wid is not None and wid in complete and wid != previous and start == extent[wid][0])
            previous = wid
        windows.append(
            Window(
                input_ids=list(enc["input_ids"][w]),
                attention_mask=list(enc["attention_mask"][w]),
                word_ids=list(word_ids),
                first=first,
                word_spans={wid: (extent[wid][0], extent[wid][1]) for wid in complete},
                token_type_ids=list(enc["token_type_ids"][w]) if "token_type_ids" in enc else None,
            )
        )
    return windows


def word_tags(word_spans: dict[int, Span], spans: Sequence[Span]) -> dict[int, int]:
    """BIO tag of every word: ``B`` for the first word overlapping a gold span, ``I`` for the rest, else ``O``."""
    tags = dict.fromkeys(word_spans, O)
    ordered = sorted(word_spans.items(), key=lambda item: item[1][0])
    for s, e in spans:
        inside = [wid for wid, (ws, we) in ordered if ws < e and we > s]
        for k, wid in enumerate(inside):
            tags[wid] = B if k == 0 else I
    return tags


def bio_labels(window: Window, spans: Sequence[Span]) -> list[int]:
    """Token labels for one window: a BIO tag on first sub-tokens, ``-100`` on the rest and on special tokens."""
    tags = word_tags(window.word_spans, spans)
    return [tags[wid] if f else IGNORE_INDEX for wid, f in zip(window.word_ids, window.first)]


_CONNECTORS = frozenset({"-", "/", "'", "+", "&", "_"})
_WORD_CHAR = re.compile(r"\w")


@dataclass(slots=True)
class WordGroup:
    """Tokenizer words written together ("anti", "-", "spam" -> "anti-spam"): one word of a candidate phrase."""

    word_ids: list[int]
    start: int
    end: int
    alnum: bool


def join_words(text: str, word_spans: dict[int, Span]) -> list[WordGroup]:
    """Group adjacent tokenizer words that no space separates and a connector (``- / ' + & _``) or two
    letter/digit pieces join; punctuation such as ``,`` or ``(`` stays its own group (``alnum=False``)."""
    groups: list[WordGroup] = []
    previous = None
    for wid in sorted(word_spans, key=lambda w: word_spans[w][0]):
        start, end = word_spans[wid]
        piece = text[start:end]
        has_word = bool(_WORD_CHAR.search(piece))
        if (groups and previous is not None and groups[-1].end == start
                and (piece in _CONNECTORS or previous in _CONNECTORS or (has_word and _WORD_CHAR.search(previous)))):
            group = groups[-1]
            group.word_ids.append(wid)
            group.end = end
            group.alnum = group.alnum or has_word
        else:
            groups.append(WordGroup([wid], start, end, has_word))
        previous = piece
    return groups


@dataclass(slots=True)
class AlignmentStats:
    """How many gold phrases of a dataset could be placed in their text."""

    n_docs: int = 0
    n_phrases: int = 0
    n_unaligned: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def share_unaligned(self) -> float:
        """Unaligned phrases / all gold phrases (0 when there are none)."""
        return self.n_unaligned / self.n_phrases if self.n_phrases else 0.0

    def add(self, n_phrases: int, unaligned: Sequence[str]) -> None:
        """Count one document."""
        self.n_docs += 1
        self.n_phrases += n_phrases
        self.n_unaligned += len(unaligned)
        room = 5 - len(self.examples)
        if room > 0:
            self.examples.extend(unaligned[:room])

    def as_dict(self) -> dict[str, Any]:
        """Plain summary for logs, model cards and the registry."""
        return {
            "docs": self.n_docs,
            "phrases": self.n_phrases,
            "unaligned": self.n_unaligned,
            "share_unaligned": round(self.share_unaligned, 4),
            "unaligned_examples": list(self.examples),
        }
