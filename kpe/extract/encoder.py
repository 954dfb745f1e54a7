"""The sentence encoder behind extraction: any local sentence-transformers or plain Hugging Face model directory.

``SentenceEncoder`` loads the model with ``SentenceTransformer(path, device=...)`` (a plain BERT directory
gets mean pooling), tokenizes once, sorts texts by token length and runs batches bounded by a padded-token
budget, so a batch of 4-token phrases is padded to ~6 positions, not to 256. It returns the model's own
sentence embeddings (its pooling and normalisation), and for documents optionally the last-layer token
vectors with their character offsets (for contextual candidate scores).

Documents longer than the encoder's limit (``max_seq_length``: 256 word pieces for all-MiniLM-L6-v2, i.e. 254
of text plus [CLS]/[SEP]) are cut into consecutive windows of that size; the document embedding is the first
window's (what plain KeyBERT / sentence-transformers see: the text is truncated) or, with ``chunks=True``,
the token-count-weighted mean of all windows' embeddings.

Precision: ``fp32``; ``bf16`` (autocast; fast only on CPUs with AVX512-BF16/AMX, and on CUDA); ``fp16``
(CUDA); ``int8`` (dynamic int8 quantisation of the Linear layers, CPU); ``auto`` picks bf16 on CUDA or a
bf16-capable CPU, fp32 otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from kpe.encoders import resolve_encoder

log = logging.getLogger(__name__)

#: Padded tokens per batch. On CPU, batches whose activations stay in cache run fastest (all-MiniLM-L6-v2, one
#: thread: phrases 441/s at 8192 tokens, 625/s at 2048; documents 11.7/s at 8192, 13.2/s at 2048).
CPU_BATCH_TOKENS = 2048
CUDA_BATCH_TOKENS = 65536

# Files that do not change what a model computes (left out of its fingerprint).
_FINGERPRINT_SKIP = {"README.md", ".gitattributes", "LICENSE", "model_card.md"}
_FINGERPRINT_SUFFIXES_SKIP = {".md", ".png", ".jpg", ".txt.lock"}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (``/proc/cpuinfo``; empty where it does not exist)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without it bf16 autocast is emulated and slow."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; anything else as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_precision(precision: str, device: str) -> str:
    """The precision actually used: ``auto`` -> bf16 on CUDA (fp16 without bf16) or on a bf16-capable CPU, else fp32."""
    import torch

    is_cuda = device.startswith("cuda")
    if precision == "auto":
        if is_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and not is_cuda:
        raise ValueError("precision fp16 needs a CUDA device; use fp32, bf16 or int8 on CPU")
    if precision == "int8" and is_cuda:
        raise ValueError("precision int8 (dynamic quantisation) runs on CPU only")
    if precision not in ("fp32", "bf16", "fp16", "int8"):
        raise ValueError(f"unknown precision {precision!r}")
    return precision


def model_fingerprint(path: str) -> str:
    """16 hex digits identifying what a model computes: sha256 over its directory's files (names and bytes).

    A Hugging Face id that is not a local directory is fingerprinted by its name.
    """
    root = Path(path)
    digest = hashlib.sha256()
    if not root.is_dir():
        digest.update(f"id:{path}".encode())
        return digest.hexdigest()[:16]
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if file.name in _FINGERPRINT_SKIP or file.suffix in _FINGERPRINT_SUFFIXES_SKIP or rel.startswith("."):
            continue
        digest.update(rel.encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def token_budget_batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[np.ndarray]:
    """Index batches over texts sorted by length (longest first) whose padded size stays within ``batch_tokens``."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    start = 0
    while start < len(order):
        longest = max(1, int(lengths[order[start]]))
        size = max(1, batch_tokens // longest)
        yield order[start : start + size]
        start += size


@dataclass(slots=True)
class DocumentEncoding:
    """One document after the encoder: its embedding and, when asked, its token vectors with character offsets."""

    embedding: np.ndarray  # (d,)
    token_vectors: np.ndarray | None = None  # (t, d) text tokens only, [CLS]/[SEP]/padding removed
    token_starts: np.ndarray | None = None  # (t,) character offsets in the document text
    token_ends: np.ndarray | None = None


class SentenceEncoder:
    """A sentence-transformers model with length-sorted, token-budget batching and a chosen precision."""

    def __init__(
        self,
        model_path: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        batch_tokens: int | None = None,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.path = resolve_encoder(model_path)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_tokens = batch_tokens or (CUDA_BATCH_TOKENS if self.device.startswith("cuda") else CPU_BATCH_TOKENS)
        self.model = SentenceTransformer(self.path, device=self.device)
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        transformer = self.model[0]
        config = transformer.auto_model.config
        limits = [v for v in (self.model.max_seq_length, getattr(config, "max_position_embeddings", None)) if v]
        self.max_length = int(min(limits)) if limits else 512
        self.dimension = int(self.model.get_embedding_dimension())
        self.fingerprint = model_fingerprint(self.path)
        self.lowercases = self._tokenizer_lowercases()
        self._autocast_dtype = None
        if self.precision == "bf16":
            self._autocast_dtype = torch.bfloat16
        elif self.precision == "fp16":
            self._autocast_dtype = torch.float16
        elif self.precision == "int8":
            self._quantize_int8()
        self._prefix, self._suffix = self._special_tokens()
        self._n_special = len(self._prefix) + len(self._suffix)

    # --- set-up -------------------------------------------------------------------------------------

    def _tokenizer_lowercases(self) -> bool:
        """Whether the tokenizer ignores case (then "IL-6" and "il-6" are the same input)."""
        probe = "Keyphrase ABC Xy"
        return self.tokenizer(probe)["input_ids"] == self.tokenizer(probe.lower())["input_ids"]

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The special token ids the tokenizer puts before and after one text ([CLS] and [SEP] for BERT)."""
        probe = "keyphrase extraction"
        with_special = list(self.tokenizer(probe)["input_ids"])
        plain = list(self.tokenizer(probe, add_special_tokens=False)["input_ids"])
        for i in range(len(with_special) - len(plain) + 1):
            if with_special[i : i + len(plain)] == plain:
                return with_special[:i], with_special[i + len(plain) :]
        raise ValueError(f"cannot locate the text tokens among the special tokens of {self.path}")

    def _quantize_int8(self) -> None:
        import torch

        transformer = self.model[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transformer.model = torch.ao.quantization.quantize_dynamic(
                transformer.model, {torch.nn.Linear}, dtype=torch.qint8
            )
        log.info("int8: Linear layers of %s dynamically quantised", self.path)

    @property
    def input_embeddings(self) -> np.ndarray:
        """The encoder's input token-embedding matrix ``(vocab, hidden)`` as float32 numpy (for static scores)."""
        if not hasattr(self, "_input_embeddings"):
            weight = self.model[0].auto_model.get_input_embeddings().weight
            self._input_embeddings = weight.detach().float().cpu().numpy()
        return self._input_embeddings

    def key(self, phrase: str) -> str:
        """The text a phrase is encoded as (lowercased when the tokenizer ignores case): the cache key."""
        return phrase.lower() if self.lowercases else phrase

    # --- running the model --------------------------------------------------------------------------

    def _context(self) -> contextlib.AbstractContextManager:
        import torch

        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=self._autocast_dtype)

    def _forward(self, ids: list[list[int]]) -> tuple:
        """Run one padded batch; returns (sentence embeddings, token embeddings, attention mask) on CPU."""
        import torch

        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.as_tensor(seq)
            mask[row, : len(seq)] = 1
        features = {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}
        if "token_type_ids" in self.tokenizer.model_input_names:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode(), self._context():
            out = self.model(features)
        return out["sentence_embedding"].float().cpu(), out["token_embeddings"].float().cpu(), mask

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Sentence embeddings ``(n, d)`` float32 of already tokenized inputs (special tokens included)."""
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        for batch in token_budget_batches([len(x) for x in ids], self.batch_tokens):
            emb, _, _ = self._forward([ids[i] for i in batch])
            out[batch] = emb.numpy()
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to the encoder's limit (as sentence-transformers does)."""
        if not texts:
            return []
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``(n, d)`` float32 of short texts (phrases), truncated to the encoder's limit."""
        return self.encode_ids(self.tokenize(texts))

    def encode_documents(
        self, texts: Sequence[str], *, chunks: bool = False, token_vectors: bool = False, all_windows: bool = False
    ) -> list[DocumentEncoding]:
        """Document embeddings (first window, or weighted mean of all windows with ``chunks``), optionally with the
        token vectors of the encoded windows (the first only, unless ``all_windows`` or ``chunks``).
        """
        if not texts:
            return []
        need_offsets = token_vectors
        if need_offsets and not getattr(self.tokenizer, "is_fast", False):
            raise ValueError("token vectors need a fast tokenizer (character offsets)")
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=need_offsets, verbose=False)
        window = self.max_length - self._n_special
        inputs: list[list[int]] = []
        owner: list[tuple[int, int, int]] = []  # (doc, first token of the window, window index)
        for d, ids in enumerate(enc["input_ids"]):
            n_windows = max(1, -(-len(ids) // window)) if (chunks or all_windows) else 1
            for w in range(n_windows):
                piece = ids[w * window : (w + 1) * window]
                inputs.append(self._prefix + piece + self._suffix)
                owner.append((d, w * window, w))
        lead = len(self._prefix)
        results = [DocumentEncoding(np.zeros(self.dimension, np.float32)) for _ in texts]
        sums = np.zeros((len(texts), self.dimension), dtype=np.float32)
        weights = np.zeros(len(texts), dtype=np.float32)
        tokens: list[list[tuple[int, np.ndarray]]] = [[] for _ in texts]
        for batch in token_budget_batches([len(x) for x in inputs], self.batch_tokens):
            emb, tok, mask = self._forward([inputs[i] for i in batch])
            emb_np = emb.numpy()
            for row, i in enumerate(batch):
                d, first, w = owner[i]
                n_text = len(inputs[i]) - self._n_special
                if w == 0:
                    results[d].embedding = emb_np[row].copy()
                if chunks:
                    sums[d] += emb_np[row] * max(n_text, 1)
                    weights[d] += max(n_text, 1)
                if token_vectors:
                    tokens[d].append((first, tok[row, lead : lead + n_text].numpy().copy()))
        if chunks:
            for d in range(len(texts)):
                if weights[d] > 0:
                    results[d].embedding = sums[d] / weights[d]
        if token_vectors:
            for d in range(len(texts)):
                parts = [vec for _, vec in sorted(tokens[d], key=lambda item: item[0])]
                offsets = np.asarray(enc["offset_mapping"][d], dtype=np.int64).reshape(-1, 2)
                vectors = np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)
                results[d].token_vectors = vectors
                results[d].token_starts = offsets[: len(vectors), 0]
                results[d].token_ends = offsets[: len(vectors), 1]
        return results

    def static_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """Mean of the input token embeddings of each text (no special tokens): a context-free, model-free vector."""
        table = self.input_embeddings
        out = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
        if not texts:
            return out
        for i, ids in enumerate(self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]):
            if ids:
                out[i] = table[ids].mean(axis=0)
        return out
