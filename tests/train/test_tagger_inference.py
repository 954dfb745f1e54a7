"""How a trained tagger runs at extraction time: batch-independent windows at the configured precision, the hybrid
method's document embedding taken from the tagger's own pass, lazy span ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.cpu import needs_native_bf16

from kpe.datasets import load_benchmark
from kpe.train import TrainConfig, train

# max_length 256 = the SentenceTransformer limit the saved dir declares: the hybrid shares the tagger's pass
SETTINGS = {"max_length": 256, "stride": 64, "batch_size": 4, "eval_batch_size": 16, "log_with": "none",
            "max_val_docs": 4, "tune_hybrid": False, "fit_span_ranker": False, "num_threads": 1}


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_encoder: Path) -> Path:
    out = tmp_path_factory.mktemp("tagger")
    result = train(TrainConfig(kind="tagger", base=str(tiny_encoder), train_data=["inspec"], max_docs=8,
                               max_steps=2, output_dir=out, shared_data_dir=shared_data, **SETTINGS))
    return result.model_dir


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> list[str]:
    """Inspec dev abstracts, and one NUS paper (many windows) among them."""
    import json

    docs = [d.text for d in load_benchmark("inspec", "dev", shared_data)[:6]]
    with (shared_data / "keyphrase" / "nus_dev.jsonl").open() as fh:
        paper = json.loads(fh.readline())
    return [*docs[:3], " ".join(paper["text"].split()[:1500]), *docs[3:]]


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_native_bf16)])
def test_a_documents_probabilities_do_not_depend_on_its_batch(tagger_dir: Path, texts: list[str], precision: str):
    from kpe.train.tagger import TaggerExtractor

    tagger = TaggerExtractor(tagger_dir, precision=precision)
    assert tagger.precision == precision and tagger.describe()["precision"] == precision
    together = tagger.tag(texts)
    assert len(together[3].word_probs) > 1000  # the paper: several windows, merged
    for i in (0, 3, len(texts) - 1):
        (alone,) = tagger.tag([texts[i]])
        assert alone.word_spans == together[i].word_spans
        assert alone.word_probs.keys() == together[i].word_probs.keys()
        assert all(np.array_equal(alone.word_probs[w], together[i].word_probs[w]) for w in alone.word_probs)
    # a smaller token budget (other batches) changes nothing either
    small = TaggerExtractor(tagger_dir, precision=precision, batch_tokens=256).tag(texts)
    assert all(np.array_equal(a.word_probs[w], b.word_probs[w])
               for a, b in zip(small, together) for w in a.word_probs)


def test_auto_precision_follows_the_cpu_kind(tagger_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from kpe.extract.methods import build_extractor, describe_extractor
    from kpe.settings import get_settings

    for native, expected in (("no", "fp32"), ("yes", "bf16")):
        monkeypatch.setenv("KPE_NATIVE_BF16", native)
        get_settings.cache_clear()
        try:
            for method in ("tagger", "hybrid"):
                extractor = build_extractor(method, str(tagger_dir), {"use_cache": False})
                assert describe_extractor(extractor)["precision"] == expected, (method, native)
        finally:
            get_settings.cache_clear()


def test_hybrid_takes_the_document_embedding_from_the_tagger_pass(tagger_dir: Path, texts: list[str]):
    from kpe.train.tagger import HybridExtractor

    hybrid = HybridExtractor(tagger_dir, engine_options={"use_cache": False, "precision": "fp32"})
    assert hybrid.shares_document_pass
    tagged = hybrid.tagger.tag(texts, embeddings=True)
    encoded = hybrid.engine.encoder.encode_documents(texts)
    # the tagger's first window is the encoder's truncated document: the same vector
    np.testing.assert_allclose(np.stack([t.embedding for t in tagged]), np.stack([e.embedding for e in encoded]),
                               atol=1e-6)
    shared = hybrid.candidates(texts)
    hybrid.shares_document_pass = False  # the engine's own document pass
    separate = hybrid.candidates(texts)
    assert [[(p, s) for p, s, _ in doc] for doc in shared] == [[(p, s) for p, s, _ in doc] for doc in separate]
    for a, b in zip(shared, separate):
        np.testing.assert_allclose([c for _, _, c in a], [c for _, _, c in b], atol=1e-6)
    with pytest.raises(ValueError, match="doc_embeddings"):
        hybrid.engine.ranker.rank(texts[:1], [["keyphrase"]], [])


def test_a_tagger_with_shorter_windows_keeps_the_engines_document_pass(shared_data: Path, tiny_encoder: Path,
                                                                      tmp_path: Path):
    from kpe.train.tagger import HybridExtractor

    result = train(TrainConfig(kind="tagger", base=str(tiny_encoder), train_data=["inspec"], max_docs=4,
                               max_steps=1, output_dir=tmp_path / "run", shared_data_dir=shared_data,
                               **{**SETTINGS, "max_length": 128, "stride": 32}))
    hybrid = HybridExtractor(result.model_dir, engine_options={"use_cache": False})
    assert not hybrid.shares_document_pass  # its first window is not the encoder's 256-piece document
    assert hybrid.extract([load_benchmark("inspec", "dev", shared_data)[0].text])[0]


def test_ranking_only_the_first_spans_gives_the_same_head(tagger_dir: Path, texts: list[str]):
    from kpe.train.tagger import TaggerExtractor, rank_spans, soft_spans

    tagger = TaggerExtractor(tagger_dir, precision="fp32")
    for text, tagged in zip(texts, tagger.tag(texts)):
        spans = soft_spans(text, tagged.word_spans, tagged.word_probs)
        full = rank_spans(spans)
        assert len(full) > 30
        for limit in (1, 10, 30):
            assert rank_spans(spans, limit=limit) == full[:limit]


def test_the_engine_loads_a_taggers_encoder_without_the_load_report(tagger_dir: Path, caplog: pytest.LogCaptureFixture):
    """transformers warns with a load report (the head's weights unexpected, a pooler "newly initialized") whenever
    a tagger dir is loaded as a sentence encoder: the engine says it in one INFO line instead."""
    import logging

    from sentence_transformers import SentenceTransformer

    from kpe.extract.encoder import SentenceEncoder

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    report_logger = logging.getLogger("transformers.modeling_utils")
    records = Records()
    report_logger.addHandler(records)
    try:
        SentenceTransformer(str(tagger_dir), device="cpu")
        assert any("LOAD REPORT" in m for m in records.messages)  # what a plain load says
        records.messages.clear()
        with caplog.at_level(logging.INFO, logger="kpe.extract.encoder"):
            encoder = SentenceEncoder(str(tagger_dir), device="cpu", precision="fp32")
    finally:
        report_logger.removeHandler(records)
    assert not any("LOAD REPORT" in m for m in records.messages)
    assert "without its BertForTokenClassification head" in caplog.text
    assert not report_logger.filters  # only around that load
    assert encoder.encode(["a keyphrase"]).shape == (1, encoder.dimension)
