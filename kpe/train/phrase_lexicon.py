"""What a training corpus says about a phrase, for the ``ranked`` method's span ranker.

A tagger sees one document at a time. Whether a phrase is the kind of phrase authors pick shows across the corpus:
how many training documents list it among their keyphrases, how often it is picked where it occurs
("keyphraseness", as in KEA++ and Medelyan & Witten 2006), and how common its words are (inverse document
frequency, as in TF-IDF and KEA). The lexicon holds those counts for the **training split** of a tagger's data:
the span ranker is fitted on the validation slice, which the counts never saw, so its features there are what
extraction sees on a new document. It is stored beside the ranker as ``phrase_lexicon.json.gz`` (plain counts).

Keys are :func:`kpe.phrases.normalize_phrase` keys, and a text's words are its :func:`kpe.phrases.stem_tokens`.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kpe.phrases import normalize_phrase, stem_tokens

LEXICON_FILE = "phrase_lexicon.json.gz"
LEXICON_FEATURES = (
    "log_gold_docs",   # log(1 + training documents that list the phrase as a keyphrase)
    "keyphraseness",   # those documents / (1 + training documents whose text holds the phrase)
    "mean_idf",        # the mean inverse document frequency of its words in the training texts
    "min_idf",         # of its most common word
    "max_idf",         # of its rarest word
)
#: A phrase listed by at least this many training documents joins a document's candidates wherever the document
#: holds it, even outside the tagger's best soft spans.
MIN_GOLD_DOCS = 2
#: Gold phrases longer than this many words are not counted in the texts (nor joined to the candidates).
MAX_WORDS = 6


@dataclass(frozen=True, slots=True)
class PhraseLexicon:
    """Document counts of a training corpus: words of the texts, gold phrases, and gold phrases in the texts."""

    documents: int
    word_docs: dict[str, int]
    gold_docs: dict[str, int]
    text_docs: dict[str, int]

    def is_known(self, key: str) -> bool:
        """Whether ``key`` was a keyphrase of at least :data:`MIN_GOLD_DOCS` training documents."""
        return self.gold_docs.get(key, 0) >= MIN_GOLD_DOCS

    def idf(self, word: str) -> float:
        """``log(documents / (1 + documents holding the word))``."""
        return math.log(self.documents / (1 + self.word_docs.get(word, 0)))

    def features(self, keys: Sequence[str]) -> np.ndarray:
        """The :data:`LEXICON_FEATURES` of each key, one row each."""
        rows = np.zeros((len(keys), len(LEXICON_FEATURES)), dtype=np.float32)
        for i, key in enumerate(keys):
            gold = self.gold_docs.get(key, 0)
            idf = [self.idf(w) for w in key.split()] or [0.0]
            rows[i] = (math.log1p(gold), gold / (1 + self.text_docs.get(key, 0)), sum(idf) / len(idf), min(idf),
                       max(idf))
        return rows

    def summary(self) -> dict[str, int]:
        """Sizes, for the ranker's summary and the model card."""
        return {"documents": self.documents, "words": len(self.word_docs), "gold_phrases": len(self.gold_docs),
                "known_phrases": sum(map(self.is_known, self.gold_docs)),
                "min_gold_docs": MIN_GOLD_DOCS}


def build_phrase_lexicon(docs: Sequence[Any]) -> PhraseLexicon:
    """Count words, gold phrases and gold phrases in the text over ``docs`` (``.text``, ``.keyphrases``): two passes
    (the gold phrases first), so that no document's tokens are held."""
    if not docs:
        raise ValueError("a phrase lexicon needs training documents: none given")
    word_docs: Counter[str] = Counter()
    gold_docs: Counter[str] = Counter()
    for doc in docs:
        word_docs.update(set(stem_tokens(doc.text)))
        gold_docs.update({normalize_phrase(k) for k in doc.keyphrases} - {""})
    longest = min(MAX_WORDS, max((len(k.split()) for k in gold_docs), default=0))
    text_docs: Counter[str] = Counter()
    for doc in docs:
        words = stem_tokens(doc.text)
        text_docs.update({g for n in range(1, longest + 1) for i in range(len(words) - n + 1)
                          if (g := " ".join(words[i: i + n])) in gold_docs})
    return PhraseLexicon(len(docs), dict(word_docs), dict(gold_docs), dict(text_docs))


def save_phrase_lexicon(lexicon: PhraseLexicon, model_dir: Path | str) -> Path:
    """Write ``phrase_lexicon.json.gz`` into a model dir."""
    path = Path(model_dir) / LEXICON_FILE
    data = {"documents": lexicon.documents, "word_docs": lexicon.word_docs, "gold_docs": lexicon.gold_docs,
            "text_docs": lexicon.text_docs}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
    return path


def load_phrase_lexicon(model_dir: Path | str) -> PhraseLexicon:
    """The lexicon of a model dir; a ``ValueError`` naming the file when it is missing or not a lexicon."""
    path = Path(model_dir) / LEXICON_FILE
    if not path.is_file():
        raise ValueError(f"{path} is missing: this span ranker was fitted with a phrase lexicon; run `kpe models "
                         "fit-ranker VERSION` again to write both")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
        counts = {name: {str(k): int(v) for k, v in data[name].items()}
                  for name in ("word_docs", "gold_docs", "text_docs")}
        documents = int(data["documents"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a phrase lexicon: {type(exc).__name__}: {exc}") from exc
    if documents < 1:
        raise ValueError(f"{path} is not a phrase lexicon: {documents} documents")
    return PhraseLexicon(documents, **counts)
