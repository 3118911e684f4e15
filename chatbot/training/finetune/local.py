"""The local provider: fine-tune the bundled SmolLM2 on CPU (LoRA or full), one thread, to GGUF.

Time budget: the job's clock starts when training is asked for (model loading counts). When it
runs out the trainer stops after the current step, measures the validation loss of what it has,
and keeps the best state seen (end of an epoch, or now); if not one step finished, it fails,
naming ``--max-minutes``. Cancel (``hooks.cancelled()``, or Ctrl+C) stops between steps and
writes nothing.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chatbot.errors import InputError
from chatbot.training.finetune import gguf_files
from chatbot.training.finetune.data import IGNORE, TokenizedExample, load_examples
from chatbot.training.lineage import sha256_file

BASE_MODEL = "SmolLM2-135M-Instruct"
METHODS = ("lora", "full")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SPARE_BYTES = 64 << 20  # free space kept beyond the artefact itself


class Cancelled(Exception):
    """The job was cancelled between two steps; nothing was written."""


class Hooks(Protocol):
    """What the trainer reports to (the job row, a progress bar) and asks (cancel?)."""

    def started(self, total_steps: int, examples: int) -> None:
        """Training is about to start."""

    def step(self, step: int, epoch: int, loss: float) -> None:
        """One optimiser step finished."""

    def evaluated(self, step: int, epoch: int, train_loss: float, val_loss: float | None) -> None:
        """An epoch (or the budget) ended with these losses."""

    def event(self, message: str) -> None:
        """Something worth a line in the job's events."""

    def cancelled(self) -> bool:
        """Whether someone asked the job to stop."""


@dataclass(frozen=True)
class LocalConfig:
    """Hyperparameters of one local job (stored in ``finetune_jobs.hyperparameters``)."""

    method: str = "lora"
    epochs: int = 3
    max_steps: int | None = None
    learning_rate: float = 1e-3
    lora_rank: int = 16
    lora_alpha: float = 32.0
    batch_size: int = 8
    max_seq_tokens: int = 256
    max_minutes: float = 30.0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the job row."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class TrainResult:
    """What a finished local job made."""

    artefact: Path
    sha256: str
    size_bytes: int
    trained_tokens: int
    train_seconds: float
    steps: int
    stopped_by: str  # "done" | "max_steps" | "budget"
    best: dict[str, Any] = field(default_factory=dict)


def check_method(method: str) -> None:
    """An ``InputError`` naming the methods when ``method`` is unknown."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; use --method {' or --method '.join(METHODS)}")


def ensure_free_space(folder: Path, need_bytes: int) -> None:
    """An ``InputError`` when ``folder``'s disk has less than ``need_bytes`` (+ a margin) free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need_bytes + SPARE_BYTES:
        raise InputError(
            f"no space left for the fine-tune: {(need_bytes + SPARE_BYTES) >> 20} MiB needed in "
            f"{folder}, {free >> 20} MiB free; free some space or point AFINA_HOME elsewhere"
        )


def estimated_bytes(method: str, rank: int) -> int:
    """Rough artefact size: a SmolLM2 F16 model, or its rank-``rank`` adapter in F32."""
    per_rank = 30 * 4 * (4 * 576 + 2 * (576 + 192) + 3 * (576 + 1536))  # 30 layers, A+B, F32
    return 280 << 20 if method == "full" else per_rank * rank


def load_base(path: Path) -> tuple[Any, Any]:
    """Tokenizer and fp32 model from the bundled GGUF (dequantised by transformers, ~20 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # progress bars, deprecation notes
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
    return tokenizer, model


def _batches(
    examples: list[TokenizedExample], size: int, pad_id: int, generator: Any
) -> Iterator[tuple[Any, Any, Any, int]]:
    """Shuffled, right-padded batches: (input ids, attention mask, labels, target tokens)."""
    import torch

    order = torch.randperm(len(examples), generator=generator).tolist()
    for start in range(0, len(order), size):
        chunk = [examples[i] for i in order[start : start + size]]
        width = max(len(e.input_ids) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, e in enumerate(chunk):
            n = len(e.input_ids)
            ids[row, :n] = torch.tensor(e.input_ids)
            labels[row, :n] = torch.tensor(e.labels)
            mask[row, :n] = 1
        yield ids, mask, labels, sum(e.target_tokens for e in chunk)


def mean_loss(model: Any, examples: list[TokenizedExample], batch_size: int, pad_id: int) -> float:
    """Token-weighted mean loss over ``examples`` (no gradients)."""
    import torch

    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for ids, mask, labels, n in _batches(examples, batch_size, pad_id, generator):
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
            total, tokens = total + float(out.loss) * n, tokens + n
    model.train()
    return total / max(tokens, 1)


def _prepare(model: Any, config: LocalConfig) -> Any:
    """Wrap the model for LoRA (peft) or leave every weight trainable (full)."""
    if config.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,  # type: ignore[arg-type]  # peft takes any number
        lora_dropout=0.0,
        target_modules=list(LORA_TARGETS),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes
        return get_peft_model(model, lora)


def _snapshot(model: Any, method: str) -> dict[str, Any]:
    """A copy of the trainable weights (the adapter, or the whole model)."""
    return {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if method == "full" or p.requires_grad
    }


def _restore(model: Any, snapshot: dict[str, Any]) -> None:
    """Put a snapshot's weights back."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in snapshot.items():
            params[name].copy_(value)


def _lora_pairs(model: Any) -> dict[str, tuple[Any, Any]]:
    """``{hf module name: (A, B)}`` as numpy arrays, from a peft model."""
    pairs = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            a = module.lora_A["default"].weight.detach().numpy()
            b = module.lora_B["default"].weight.detach().numpy()
            pairs[name.removeprefix("base_model.model.")] = (a, b)
    return pairs


def write_artefact(model: Any, config: LocalConfig, out_dir: Path, base_gguf: Path) -> Path:
    """Write the GGUF (adapter or merged model) atomically; its path."""
    heads = model.config.num_attention_heads, model.config.num_key_value_heads
    if config.method == "lora":
        path = out_dir / "adapter.gguf"
        gguf_files.write_lora(
            path, _lora_pairs(model), alpha=config.lora_alpha, n_head=heads[0], n_kv_head=heads[1]
        )
    else:
        path = out_dir / "model.gguf"
        weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        gguf_files.write_merged(path, base_gguf, weights, n_head=heads[0], n_kv_head=heads[1])
    return path


class _Clock:
    """The job's wall-clock budget."""

    def __init__(self, minutes: float):
        self.start = time.monotonic()
        self.deadline = self.start + minutes * 60

    def over(self) -> bool:
        return time.monotonic() >= self.deadline


def train(
    *,
    train_file: Path,
    validation_file: Path | None,
    out_dir: Path,
    config: LocalConfig,
    hooks: Hooks,
    base_gguf: Path,
) -> TrainResult:
    """Fine-tune the base model on ``train_file``; write the GGUF under ``out_dir``."""
    import torch

    check_method(config.method)
    clock = _Clock(config.max_minutes)
    ensure_free_space(out_dir, estimated_bytes(config.method, config.lora_rank))
    torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    tokenizer, base = load_base(base_gguf)
    train_set = load_examples(tokenizer, train_file, config.max_seq_tokens)
    val_set = (
        load_examples(tokenizer, validation_file, config.max_seq_tokens) if validation_file else []
    )
    if not train_set:
        raise InputError(f"{train_file} has no answer to learn from (all weight 0 or cut off)")
    model = _prepare(base, config)
    loop = _Loop(model, config, clock, hooks, int(tokenizer.pad_token_id or 0))
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total = steps_per_epoch * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total
    hooks.started(total, len(train_set))
    loop.run(train_set, val_set, total, steps_per_epoch)
    if loop.best_state is not None:
        _restore(model, loop.best_state)
    ensure_free_space(out_dir, estimated_bytes(config.method, config.lora_rank))
    path = write_artefact(model, config, out_dir, base_gguf)
    return TrainResult(
        artefact=path,
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        trained_tokens=loop.tokens,
        train_seconds=round(loop.seconds, 2),
        steps=loop.steps,
        stopped_by=loop.stopped_by,
        best=loop.best,
    )


class _Loop:
    """The optimisation loop: steps, epoch ends, budget, cancel, best state."""

    def __init__(self, model: Any, config: LocalConfig, clock: _Clock, hooks: Hooks, pad: int):
        import torch

        self.model, self.config, self.clock, self.hooks, self.pad = model, config, clock, hooks, pad
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.steps, self.tokens, self.seconds = 0, 0, 0.0
        self.stopped_by = "done"
        self.best: dict[str, Any] = {}
        self.best_state: dict[str, Any] | None = None

    def run(self, train_set: list, val_set: list, total: int, steps_per_epoch: int) -> None:
        """Train until ``total`` steps, the budget, or a cancel."""
        import torch

        schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: max(0.05, 1 - step / max(total, 1))
        )
        self.model.train()
        epoch, losses = 0, []
        while self.steps < total:
            epoch += 1
            for ids, mask, labels, n in _batches(
                train_set, self.config.batch_size, self.pad, self.generator
            ):
                if self.hooks.cancelled():
                    raise Cancelled
                if self.clock.over():
                    self.stopped_by = "budget"
                    break
                losses.append(self._step(ids, mask, labels, n, schedule, epoch))
                if self.steps >= total:
                    break
            self._epoch_end(epoch, losses, val_set)
            losses = []
            if self.stopped_by == "budget":
                break
        if self.steps == 0:
            raise InputError(
                f"the time budget of {self.config.max_minutes:g} min ran out before the first "
                "training step; raise --max-minutes"
            )
        if self.stopped_by == "done" and self.config.max_steps and self.steps >= total:
            self.stopped_by = "max_steps"

    def _step(self, ids: Any, mask: Any, labels: Any, n: int, schedule: Any, epoch: int) -> float:
        """One optimiser step; its loss."""
        began = time.monotonic()
        out = self.model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        self.optimizer.step()
        schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        self.tokens += int(mask.sum())
        self.seconds += time.monotonic() - began
        loss = float(out.loss.detach())
        self.hooks.step(self.steps, epoch, loss)
        return loss

    def _epoch_end(self, epoch: int, losses: list[float], val_set: list) -> None:
        """Measure the validation loss; keep the state if it is the best so far."""
        if not losses:
            return
        train_loss = sum(losses) / len(losses)
        began = time.monotonic()
        val = mean_loss(self.model, val_set, self.config.batch_size, self.pad) if val_set else None
        self.seconds += time.monotonic() - began
        self.hooks.evaluated(self.steps, epoch, train_loss, val)
        score = val if val is not None else train_loss
        if not self.best or score < self.best["score"]:
            self.best = {"step": self.steps, "epoch": epoch, "score": score, "val_loss": val}
            self.best_state = _snapshot(self.model, self.config.method)
