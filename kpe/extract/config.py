"""Extraction settings: one frozen object, hashed into every stored result so a change of settings shows in the data.

Usage::

    config = ExtractionConfig(top_n=10, diversity=0.3)
    config.config_hash()        # '3f1c...' (16 hex), stored with every keyphrase
    ExtractionConfig.keybert()  # the settings that reproduce plain KeyBERT

Fields that change *what* is extracted enter the hash; fields that only change *how fast* (batch size,
threads, device, the embedding cache) do not (``RUNTIME_FIELDS``), so re-running with more threads does not
make every stored result look stale.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]

#: Version of the extraction algorithm itself (candidate rules, stop words, pooling): part of ``config_hash``, bumped
#: whenever code changes what the same settings extract.
#: kpe-extract-2: a text's vectors no longer depend on its batch (one canonical padded length per text, row-wise int8),
#: exact score ties broken by phrase text, ``max_text_chars``.
#: kpe-extract-3: long documents (``long_document_chars``) ranked by cosine x frequency x first position, and their
#: candidates ending in a number ("Definition 1.5", "Table 2") dropped; shorter texts rank as before.
#: kpe-extract-4: the fine-tuned tagger and hybrid methods run at the configured ``precision`` too (before: always
#: fp32, whatever the run recorded), their windows batched like the engine's texts (a document's result does not
#: depend on its batch); what the kpe engine extracts is unchanged.
ENGINE_VERSION = "kpe-extract-4"

#: Settings that do not change the extracted phrases (left out of ``config_hash``).
RUNTIME_FIELDS: frozenset[str] = frozenset({"batch_tokens", "use_cache", "threads", "device", "cache_memory_items"})


class ExtractionConfig(BaseModel):
    """How the KeyBERT-style engine extracts keyphrases (see ``kpe.extract.engine``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_n: int = Field(10, ge=1, description="Keyphrases returned per document")
    ngram_range: tuple[int, int] = Field((1, 3), description="Words per candidate (min, max)")
    candidate_mode: Literal["phrases", "keybert"] = Field(
        "phrases", description="phrases: stop-word-bounded n-grams (ours); keybert: KeyBERT's CountVectorizer n-grams"
    )
    max_candidates: int | None = Field(None, ge=1, description="Cap on candidates per document (first occurrences)")
    diversity: float | None = Field(None, ge=0.0, le=1.0, description="MMR diversity; None: plain cosine ranking")
    use_maxsum: bool = Field(False, description="Max Sum Distance over the nr_candidates best candidates")
    nr_candidates: int = Field(20, ge=1, description="Candidates Max Sum Distance chooses from")
    drop_subphrases: bool = Field(False, description="Drop a phrase whose words lie inside a better-ranked phrase")
    prefilter: Literal["none", "contextual", "static"] = Field(
        "contextual",
        description="Cheap first pass that keeps prefilter_k candidates per document for the full encoder pass: "
        "contextual = mean of the document pass's token vectors over the candidate's occurrences; "
        "static = mean of the encoder's input token embeddings",
    )
    prefilter_k: int = Field(30, ge=1, description="Candidates per document kept by the prefilter (at least top_n)")
    prefilter_windows: Literal["all", "first"] = Field(
        "all",
        description="Token vectors the contextual prefilter scores from: all = the whole text (extra windows of "
        "max_seq_length word pieces for long documents); first = the document pass's window only (candidates "
        "beyond it all go to the phrase pass)",
    )
    doc_embedding: Literal["truncate", "chunks"] = Field(
        "truncate",
        description="truncate: the encoder sees the first max_seq_length word pieces; chunks: mean of the "
        "embeddings of consecutive windows covering the whole text",
    )
    candidate_embedding: Literal["phrase", "contextual"] = Field(
        "phrase", description="phrase: each candidate encoded on its own (KeyBERT); contextual: pooled token vectors"
    )
    precision: Precision = Field(
        "auto", description="auto: bf16 where the CPU has native bf16 (AVX512-BF16/AMX) or on CUDA, else fp32"
    )
    max_text_chars: int | None = Field(
        100_000, ge=1000,
        description="Only the first this many characters of a document are read (cut back to a word boundary): "
        "candidates, document pass and first pass alike, so a pathological 5 MB 'abstract' costs as much as a "
        "100 kB one (a few seconds). The longest texts of the keyphrase benchmarks (NUS full papers, at most 75 kB) "
        "are read whole; None: no limit",
    )
    long_document_chars: int | None = Field(
        8000, ge=1,
        description="Texts at least this long (full papers, not abstracts) are ranked by max(cosine, 0)^2 x "
        "ln(1 + occurrences) x a decay of the first occurrence's position (kpe.extract.ranking.long_document_scores), "
        "in the first pass and the final ranking alike, and their candidates ending in a number are dropped: "
        "cosine alone ranks generic words of a 50 kB paper first. None: every text ranked by cosine alone",
    )
    # --- runtime only: not part of config_hash ---
    batch_tokens: int | None = Field(
        None,
        ge=64,
        description="Padded tokens per encoder batch (texts of one canonical length); None: 2048 on CPU (fits the "
        "caches: measured fastest), 65536 on CUDA"
    )
    use_cache: bool = Field(True, description="Persistent candidate-embedding cache under settings.cache_dir")
    cache_memory_items: int = Field(200_000, ge=0, description="In-memory LRU entries in front of the disk cache")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: leave torch's default)")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, ...")

    @model_validator(mode="after")
    def _check(self) -> ExtractionConfig:
        low, high = self.ngram_range
        if not 1 <= low <= high:
            raise ValueError(f"ngram_range must be (low, high) with 1 <= low <= high, got {self.ngram_range}")
        if self.use_maxsum and self.diversity is not None:
            raise ValueError("choose one diversification: diversity (MMR) or use_maxsum, not both")
        if self.use_maxsum and self.nr_candidates < self.top_n:
            raise ValueError(f"nr_candidates ({self.nr_candidates}) must be >= top_n ({self.top_n}) for Max Sum")
        return self

    @classmethod
    def keybert(cls, **overrides: object) -> ExtractionConfig:
        """The settings that reproduce plain ``KeyBERT.extract_keywords(docs, (1, 3), "english", top_n=10)``, long
        texts included (cosine alone: no long-document score)."""
        values: dict[str, object] = dict(candidate_mode="keybert", prefilter="none", precision="fp32",
                                         long_document_chars=None)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def fast(cls, **overrides: object) -> ExtractionConfig:
        """The throughput setting: candidates embedded from the document pass's token vectors (no per-phrase
        encoder pass) and, on CPU, int8 dynamic quantisation (bf16 where the CPU has AMX, which is faster there).
        Measured on 2 CPU threads: as fast as encoding the documents alone (12x plain KeyBERT), with lower F1 than
        the default but above plain KeyBERT's (README: "The extraction engine")."""
        values: dict[str, object] = dict(candidate_embedding="contextual")
        values.update(overrides)
        from kpe.extract.encoder import cpu_has_amx, resolve_device

        if "precision" not in overrides and not resolve_device(str(values.get("device", "auto"))).startswith("cuda"):
            values["precision"] = "bf16" if cpu_has_amx() else "int8"
        return cls(**values)

    def canonical(self) -> dict:
        """The settings that define the result, as plain JSON-able data (runtime fields left out, the engine
        version added)."""
        return {**self.model_dump(mode="json", exclude=set(RUNTIME_FIELDS)), "engine_version": ENGINE_VERSION}

    def config_hash(self) -> str:
        """First 16 hex digits of the sha256 of the canonical JSON of :meth:`canonical`."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> str:
        """All settings (runtime ones included) as a JSON object, keys sorted."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)
