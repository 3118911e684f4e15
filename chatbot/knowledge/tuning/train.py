"""The contrastive training run: sentence-transformers' trainer, MultipleNegativesRankingLoss
with hard negatives, batches without false negatives, a time budget and a progress callback."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.knowledge.tuning.data import Pair

Progress = Callable[[int, int, float | None], None]  # (step, total steps, last loss)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run (recorded in the lineage)."""

    epochs: int
    batch_size: int
    learning_rate: float
    max_steps: int | None
    max_minutes: float
    seed: int
    warmup: float = 0.1  # share of the planned steps warming the learning rate up (<= 20)
    # the word-embedding matrix is frozen when it has at least this many rows (0: never)
    freeze_embeddings_min_rows: int = 0
    # similarity scale of the loss (1 / temperature): sentence-transformers' 20 by default;
    # e5 models were trained at temperature 0.01 (their scores sit close together)
    loss_scale: float = 20.0


@dataclass(frozen=True)
class TrainOutcome:
    """How a run ended."""

    steps: int
    total_steps: int
    stopped_by: str  # "done" | "max_steps" | "budget"
    seconds: float
    last_loss: float | None


def effective_batch(pairs: Sequence[Pair], batch_size: int) -> int:
    """The batch size a run can use: each batch holds distinct entries, none of them the
    entry of another pair's negative, so it is capped by the number of training entries."""
    entries = len({p.entry for p in pairs})
    return max(2, min(batch_size, entries - 1 if entries > 2 else 2, len(pairs)))


def entry_batches(pairs: Sequence[Pair], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches in which no entry appears twice and no negative belongs to another
    pair's entry: in-batch negatives of MultipleNegativesRankingLoss are then true negatives.
    Each batch draws first from the entries with the most pairs left, so batches stay full
    to the end of the epoch instead of trailing off into one-entry batches."""
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    order.sort(key=lambda i: pairs[i].source != "chat")  # chat pairs first (stable: shuffled)
    # an entry has at most one pair per batch: an entry with more pairs than an epoch has
    # batches gives up its extra KB pairs this epoch (others are drawn in the next one)
    rounds = -(-len(pairs) // batch_size)
    left: dict[str, list[int]] = {}
    for i in order:
        queue = left.setdefault(pairs[i].entry, [])
        if len(queue) < rounds:
            queue.append(i)
    batches = []
    while left:
        batch: list[int] = []
        used: set[str] = set()
        negatives: set[str] = set()
        for entry in sorted(left, key=lambda e: (-len(left[e]), rng.random())):
            if len(batch) == batch_size:
                break
            queue = left[entry]
            pick = next(
                (k for k, i in enumerate(queue) if pairs[i].negative_entry not in used), None
            )
            if entry in negatives or pick is None:
                continue
            i = queue.pop(pick)
            batch.append(i)
            used.add(entry)
            negatives.add(pairs[i].negative_entry)
            if not queue:
                del left[entry]
        batches.append(batch)
    # the last batches, left with the few entries that had most pairs, barely train: drop them
    full = [b for b in batches if len(b) >= max(2, batch_size // 4)] or batches
    rng.shuffle(full)
    return full


def train(
    model: Any,
    pairs: Sequence[Pair],
    config: TrainConfig,
    *,
    deadline: float,
    progress: Progress | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> TrainOutcome:
    """Train ``model`` in place on (anchor, positive, negative) triplets until the epochs,
    ``max_steps`` or the monotonic ``deadline`` end it (what was trained is kept), or
    ``stop()`` does after a step (stopped_by "cancelled")."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    batch_size = effective_batch(pairs, config.batch_size)
    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    if all(p.negative for p in pairs):
        columns["negative"] = []
    for p in pairs:
        columns["anchor"].append(p.anchor)
        columns["positive"].append(p.positive)
        if "negative" in columns:
            columns["negative"].append(p.negative)
    dataset = Dataset.from_dict(columns)

    class EntryBatchSampler(DefaultBatchSampler):
        """Batches from ``entry_batches``, reshuffled each epoch."""

        def __iter__(self) -> Iterator[list[int]]:
            epoch = int(self.epoch)
            yield from (
                first if epoch == 0 else entry_batches(pairs, batch_size, config.seed + epoch)
            )

        def __len__(self) -> int:
            return len(first)

    first = entry_batches(pairs, batch_size, config.seed)
    steps_per_epoch = len(first)
    total = steps_per_epoch * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)

    class Watch(TrainerCallback):
        """Progress after each step; stops cleanly on ``stop()`` or when the budget runs out."""

        stopped_by = "done"
        loss: float | None = None

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if progress:
                progress(state.global_step, total, self.loss)
            if stop():
                self.stopped_by = "cancelled"
                control.should_training_stop = True
            elif time.monotonic() >= deadline and state.global_step < total:
                self.stopped_by = "budget"
                control.should_training_stop = True

    watch = Watch()
    start = time.monotonic()
    freeze_word_embeddings(model, config.freeze_embeddings_min_rows)
    with tempfile.TemporaryDirectory(prefix="afina-tune-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(Path(scratch) / "trainer"),
            # e5 models carry their "query: " prompt: both sides of a pair are questions
            prompts=query_prompt(model),
            num_train_epochs=config.epochs,
            max_steps=total,
            per_device_train_batch_size=batch_size,
            learning_rate=config.learning_rate,
            # constant after a short warm-up: a run the time budget stops early still trained
            # at the full rate (a decay planned over all the epochs would not have begun)
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=max(1, min(round(config.warmup * total), 20)),
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            seed=config.seed,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            disable_tqdm=True,
            batch_sampler=EntryBatchSampler,
        )

        class Trainer(SentenceTransformerTrainer):
            """No model-card tracking: it would copy training questions (customers' chat
            messages) into the saved folder's README.md as widget examples."""

            def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
                return None

        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            loss=MultipleNegativesRankingLoss(model, scale=config.loss_scale),
            callbacks=[watch],
        )
        trainer.remove_callback(_printer_callback())
        state = trainer.train()
    steps = int(getattr(state, "global_step", 0))
    stopped = watch.stopped_by
    if stopped == "done" and config.max_steps and steps >= config.max_steps:
        stopped = "max_steps" if config.max_steps < steps_per_epoch * config.epochs else "done"
    return TrainOutcome(steps, total, stopped, time.monotonic() - start, watch.loss)


def query_prompt(model: Any) -> str | None:
    """The prompt a model puts before questions (e5: "query: "), or None."""
    return (getattr(model, "prompts", None) or {}).get("query") or None


def freeze_word_embeddings(model: Any, min_rows: int) -> bool:
    """Freeze the word-embedding matrix when it has ``min_rows`` rows or more (multilingual
    e5's 250k rows: AdamW would update all of them every step); True when frozen."""
    embeddings = getattr(getattr(model[0], "auto_model", None), "get_input_embeddings", None)
    if not min_rows or embeddings is None:
        return False
    weight = embeddings().weight
    if weight.shape[0] < min_rows:
        return False
    weight.requires_grad_(False)
    return True


def _printer_callback() -> Any:
    """The trainer's default console printer (our progress bar replaces it)."""
    from transformers.trainer_callback import PrinterCallback

    return PrinterCallback
