"""The ``ner`` kind on real BC5CDR: the reader, the sub-token alignment round trip, seqeval's strict scores, a few
training steps through the Accelerate loop, then save / reload / predict with character offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpe.ner_data import NER_LABELS, IOBFormatError, entity_spans, load_bc5cdr, read_iob, repair_iob2


def test_bc5cdr_reader_counts_and_rejects_bad_lines(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "other" / "bc5cdr_iob" / "devel.tsv"
    sentences = load_bc5cdr("devel", shared_data)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert sum(len(s.tokens) for s in sentences) == sum(1 for line in lines if line.strip())
    assert len(sentences) == sum(1 for i, line in enumerate(lines) if line.strip()
                                 and (i + 1 == len(lines) or not lines[i + 1].strip()))
    assert all(len(s.tokens) == len(s.tags) and set(s.tags) <= set(NER_LABELS) for s in sentences)
    assert {kind for s in sentences for kind, _, _ in entity_spans(s.tags)} == {"Chemical", "Disease"}
    assert all(repair_iob2(s.tags) == list(s.tags) for s in sentences)  # the gold is valid IOB2

    bad = tmp_path / "bad.tsv"
    bad.write_text("Aspirin\tB-Chemical\n\nfever\tB-Symptom\n", encoding="utf-8")
    with pytest.raises(IOBFormatError, match=r"bad\.tsv:3: unknown tag 'B-Symptom'"):
        read_iob(bad)


def test_alignment_round_trip_gives_back_every_entity(shared_data: Path, tokenizer) -> None:
    """tokens -> labels on first sub-tokens (-100 elsewhere) -> word tags -> the same entity spans."""
    from kpe.train.alignment import IGNORE_INDEX
    from kpe.train.ner import LABEL2ID, ner_features, word_values

    sentences = load_bc5cdr("train", shared_data, limit=300)
    features, stats = ner_features(sentences, tokenizer, max_length=256)
    assert stats["words_without_label"] == 0
    n_subword_only = 0
    for sentence, feature in zip(sentences, features, strict=True):
        word_ids = tokenizer(list(sentence.tokens), is_split_into_words=True, truncation=True,
                             max_length=256).word_ids()
        labels = feature["labels"]
        assert len(labels) == len(feature["input_ids"]) == len(word_ids)
        assert sum(1 for x in labels if x != IGNORE_INDEX) == len(sentence.tokens)
        n_subword_only += sum(1 for w, x in zip(word_ids, labels) if w is not None and x == IGNORE_INDEX)
        back = [NER_LABELS[i] for i in word_values(word_ids, labels, len(sentence.tokens), None)]
        assert back == [t for t in sentence.tags]
        assert entity_spans(back) == entity_spans(sentence.tags)
        assert [x for x in labels if x != IGNORE_INDEX] == [LABEL2ID[t] for t in sentence.tags]
    assert n_subword_only > 0  # words of several sub-tokens exist, and only their first one carries a label


def test_strict_entity_scores_count_exact_matches_only() -> None:
    from kpe.evaluate.entities import entity_scores

    gold = [["B-Chemical", "I-Chemical", "O", "B-Disease"], ["O", "B-Disease", "I-Disease"]]
    pred = [["B-Chemical", "I-Chemical", "O", "B-Chemical"],  # right chemical; the disease typed wrong
            ["O", "B-Disease", "O"]]                            # a boundary error: not a match
    scores = entity_scores(gold, pred)
    assert scores["overall"]["support"] == 3 and scores["overall"]["predicted"] == 3
    assert scores["overall"]["precision"] == pytest.approx(1 / 3)
    assert scores["overall"]["recall"] == pytest.approx(1 / 3)
    assert scores["per_type"]["Chemical"]["precision"] == pytest.approx(1 / 2)
    assert scores["per_type"]["Disease"]["recall"] == 0.0
    # a stray I- is repaired to an entity start (as the decoder reads it), so it can still match
    assert entity_scores([["O", "B-Disease"]], [["O", "I-Disease"]])["overall"]["f1"] == 1.0


def test_few_steps_then_save_reload_predict(shared_data: Path, tmp_path: Path) -> None:
    from kpe.train import TrainConfig, train
    from kpe.train.ner import EntityTagger, evaluate_model_dir

    config = TrainConfig(kind="ner", output_dir=tmp_path / "run", max_steps=3, max_docs=24, max_val_docs=40,
                         batch_size=8, eval_batch_size=16, max_length=64, stride=16, num_threads=1,
                         mixed_precision="no", log_with="none", shared_data_dir=shared_data, learning_rate=1e-4)
    result = train(config)
    assert result.steps == 3 and result.kind == "ner"
    assert 0.0 <= result.metrics["entity_f1"] <= 1.0 and "f1_chemical" in result.metrics
    assert result.data_summary["ner"]["train"]["sentences"] == 24
    assert (result.model_dir / "README.md").is_file()

    # the reloaded model scores the same validation sentences exactly as the training loop did
    again = evaluate_model_dir(result.model_dir, "devel", limit=40, batch_size=16, shared_data_dir=shared_data)
    assert again["overall"]["f1"] == pytest.approx(result.metrics["entity_f1"], abs=1e-9)
    assert again["sentences"] == 40

    tagger = EntityTagger(result.model_dir)
    assert tagger.labels == list(NER_LABELS)
    texts = [" ".join(s.tokens) for s in load_bc5cdr("test", shared_data, limit=6)]
    texts.append("")
    mentions = tagger.annotate(texts)
    assert len(mentions) == len(texts) and mentions[-1] == []
    for text, found in zip(texts, mentions):
        for m in found:
            assert text[m.start:m.end] == m.surface and m.type in ("Chemical", "Disease") and 0 < m.score <= 1
        assert [m.start for m in found] == sorted(m.start for m in found)
        assert all(a.end <= b.start for a, b in zip(found, found[1:]))  # no overlaps
    # a text alone, or among others, gets the same mentions with the same scores
    assert [tagger.annotate([text])[0] for text in texts[:3]] == mentions[:3]
