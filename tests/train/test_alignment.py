"""Gold keyphrase alignment: character spans, word boundaries, BIO tags on first sub-tokens, windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpe.datasets import load_benchmark
from kpe.train.alignment import (
    IGNORE_INDEX,
    AlignmentStats,
    B,
    I,
    O,
    bio_labels,
    find_occurrences,
    gold_spans,
    join_words,
    tokenize_windows,
)


@pytest.fixture(scope="module")
def inspec_train(shared_data: Path):
    return load_benchmark("inspec", "train", shared_data)


def test_case_insensitive_and_every_occurrence():
    text = "Neural networks are popular. A NEURAL NETWORKS model; neural   networks again."
    spans = find_occurrences(text, "neural networks")
    assert [text[s:e] for s, e in spans] == ["Neural networks", "NEURAL NETWORKS", "neural   networks"]


def test_word_boundaries():
    text = "A network of nets: the net, the subnet and net-working."
    spans = find_occurrences(text, "net")
    assert [(text[s:e], s) for s, e in spans] == [("net", text.index("net,")), ("net", text.index("net-working"))]
    assert find_occurrences("The networks", "network") == []
    assert find_occurrences("C++ and C", "C++") == [(0, 3)]


def test_overlaps_keep_the_longest_and_unaligned_are_reported():
    text = "The regulatory compliance unit handles regulatory compliance."
    spans, unaligned = gold_spans(text, ["regulatory compliance", "regulatory compliance unit", "telecom carrier"])
    assert [text[s:e] for s, e in spans] == ["regulatory compliance unit", "regulatory compliance"]
    assert unaligned == ["telecom carrier"]


def test_bio_on_first_subtokens_only(tokenizer):
    text = "Anti-spam act against spammers. The anti-spam act was signed."
    spans, _ = gold_spans(text, ["anti-spam act"])
    (window,) = tokenize_windows(tokenizer, text, max_length=64, stride=8)
    labels = bio_labels(window, spans)
    tokens = tokenizer.convert_ids_to_tokens(window.input_ids)
    assert labels[0] == IGNORE_INDEX and labels[-1] == IGNORE_INDEX  # [CLS], [SEP]
    # "spammers" is split into sub-tokens: only the first gets a tag
    sub = [i for i, t in enumerate(tokens) if t.startswith("##")]
    assert sub and all(labels[i] == IGNORE_INDEX for i in sub)
    tagged = [(tokens[i], labels[i]) for i in range(len(tokens)) if labels[i] != IGNORE_INDEX]
    # both occurrences: anti(B) -(I) spa(I; "##m" ignored) act(I)
    starts = [i for i, (tok, lab) in enumerate(tagged) if lab == B]
    assert len(starts) == 2
    for s in starts:
        assert [lab for _, lab in tagged[s:s + 4]] == [B, I, I, I]
        assert tagged[s][0] == "anti" and tagged[s + 3][0] == "act"
        assert tagged[s + 4][1] == O


def test_windows_overlap_and_cover_every_word(tokenizer, inspec_train):
    doc = max(inspec_train, key=lambda d: len(d.text))
    windows = tokenize_windows(tokenizer, doc.text, max_length=64, stride=16)
    assert len(windows) > 2
    assert all(len(w.input_ids) <= 64 for w in windows)
    covered = set()
    for w in windows:
        covered.update(w.words())
        # a word marked first is complete in its window, and its span is real text
        for wid in w.words():
            s, e = w.word_spans[wid]
            assert doc.text[s:e].strip()
    everything = {w for w in tokenizer(doc.text).word_ids() if w is not None}
    assert covered == everything
    # neighbouring windows share words (overlap)
    assert set(windows[0].words()) & set(windows[1].words())


def test_alignment_stats_count_unaligned_on_real_data(tokenizer, inspec_train):
    docs = inspec_train[:50]
    stats = AlignmentStats()
    expected_unaligned = 0
    for doc in docs:
        spans, unaligned = gold_spans(doc.text, doc.keyphrases)
        stats.add(len(doc.keyphrases), unaligned)
        lowered = doc.text.lower()
        # an aligned phrase is in the text (ignoring case); a phrase absent as a substring is never aligned
        for phrase in doc.keyphrases:
            if phrase.lower() not in lowered:
                assert phrase in unaligned
        expected_unaligned += sum(1 for p in doc.keyphrases if not find_occurrences(doc.text, p))
        for s, e in spans:
            assert any(doc.text[s:e].lower() == p.lower() for p in doc.keyphrases)
    assert stats.n_docs == 50
    assert stats.n_unaligned == expected_unaligned > 0
    assert 0 < stats.share_unaligned < 0.5  # Inspec: about a quarter of the gold is absent from the text
    assert stats.as_dict()["unaligned_examples"]


def test_join_words_groups_connected_pieces(tokenizer):
    text = "An anti-spam act (US), state-of-the-art!"
    (window,) = tokenize_windows(tokenizer, text, max_length=64, stride=8)
    groups = join_words(text, window.word_spans)
    assert [text[g.start:g.end] for g in groups] == ["An", "anti-spam", "act", "(", "US", ")", ",",
                                                    "state-of-the-art", "!"]
    assert [g.alnum for g in groups] == [True, True, True, False, True, False, False, True, False]


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="fast tokenizer"):
        tokenize_windows(Slow(), "text", 64, 8)
