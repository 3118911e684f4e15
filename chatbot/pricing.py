"""What an answer cost: tokens times the price table in settings (USD per 1M tokens)."""

from __future__ import annotations

from collections.abc import Mapping

Prices = Mapping[str, tuple[float, float]]


def price_of(prices: Prices, model: str) -> tuple[float, float] | None:
    """The (input, output) price of ``model``; ``ft:BASE:...`` may be priced as ``ft:BASE``."""
    if model in prices:
        return prices[model]
    if model.startswith("ft:"):
        return prices.get(":".join(model.split(":")[:2]))
    return None


def cost_usd(
    prices: Prices, model: str | None, input_tokens: int | None, output_tokens: int | None
) -> float | None:
    """USD for one answer; None when the model is not in the table (unknown, not free)."""
    price = price_of(prices, model) if model else None
    if price is None:
        return None
    per_input, per_output = price
    total = (input_tokens or 0) * per_input + (output_tokens or 0) * per_output
    return round(total / 1_000_000, 8)
