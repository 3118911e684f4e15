"""Break-even of a fine-tune against few-shot prompting on the same base model.

A fine-tune costs once (billed training tokens, or CPU hours for a local run) and saves prompt
tokens on every answer (no examples in the prompt); past some volume it has paid for itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chatbot.pricing import Prices, price_of

MONTHS_HORIZON = 12  # "pays off within a year" is the volume the report names


@dataclass(frozen=True)
class TrainingCost:
    """What the fine-tune cost, and how that was worked out (None: unknown)."""

    usd: float | None
    basis: str


def training_cost(
    job: Mapping[str, Any] | None,
    *,
    given_usd: float | None,
    price_per_million_tokens: float,
    cpu_hour_usd: float,
) -> TrainingCost:
    """From ``--training-cost``, else the ``finetune_jobs`` row: remote jobs bill their trained
    tokens (epochs included, as the jobs API reports them), local jobs their CPU hours."""
    if given_usd is not None:
        return TrainingCost(float(given_usd), "given with --training-cost")
    if job is None:
        return TrainingCost(None, "unknown: no finetune_jobs row; pass --training-cost USD")
    epochs = (job.get("hyperparameters") or {}).get("epochs")
    per_epoch = f", {epochs} epoch(s)" if epochs else ""
    if job.get("provider") == "local":
        seconds = job.get("train_seconds")
        if seconds is None:
            return TrainingCost(None, "unknown: the local job recorded no training time")
        hours = float(seconds) / 3600
        return TrainingCost(
            hours * cpu_hour_usd,
            f"{hours:.2f} CPU hours x ${cpu_hour_usd:g}/hour (AFINA_EVAL_CPU_HOUR_USD)",
        )
    if job.get("cost_usd") is not None:
        return TrainingCost(float(job["cost_usd"]), f"billed by the provider{per_epoch}")
    tokens = job.get("trained_tokens")
    if tokens is None:
        return TrainingCost(None, "unknown: the job reported no trained tokens")
    return TrainingCost(
        tokens * price_per_million_tokens / 1_000_000,
        f"{tokens:,} billed training tokens{per_epoch} x ${price_per_million_tokens:g}/1M",
    )


def answer_prices(
    prices: Prices, finetuned_model: str | None, fewshot_model: str | None, price_model: str
) -> tuple[tuple[float, float] | None, tuple[float, float] | None, str]:
    """(input, output) USD per 1M tokens for each side, and the basis: both models' own prices
    when both are non-zero, else both at ``price_model``'s (what the same tokens would cost on a
    paid API: local models are free, so their saving shows only at a price)."""
    own = [price_of(prices, m) if m else None for m in (finetuned_model, fewshot_model)]
    if all(p is not None and any(p) for p in own):
        return own[0], own[1], "each model's own price (AFINA_LLM_PRICES)"
    reference = price_of(prices, price_model) if price_model else None
    if reference is None:
        return (
            None,
            None,
            "no price: add the models to AFINA_LLM_PRICES or set AFINA_EVAL_PRICE_MODEL",
        )
    return reference, reference, f"both priced as {price_model} (AFINA_EVAL_PRICE_MODEL)"


def per_answer_usd(metrics: Mapping[str, Any], price: tuple[float, float] | None) -> float | None:
    """USD per answer from the mean prompt and completion tokens at ``price`` (per 1M)."""
    tokens_in = metrics["input_tokens"]["value"]
    if price is None or tokens_in is None:
        return None
    tokens_out = metrics["output_tokens"]["value"] or 0
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000


@dataclass(frozen=True)
class BreakEven:
    """A fine-tuned backend against a few-shot one: the saving and the volume that pays off."""

    finetuned: str
    fewshot: str
    training_usd: float | None
    training_basis: str
    prompt_tokens_saved: float | None
    usd_saved_per_answer: float | None
    price_basis: str
    fewshot_usd_per_answer: float | None
    finetuned_usd_per_answer: float | None
    answers_to_break_even: float | None
    monthly_volume_for_a_year: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def months_to_pay_off(training_usd: float, saved_per_answer: float, monthly_volume: float) -> float:
    """Months until the savings at ``monthly_volume`` answers cover the training (inf: never)."""
    monthly = saved_per_answer * monthly_volume
    return training_usd / monthly if monthly > 0 else float("inf")


def break_even(
    *,
    finetuned: str,
    fewshot: str,
    ft_usd: float | None,
    fs_usd: float | None,
    ft_tokens: float | None,
    fs_tokens: float | None,
    price_basis: str,
    cost: TrainingCost,
) -> BreakEven:
    """Saving per answer and the answers (and monthly volume for one year) that repay training."""
    tokens_saved = None if ft_tokens is None or fs_tokens is None else fs_tokens - ft_tokens
    saved = None if ft_usd is None or fs_usd is None else fs_usd - ft_usd
    answers = per_month = None
    if saved is not None and saved > 0 and cost.usd is not None:
        answers = cost.usd / saved
        per_month = answers / MONTHS_HORIZON
    return BreakEven(
        finetuned, fewshot, cost.usd, cost.basis, tokens_saved, saved, price_basis,
        fs_usd, ft_usd, answers, per_month,
    )  # fmt: skip


def pairs(
    kinds: Mapping[str, str | None], models: Mapping[str, str | None]
) -> list[tuple[str, str]]:
    """(fine-tuned, few-shot) backends to compare: the few-shot one with the same model if any,
    else the first few-shot backend of the run."""
    fewshots: Sequence[str] = [n for n, k in kinds.items() if k == "fewshot"]
    found = []
    for name, kind in kinds.items():
        if kind != "finetuned" or not fewshots:
            continue
        same = [f for f in fewshots if models.get(f) and models.get(f) == models.get(name)]
        found.append((name, (same or list(fewshots))[0]))
    return found
