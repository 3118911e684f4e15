"""The report's figures, drawn with matplotlib and returned as inline SVG strings (no CDN)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import ticker

PALETTE = ("#3b6fd8", "#e07b39", "#2a9d8f", "#c4456a", "#8a63d2", "#6c757d", "#b8860b")
plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller, selectable, crisp
        "svg.hashsalt": "afina",  # stable ids: the same run gives the same file
        "font.size": 10,
        "font.family": "sans-serif",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.25,
    }
)


def colour(index: int) -> str:
    """The colour of the ``index``-th backend, the same in every figure."""
    return PALETTE[index % len(PALETTE)]


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _value(stat: dict[str, Any] | None) -> float | None:
    return None if not stat else stat.get("value")


def _err(stat: dict[str, Any], scale: float = 1.0) -> tuple[list[float], list[float]]:
    value, lo, hi = stat["value"], stat["lo"], stat["hi"]
    return [max(0.0, (value - lo) * scale)], [max(0.0, (hi - value) * scale)]


def quality_vs_cost(names: Sequence[str], summary: dict[str, Any], costs: dict[str, float]) -> str:
    """Scatter: quality (similarity to the reference, 95% CI) against cost per 1,000 answers."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for index, name in enumerate(names):
        stat = summary[name]["metrics"]["similarity"]
        if stat["value"] is None or name not in costs:
            continue
        x = costs[name]
        ax.errorbar(x, stat["value"], yerr=_err(stat), fmt="o", ms=9, capsize=4,
                    color=colour(index), label=name)  # fmt: skip
        ax.annotate(name, (x, stat["value"]), textcoords="offset points", xytext=(8, 6))
    ax.set_xlabel("USD per 1,000 answers")
    ax.set_ylabel("similarity to the reference answer")
    ax.set_ylim(0, 1.08)
    top = max(costs.values(), default=0.0)
    ax.set_xlim(-0.08 * (top or 1), 1.35 * (top or 1))
    return _svg(fig)


def latency(names: Sequence[str], rows_by_backend: dict[str, list[dict[str, Any]]]) -> str:
    """Box plots of time to first token and total time per backend (log scale)."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 0.6 + 0.55 * max(2, len(names))), sharey=True)
    for ax, key, title in zip(
        axes, ("ttft_ms", "latency_ms"), ("time to first token", "total time"), strict=True
    ):
        data = [
            [r[key] for r in rows_by_backend.get(n, []) if r.get(key)] or [float("nan")]
            for n in names
        ]
        boxes = ax.boxplot(data, orientation="horizontal", patch_artist=True, widths=0.6,
                           showfliers=True, flierprops={"markersize": 3, "alpha": 0.5})  # fmt: skip
        for index, patch in enumerate(boxes["boxes"]):
            patch.set_facecolor(colour(index))
            patch.set_alpha(0.55)
        values = [v for d in data for v in d if v == v]
        if values and max(values) / max(min(values), 1e-3) > 20:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel("milliseconds (log scale)")
        else:
            ax.set_xlim(left=0)
            ax.set_xlabel("milliseconds")
        ax.set_title(title)
    axes[0].set_yticks(range(1, len(names) + 1), list(names))
    axes[0].invert_yaxis()
    return _svg(fig)


def tokens(names: Sequence[str], summary: dict[str, Any]) -> str:
    """Stacked bars: mean prompt and completion tokens per answer."""
    fig, ax = plt.subplots(figsize=(6.4, 0.8 + 0.5 * max(2, len(names))))
    prompt = [(_value(summary[n]["metrics"]["input_tokens"]) or 0) for n in names]
    completion = [(_value(summary[n]["metrics"]["output_tokens"]) or 0) for n in names]
    y = range(len(names))
    ax.barh(y, prompt, color="#3b6fd8", label="prompt")
    ax.barh(y, completion, left=prompt, color="#e07b39", label="completion")
    for i, (p, c) in enumerate(zip(prompt, completion, strict=True)):
        label = f"{p:,.0f} + {c:,.0f}" if p + c else "no LLM tokens"
        ax.annotate(label, (p + c, i), textcoords="offset points", xytext=(4, -3))
    if not any(prompt) and not any(completion):
        ax.set_xlim(0, 1)
    ax.set_yticks(list(y), list(names))
    ax.invert_yaxis()
    ax.set_xlabel("tokens per answer (mean)")
    ax.margins(x=0.22)
    ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    return _svg(fig)


def handovers(names: Sequence[str], summary: dict[str, Any]) -> str:
    """Grouped bars: hand-over rate on in-scope (low is good) and out-of-scope (high is good)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.38
    for offset, key, label, shade in (
        (-width / 2, "handoff_in_scope", "in scope (lower is better)", "#c4456a"),
        (width / 2, "handoff_out_of_scope", "out of scope (higher is better)", "#2a9d8f"),
    ):
        for i, name in enumerate(names):
            stat = summary[name]["metrics"][key]
            if stat["value"] is None:
                continue
            ax.bar(i + offset, stat["value"] * 100, width, color=shade,
                   yerr=_err(stat, 100), capsize=3, label=label if i == 0 else None)  # fmt: skip
            top = (i + offset, stat["value"] * 100)
            ax.annotate(f"{stat['value']:.0%}", top, textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=9)  # fmt: skip
    ax.set_xticks(range(len(names)), list(names))
    ax.set_ylabel("% handed over to a human")
    ax.set_ylim(0, 105)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(0, 1.18), ncol=2)
    return _svg(fig)


def break_even_curve(pair: dict[str, Any]) -> str:
    """Cumulative cost against answers for the fine-tune and the few-shot backend; they cross
    at the break-even."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    fs, ft, training = (
        pair["fewshot_usd_per_answer"],
        pair["finetuned_usd_per_answer"],
        pair["training_usd"],
    )
    end = pair["answers_to_break_even"] * 2 if pair["answers_to_break_even"] else 1_000_000
    xs = [0, end]
    ax.plot(xs, [0, fs * end], color=colour(1), lw=2, label=f"{pair['fewshot']} (few-shot)")
    ax.plot(xs, [training, training + ft * end], color=colour(2), lw=2,
            label=f"{pair['finetuned']} (fine-tuned, incl. training)")  # fmt: skip
    if pair["answers_to_break_even"]:
        n = pair["answers_to_break_even"]
        ax.axvline(n, color="#888", ls="--", lw=1)
        ax.annotate(f"break-even: {n:,.0f} answers", (n, training + ft * n),
                    textcoords="offset points", xytext=(6, -14))  # fmt: skip
    ax.set_xlabel("answers")
    ax.set_ylabel("cumulative USD")
    ax.ticklabel_format(style="plain", axis="x")
    ax.legend(frameon=False, loc="upper left")
    return _svg(fig)


def strip_size(svg: str) -> str:
    """The SVG without fixed width/height, so CSS sizes it (the viewBox keeps the shape)."""
    return re.sub(r'\s(width|height)="[^"]*pt"', "", svg, count=2)
