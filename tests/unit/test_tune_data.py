"""Embedder-tuning data without a model: the split by entry, batches without false negatives,
hard negatives from other entries, and top-1 scored like the index."""

from __future__ import annotations

import numpy as np

from backends.retrieval.index import Entry
from chatbot.db.tuning_queries import LabelledQuestion
from chatbot.knowledge.tuning.data import Pair, build_data, mine_negatives, split_entries, top1
from chatbot.knowledge.tuning.train import entry_batches

WORDS = ["points", "parcel", "password", "shipping", "refund", "gift"]


def encode(texts: list[str]) -> np.ndarray:
    """A bag-of-words embedder over WORDS (normalized; other words are ignored)."""
    rows = np.zeros((len(texts), len(WORDS)), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().replace("?", "").split():
            if word in WORDS:
                rows[i, WORDS.index(word)] += 1
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def entries() -> list[Entry]:
    return [
        Entry(w, w, f"answer about {w}", (f"my {w}", f"{w} help", f"{w} question")) for w in WORDS
    ]


def test_validation_holds_out_whole_entries():
    train, held = split_entries([f"e{i}" for i in range(20)], 0.1, seed=3)
    assert len(held) == 2 and not set(train) & set(held) and len(train) + len(held) == 20
    data = build_data(
        entries(), [], encode, validation_fraction=0.2, correction_min_similarity=0.8, seed=0
    )
    assert {p.entry for p in data.train}.isdisjoint(data.val_entries)
    assert {e for _, e in data.validation} == set(data.val_entries)


def test_batches_hold_distinct_entries_and_no_negative_of_a_batch_entry():
    pairs = [
        Pair(f"a{i}", f"p{i}", f"e{i % 7}", "kb", f"n{i}", f"e{(i + 1) % 7}") for i in range(60)
    ]
    batches = entry_batches(pairs, 4, seed=1)
    drawn = [i for b in batches for i in b]
    assert len(drawn) == len(set(drawn)) >= 50  # each pair at most once; the tail may be dropped
    for batch in batches:
        used = [pairs[i].entry for i in batch]
        assert len(set(used)) == len(used)
        assert not {pairs[i].negative_entry for i in batch} & set(used)


def test_hard_negative_is_the_nearest_phrasing_of_another_entry():
    data = build_data(
        entries(), [], encode, validation_fraction=0.0, correction_min_similarity=0.8, seed=0
    )
    mined = mine_negatives(data.train, data.phrasings, encode)
    assert all(p.negative_entry != p.entry and p.negative for p in mined)


def test_chat_questions_train_and_unmatched_corrections_are_skipped():
    questions = [
        LabelledQuestion("c1", "parcel points", "en", "points", None),
        LabelledQuestion("c2", "gift gift", "en", None, "answer about gift"),  # = gift's answer
        LabelledQuestion("c3", "new thing", "en", None, "something no entry says"),
    ]
    data = build_data(
        entries(),
        questions,
        encode,
        validation_fraction=0.0,
        correction_min_similarity=0.8,
        seed=0,
    )
    chat = {(p.anchor, p.entry) for p in data.train if p.source == "chat"}
    assert chat == {("parcel points", "points"), ("gift gift", "gift")}
    assert data.conversations == ["c1", "c2"]
    assert data.chat_counts["skipped: correction matches no entry's answer"] == 1


def test_top1_leaves_the_query_phrasing_out():
    phrasings = {"points": ("my points", "points help"), "parcel": ("my parcel", "parcel help")}
    assert top1([("my points", "points"), ("parcel help", "parcel")], phrasings, encode) == 1.0
    assert top1([], phrasings, encode) is None


def test_an_oversized_entry_keeps_its_chat_pairs():
    pairs = [Pair(f"a{i}", "p", "big", "kb", "n", "e1") for i in range(40)]
    pairs += [
        Pair(f"b{i}", "p", f"e{i % 3 + 1}", "kb", "n", f"e{(i + 1) % 3 + 1}") for i in range(12)
    ]
    pairs.append(Pair("chat question", "p", "big", "chat", "n", "e1"))
    drawn = {pairs[i].anchor for b in entry_batches(pairs, 4, seed=0) for i in b}
    assert "chat question" in drawn
