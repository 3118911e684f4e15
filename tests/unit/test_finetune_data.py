"""Training examples for the local fine-tune: the real SmolLM2 tokenizer and chat template."""

from __future__ import annotations

import pytest

from chatbot.training.finetune.data import IGNORE, tokenize_chat


@pytest.fixture(scope="module")
def tokenizer():
    """SmolLM2's tokenizer, read from the bundled GGUF (offline)."""
    from transformers import AutoTokenizer

    from backends.llm_server import bundled_model_path

    path = bundled_model_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def learned_text(tokenizer, example) -> str:
    """The text of the tokens the loss is computed on."""
    return tokenizer.decode([t for t in example.labels if t != IGNORE])


CHAT = [
    {"role": "system", "content": "You are the shop's assistant."},
    {"role": "user", "content": "How much is shipping?"},
    {"role": "assistant", "content": "Free over 50 euros.", "weight": 0},
    {"role": "user", "content": "And returns?"},
    {"role": "assistant", "content": "Free within 30 days."},
]


def test_finetune_examples_learn_only_approved_answers(tokenizer):
    example = tokenize_chat(tokenizer, CHAT, max_tokens=512)
    learned = learned_text(tokenizer, example)
    assert "Free within 30 days." in learned and learned.strip().endswith("<|im_end|>")
    for not_learned in ("Free over 50 euros", "How much is shipping", "shop's assistant"):
        assert not_learned not in learned
    assert "assistant\n" not in learned  # the turn header is context, not a target
    assert len(example.input_ids) == len(example.labels)


def test_finetune_examples_are_cut_to_the_token_limit(tokenizer):
    example = tokenize_chat(tokenizer, CHAT, max_tokens=12)
    assert len(example.input_ids) == 12 and example.target_tokens == 0
