"""The export report: rule counts, per-example figures, billed tokens, epochs, cost (text, JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatbot.training.validate import ERROR, RULES, FileResult

# OpenAI's default epoch rule, as its cookbook "Data preparation and analysis for chat model
# fine-tuning" computes it: 3 epochs; below 100 example-passes, 100 // examples (at most 25);
# above 25,000, 25,000 // examples (at least 1). Floor division, exactly as documented.
TARGET_EPOCHS = 3
MIN_EXAMPLE_PASSES, MAX_EXAMPLE_PASSES = 100, 25_000
MIN_EPOCHS, MAX_EPOCHS = 1, 25


def default_epochs(n_examples: int) -> int:
    """The epoch count OpenAI picks by default for a training file of ``n_examples``."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_EXAMPLE_PASSES:
        return min(MAX_EPOCHS, MIN_EXAMPLE_PASSES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_EXAMPLE_PASSES:
        return max(MIN_EPOCHS, MAX_EXAMPLE_PASSES // n_examples)
    return TARGET_EPOCHS


def percentiles(values: Sequence[int]) -> dict[str, int]:
    """p5/p50/p95 (nearest rank) of ``values``; zeros when empty."""
    if not values:
        return {"p5": 0, "p50": 0, "p95": 0}
    ordered = sorted(values)
    last = len(ordered) - 1
    return {f"p{q}": ordered[round(q / 100 * last)] for q in (5, 50, 95)}


def file_summary(result: FileResult) -> dict[str, Any]:
    """One file's part of the report."""
    return {
        "path": result.path,
        "split": result.kind,
        "examples": result.examples,
        "errors": result.errors,
        "warnings": result.warnings,
        "rules": {
            rule: {"severity": RULES[rule][0], "count": n, "lines": result.lines.get(rule, [])}
            for rule, n in sorted(result.counts.items())
        },
        "messages_per_example": percentiles(result.messages),
        "tokens_per_example": percentiles(result.tokens),
        "assistant_tokens_per_example": percentiles(result.assistant_tokens),
        "billed_tokens": result.billed_tokens,
    }


def build_report(
    results: list[FileResult],
    *,
    model: str,
    max_tokens: int,
    price_per_million: float,
    redaction: dict[str, Any] | None = None,
    splits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report as JSON-ready data; ``ok`` is False when any file has errors."""
    train = next((r for r in results if r.kind == "train"), None)
    n_train = train.examples if train else 0
    epochs = default_epochs(n_train)
    billed = train.billed_tokens if train else 0
    return {
        "ok": all(r.errors == 0 for r in results),
        "model": model,
        "max_tokens_per_example": max_tokens,
        "files": [file_summary(r) for r in results],
        "training": {
            "examples": n_train,
            "billed_tokens_per_epoch": billed,
            "default_epochs": epochs,
            "billed_tokens": billed * epochs,
            "price_per_million_tokens_usd": price_per_million,
            "estimated_cost_usd": round(billed * epochs * price_per_million / 1_000_000, 4),
        },
        "redaction": redaction if redaction is not None else {"enabled": None},
        "splits": splits or {},
    }


def _rule_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for rule, info in summary["rules"].items():
        where = ", ".join(str(n) for n in info["lines"] if n) or "file"
        mark = "ERROR  " if info["severity"] == ERROR else "warning"
        lines.append(f"    {mark} {rule:<22} x{info['count']:<6} {RULES[rule][1]} (lines {where})")
    return lines


def render_text(report: dict[str, Any]) -> str:
    """The report as a few readable lines."""
    verdict = "will be accepted" if report["ok"] else "will be REJECTED (fix the errors below)"
    out = [f"Files {verdict} for {report['model']}."]
    for summary in report["files"]:
        out.append(
            f"  {summary['split']:<10} {summary['examples']:>7} examples  {summary['path']}  "
            f"({summary['errors']} errors, {summary['warnings']} warnings)"
        )
        out.extend(_rule_lines(summary))
        t, a, m = (
            summary["tokens_per_example"],
            summary["assistant_tokens_per_example"],
            summary["messages_per_example"],
        )
        out.append(
            f"    per example p5/p50/p95: messages {m['p5']}/{m['p50']}/{m['p95']}, "
            f"tokens {t['p5']}/{t['p50']}/{t['p95']}, "
            f"assistant tokens {a['p5']}/{a['p50']}/{a['p95']}"
        )
    tr = report["training"]
    out.append(
        f"Training: {tr['billed_tokens_per_epoch']:,} billed tokens per epoch x "
        f"{tr['default_epochs']} epochs (default) = {tr['billed_tokens']:,} tokens, "
        f"about ${tr['estimated_cost_usd']:.2f} at ${tr['price_per_million_tokens_usd']}/1M."
    )
    red = report["redaction"]
    if red.get("enabled") is False:
        out.append("Redaction: OFF (--no-redact); files may contain personal data.")
    elif red.get("enabled"):
        found = ", ".join(f"{k} {v}" for k, v in sorted(red["counts"].items())) or "nothing found"
        out.append(f"Redaction: {found} (in {red['conversations']} conversations).")
        if red.get("detected_at_export"):
            out.append(f"  detected now in {red['detected_at_export']:,} stored texts.")
    if report["splits"]:
        parts = [f"{k} {v}" for k, v in report["splits"].get("conversations", {}).items()]
        moved = report["splits"].get("near_duplicates_moved", 0)
        out.append(f"Splits (conversations): {', '.join(parts)}; near-duplicates moved: {moved}.")
    return "\n".join(out)
