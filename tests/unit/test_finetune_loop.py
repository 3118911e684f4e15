"""The local trainer's loop on a tiny randomly initialised LLaMA: budget, cancel, best state."""

from __future__ import annotations

import pytest

from chatbot.errors import InputError
from chatbot.training.finetune.data import IGNORE, TokenizedExample
from chatbot.training.finetune.local import Cancelled, LocalConfig, _Clock, _Loop, _prepare


class Hooks:
    """Records what the loop reports; can stop the clock or cancel after some steps."""

    def __init__(self, clock: _Clock | None = None, stop_after: int = 0, cancel_after: int = 0):
        self.clock, self.stop_after, self.cancel_after = clock, stop_after, cancel_after
        self.steps: list[int] = []
        self.evaluations: list[tuple[int, float | None]] = []

    def started(self, total_steps: int, examples: int) -> None:
        pass

    def step(self, step: int, epoch: int, loss: float) -> None:
        self.steps.append(step)
        if self.clock is not None and step == self.stop_after:
            self.clock.deadline = 0.0  # the budget runs out now

    def evaluated(self, step: int, epoch: int, train_loss: float, val_loss: float | None) -> None:
        self.evaluations.append((step, val_loss))

    def event(self, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return bool(self.cancel_after) and len(self.steps) >= self.cancel_after


def tiny_model():
    """A 2-layer LLaMA with a 64-token vocabulary (no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config)


EXAMPLES = [
    TokenizedExample([1, 5 + i, 7, 9, 11, 2], [IGNORE, IGNORE, IGNORE, 9, 11, 2]) for i in range(6)
]


def loop_for(config: LocalConfig, hooks: Hooks, clock: _Clock) -> _Loop:
    return _Loop(_prepare(tiny_model(), config), config, clock, hooks, pad=0)


def test_budget_stops_cleanly_and_keeps_the_best_state():
    config = LocalConfig(method="lora", epochs=5, batch_size=2, lora_rank=2, max_minutes=60)
    clock = _Clock(config.max_minutes)
    hooks = Hooks(clock, stop_after=4)
    loop = loop_for(config, hooks, clock)
    loop.run(EXAMPLES, EXAMPLES[:2], total=15, steps_per_epoch=3)
    assert loop.stopped_by == "budget" and loop.steps == 4
    assert [step for step, _ in hooks.evaluations] == [3, 4]  # epoch end, then the budget stop
    assert loop.best_state is not None and loop.best["step"] in (3, 4)
    assert loop.tokens > 0 and loop.seconds > 0


def test_budget_too_small_for_one_step_names_the_option():
    config = LocalConfig(method="lora", lora_rank=2, batch_size=2, max_minutes=1e-9)
    clock = _Clock(config.max_minutes)
    loop = loop_for(config, Hooks(), clock)
    with pytest.raises(InputError, match="--max-minutes"):
        loop.run(EXAMPLES, [], total=3, steps_per_epoch=3)


def test_cancel_stops_between_steps():
    config = LocalConfig(method="full", batch_size=2, max_minutes=60)
    hooks = Hooks(cancel_after=2)
    loop = loop_for(config, hooks, _Clock(60))
    with pytest.raises(Cancelled):
        loop.run(EXAMPLES, [], total=9, steps_per_epoch=3)
    assert hooks.steps == [1, 2]
