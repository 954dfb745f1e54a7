"""The sentence encoder behind extraction: any local sentence-transformers or plain Hugging Face model directory.

``SentenceEncoder`` loads the model with ``SentenceTransformer(path, device=...)`` (a plain BERT directory
gets mean pooling), tokenizes once, pads every text to its *canonical length* (``canonical_length``: its own
length up to 15 word pieces, above that rounded up by at most an eighth) and runs texts of one canonical length
together in batches of at most ``batch_tokens`` tokens. It returns the model's own sentence embeddings (its
pooling and normalisation), and for documents optionally the last-layer token vectors with their character
offsets (for contextual candidate scores).

**A text's vector does not depend on its batch** (``ENCODING_VERSION``): every text is encoded at one
canonical shape, a function of its own length only, so which texts share its forward pass changes nothing.
(Padding each batch to its longest text, as before, computed the same text at another width, and the kernels'
reductions, in bf16 above all, round differently: scores moved by up to 0.05.)
Measured on an AVX512-BF16 CPU and on one with AMX (torch 2.13, MKL / oneDNN): a text's vector is bitwise the same
alone or among 6-299 other texts, at any row, with 1 or 2 torch threads, in fp32, bf16 and int8, once a forward pass
has at least :func:`min_forward_tokens` token rows (128; on a CPU with AMX 256 in fp32 and 512 in bf16; smaller
batches are filled up with copies). int8 quantises activations per row (per token, ``rowwise_int8``), not per
tensor: a per-tensor dynamic scale is the largest activation of the whole batch, which coupled every document to its
neighbours. So extraction results, and the embedding cache's vectors, are a function of the text, the model and the
config (and the machine's kernels: tests/test_extract.py checks the invariance on whichever CPU runs it). On CUDA
the library may pick kernels by batch size: there the invariance holds only up to float noise.

Documents longer than the encoder's limit (``max_seq_length``: 256 word pieces for all-MiniLM-L6-v2, i.e. 254
of text plus [CLS]/[SEP]) are cut into consecutive windows of that size; the document embedding is the first
window's (what plain KeyBERT / sentence-transformers see: the text is truncated) or, with ``chunks=True``,
the token-count-weighted mean of all windows' embeddings.

Precision: ``fp32``; ``bf16`` (autocast; fast only on CPUs with AVX512-BF16/AMX, and on CUDA); ``fp16``
(CUDA); ``int8`` (the Linear layers in int8: weights per output channel, activations per token, exact int32
accumulation; CPU); ``auto`` picks bf16 on CUDA or a bf16-capable CPU, fp32 otherwise.
``resolved_precision(config)`` says which one a config gets on this machine; ``settings.native_bf16``
(``KPE_NATIVE_BF16=yes|no``) overrides the CPU detection, to run everything as the other kind of machine does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kpe.encoders import resolve_encoder

if TYPE_CHECKING:
    from kpe.extract.config import ExtractionConfig

log = logging.getLogger(__name__)

#: Padded tokens per batch. On CPU, batches whose activations stay in cache run fastest (all-MiniLM-L6-v2, one
#: thread: phrases 441/s at 8192 tokens, 625/s at 2048; documents 11.7/s at 8192, 13.2/s at 2048).
CPU_BATCH_TOKENS = 2048
CUDA_BATCH_TOKENS = 65536

#: How texts become forward passes: "e2" = one canonical padded length per text and row-wise int8 (a text's
#: vector does not depend on its batch). Part of the embedding cache's directory name, so vectors computed the
#: old way (padded to the batch's longest text, per-tensor int8 scales) are never mixed in.
ENCODING_VERSION = "e2"

#: Fewest token rows (texts x length) a forward pass runs with: a smaller batch is filled up with copies of its
#: first text (results dropped). GEMM libraries switch kernels for small matrices, and those sum in another order:
#: measured (MKL, fp32) on an AVX512-BF16 CPU, one text's vector differed in the last bit when a batch had at most
#: 11 token rows; on a CPU with AMX below 256 rows in fp32 (MKL, 2.5e-7) and below 512 in bf16 (oneDNN's AMX
#: kernels, 1e-3: enough to reorder a resumed run's keyphrases). int8 multiplies exactly (``torch._int_mm``): 128.
#: A filled-up pass costs what a full one does: in batches of 8 abstracts, bf16 on AMX, 5.8 docs/s at 512 rows
#: against 10.0 at 128 (``benchmarks/forward_floor.py``, which checks and prices each floor on its machine).
MIN_FORWARD_TOKENS = 128
MIN_FORWARD_TOKENS_AMX = {"bf16": 512, "fp32": 256}

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


def min_forward_tokens(precision: str) -> int:
    """The fewest token rows a forward pass at a resolved ``precision`` runs with on this CPU (``MIN_FORWARD_TOKENS``;
    on a CPU with AMX ``MIN_FORWARD_TOKENS_AMX[precision]`` where it has one)."""
    if "amx_bf16" not in cpu_flags():
        return MIN_FORWARD_TOKENS
    return MIN_FORWARD_TOKENS_AMX.get(precision, MIN_FORWARD_TOKENS)


def cpu_has_amx() -> bool:
    """Whether this CPU multiplies bf16 matrices on AMX tiles (``amx_bf16``; ``KPE_NATIVE_BF16=no`` counts as no).
    There bf16 beats int8 dynamic quantisation: the fast setting read 25-30 abstracts a second in bf16 and 15 in int8
    on one (2 cores), with the same F1 (README, "The extraction engine")."""
    from kpe.settings import get_settings

    return get_settings().native_bf16 != "no" and "amx_bf16" in cpu_flags()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without it bf16 autocast is emulated and slow.

    ``settings.native_bf16`` (``KPE_NATIVE_BF16``) overrides the detection: ``yes`` treats the CPU as native
    (``precision="auto"`` then resolves to bf16, emulated where the CPU lacks it), ``no`` as absent (fp32).
    """
    from kpe.settings import get_settings

    forced = get_settings().native_bf16
    if forced != "auto":
        return forced == "yes"
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; anything else as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_batch_tokens(device: str) -> int:
    """Padded tokens per forward pass on ``device`` (``CPU_BATCH_TOKENS`` / ``CUDA_BATCH_TOKENS``)."""
    return CUDA_BATCH_TOKENS if str(device).startswith("cuda") else CPU_BATCH_TOKENS


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


def resolved_precision(config: ExtractionConfig | Any) -> str:
    """The precision an extraction config runs at on this machine (``fp32``, ``bf16``, ``fp16`` or ``int8``):
    ``config.precision`` with ``auto`` resolved for ``config.device`` (pure: loads no model)."""
    return resolve_precision(str(config.precision), resolve_device(str(getattr(config, "device", "auto"))))


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


def canonical_length(n: int, limit: int) -> int:
    """The padded length a text of ``n`` tokens always runs at, whatever else is encoded with it: ``n`` rounded up to
    a multiple of ``2 ** (floor(log2 n) - 3)`` (exact up to 15 tokens, at most an eighth of padding above: phrases
    run unpadded, a 200-piece abstract at 208), never above ``limit``."""
    step = 1 << max(0, int(n).bit_length() - 4)
    return max(1, min(int(limit), -(-int(n) // step) * step))


def canonical_batches(lengths: Sequence[int], batch_tokens: int, limit: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(canonical length, index batch)``: texts grouped by :func:`canonical_length` (longest first), at most
    ``batch_tokens`` padded tokens a batch (at least one text)."""
    padded = np.asarray([canonical_length(n, max(limit, n)) for n in lengths], dtype=np.int64)
    order = np.argsort(-padded, kind="stable")
    start = 0
    while start < len(order):
        width = int(padded[order[start]])
        stop = start + int(np.searchsorted(-padded[order[start:]], -width, side="right"))
        size = max(1, batch_tokens // width)
        for first in range(start, stop, size):
            yield width, order[first : min(first + size, stop)]
        start = stop


def padded_batch(ids: Sequence[Sequence[int]], width: int, pad_id: int, precision: str) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` long tensors of one forward pass at ``width`` (a canonical length): the texts
    padded with ``pad_id``, then, when they make fewer than :func:`min_forward_tokens` token rows at ``precision``,
    copies of the first text appended (callers keep the first ``len(ids)`` rows)."""
    import torch

    n = len(ids)
    rows = n + max(0, -(-min_forward_tokens(precision) // max(1, width)) - n)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, width), dtype=torch.long)
    for row in range(rows):
        seq = ids[row] if row < n else ids[0]
        if len(seq) > width:
            raise ValueError(f"a text of {len(seq)} tokens in a batch of width {width}")
        input_ids[row, : len(seq)] = torch.as_tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def precision_context(precision: str, device: str) -> contextlib.AbstractContextManager:
    """The autocast a resolved precision runs under (``bf16`` / ``fp16``); none for ``fp32`` and ``int8``."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if str(device).startswith("cuda") else "cpu", dtype=dtype)


@lru_cache(maxsize=1)
def rowwise_int8_linear() -> type:
    """The class ``RowwiseInt8Linear`` (a ``torch.nn.Module``, defined on first use so importing stays torch-free).

    A Linear layer in int8 whose result for one row depends on that row only. Weights: symmetric int8 per output
    channel. Activations: symmetric int8 per row (token), scale = the row's largest magnitude / 127, quantised at
    run time; the int8 x int8 products are summed exactly in int32 (``torch._int_mm``), then scaled back.
    PyTorch's dynamic quantisation (``quantize_dynamic``) instead takes one activation scale for the whole input
    tensor, i.e. the largest activation of the whole batch: a document's result depended on its neighbours.
    """
    import torch

    class RowwiseInt8Linear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            weight = linear.weight.detach().float()
            scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.register_buffer("weight_q", torch.round(weight / scale[:, None]).to(torch.int8).t().contiguous())
            self.register_buffer("weight_scale", scale)
            bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(self.out_features)
            self.register_buffer("bias", bias)
            self.int_mm = _int_mm_works()
            if not self.int_mm:  # float products of int8 values: deterministic per row (exact up to 1040 inputs)
                self.register_buffer("weight_qf", self.weight_q.float())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            rows = x.reshape(-1, shape[-1]).float()
            scale = rows.abs().amax(dim=1, keepdim=True).clamp_min_(1e-12).div_(127.0)
            quantised = torch.div(rows, scale).round_()
            if self.int_mm:
                acc = torch._int_mm(quantised.to(torch.int8), self.weight_q).float()
            else:
                acc = quantised @ self.weight_qf
            out = torch.addcmul(self.bias, acc.mul_(self.weight_scale), scale, out=acc)
            return out.reshape(*shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8 per row"

    return RowwiseInt8Linear


@lru_cache(maxsize=1)
def _int_mm_works() -> bool:
    """Whether this torch build has a CPU int8 x int8 -> int32 matmul (``torch._int_mm``)."""
    import torch

    try:
        a = torch.ones((3, 8), dtype=torch.int8)
        return bool((torch._int_mm(a, torch.ones((8, 4), dtype=torch.int8)) == 8).all())
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def rowwise_int8(module: Any) -> int:
    """Replace every ``torch.nn.Linear`` inside ``module`` by a ``RowwiseInt8Linear``; returns how many."""
    import torch

    cls = rowwise_int8_linear()
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, cls(child))
            count += 1
        else:
            count += rowwise_int8(child)
    return count


@dataclass(slots=True)
class DocumentEncoding:
    """One document after the encoder: its embedding and, when asked, its token vectors with character offsets."""

    embedding: np.ndarray  # (d,)
    token_vectors: np.ndarray | None = None  # (t, d) text tokens only, [CLS]/[SEP]/padding removed
    token_starts: np.ndarray | None = None  # (t,) character offsets in the document text
    token_ends: np.ndarray | None = None
    windows: int = 1  # encoder windows run for this document


#: Architectures whose checkpoint carries a task head the sentence encoder leaves out (a trained tagger, an MLM).
HEAD_ARCHITECTURE_SUFFIXES = ("ForTokenClassification", "ForMaskedLM", "ForPreTraining", "ForSequenceClassification")


class _DropLoadReport(logging.Filter):
    """Drops transformers' "<Model> LOAD REPORT" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def head_left_out_quietly(path: str) -> Iterator[None]:
    """Load the encoder of a fine-tuned model dir without transformers' load-report warning.

    The report lists the head's weights as unexpected and the (unused) pooler as missing, "newly initialized":
    expected here, and alarming in every nightly log. One INFO line says it instead; a size mismatch still raises,
    and a directory without a task head (a plain or sentence-transformers encoder) keeps the report.
    """
    import json

    try:
        architectures = json.loads((Path(path) / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        architectures = []
    heads = [a for a in architectures if str(a).endswith(HEAD_ARCHITECTURE_SUFFIXES)]
    if not heads:
        yield
        return
    # A filter, not a level: transformers checks its logger's level to decide on other warnings (tensor parallel)
    report_logger = logging.getLogger("transformers.modeling_utils")
    drop_report = _DropLoadReport()
    report_logger.addFilter(drop_report)
    try:
        yield
    finally:
        report_logger.removeFilter(drop_report)
    log.info("encoder of %s loaded without its %s head", path, heads[0])


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
        self.batch_tokens = batch_tokens or default_batch_tokens(self.device)
        with head_left_out_quietly(self.path):
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
        if self.precision == "int8":
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
        n = rowwise_int8(self.model[0].auto_model)
        log.info("int8: %d Linear layers of %s quantised (weights per channel, activations per row)", n, self.path)

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

    def _forward(self, ids: list[list[int]], width: int, tokens: bool = True) -> tuple:
        """Run one batch padded to ``width`` (the texts' canonical length); returns (sentence embeddings, token
        embeddings or ``None`` without ``tokens``) on CPU: on a GPU the token vectors of a batch are 100 MB, so
        they are copied off the device only when asked for. A batch of fewer than :func:`min_forward_tokens` token
        rows is filled up with copies."""
        import torch

        n = len(ids)
        input_ids, mask = padded_batch(ids, width, self.tokenizer.pad_token_id or 0, self.precision)
        features = {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}
        if "token_type_ids" in self.tokenizer.model_input_names:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode(), precision_context(self.precision, self.device):
            out = self.model(features)
        token_embeddings = out["token_embeddings"][:n].float().cpu() if tokens else None
        return out["sentence_embedding"][:n].float().cpu(), token_embeddings

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Sentence embeddings ``(n, d)`` float32 of already tokenized inputs (special tokens included)."""
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        for width, batch in canonical_batches([len(x) for x in ids], self.batch_tokens, self.max_length):
            emb, _ = self._forward([ids[i] for i in batch], width, tokens=False)
            out[batch] = emb.numpy()
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to the encoder's limit (as sentence-transformers does)."""
        if not texts:
            return []
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length, return_attention_mask=False,
                              return_token_type_ids=False)["input_ids"]

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
        window_embeddings: list[dict[int, tuple[np.ndarray, int]]] = [{} for _ in texts]
        tokens: list[list[tuple[int, np.ndarray]]] = [[] for _ in texts]
        for width, batch in canonical_batches([len(x) for x in inputs], self.batch_tokens, self.max_length):
            emb, tok = self._forward([inputs[i] for i in batch], width, tokens=token_vectors)
            emb_np = emb.numpy()
            for row, i in enumerate(batch):
                d, first, w = owner[i]
                n_text = len(inputs[i]) - self._n_special
                window_embeddings[d][w] = (emb_np[row].copy(), max(n_text, 1))
                if token_vectors:
                    tokens[d].append((first, tok[row, lead : lead + n_text].numpy().copy()))
        for d, by_window in enumerate(window_embeddings):
            results[d].windows = len(by_window)
            if 0 in by_window:
                results[d].embedding = by_window[0][0]
            if chunks and by_window:  # summed in window order, not in the order the batches ran
                total = np.zeros(self.dimension, dtype=np.float32)
                weight = 0.0
                for w in sorted(by_window):
                    vec, n = by_window[w]
                    total += vec * n
                    weight += n
                results[d].embedding = total / np.float32(weight)
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
