"""``afina kb calibrate``: choose each language's hand-over score on labelled questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from backends.retrieval.index import KnowledgeIndexError
from chatbot.cli.common import console, err
from chatbot.errors import ConfigError
from chatbot.settings import get_settings


def calibrate_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="JSONL questions: {text, locale, entry_id} in scope; without entry_id, out of "
            "scope",
            exists=True,
            dir_okay=False,
        ),
    ],
    target: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="Out-of-scope share to hand over (AFINA_RETRIEVAL_HANDOVER_OOS_RECALL)",
        ),
    ] = None,
    test_fraction: Annotated[
        float,
        typer.Option(min=0.0, max=0.9, help="Share kept out of the choice, to report on"),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the dev/test split")] = 0,
    curve: Annotated[bool, typer.Option(help="Print the threshold curve")] = False,
) -> None:
    """Store each language index's hand-over score for a target out-of-scope recall."""
    run_calibration(files, target=target, test_fraction=test_fraction, seed=seed, curve=curve)


def run_calibration(
    files: list[Path],
    *,
    target: float | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    curve: bool = False,
) -> None:
    """Calibrate the configured indexes and print what each hand-over score costs."""
    from chatbot.knowledge.calibrate import calibrate_configured

    settings = get_settings()
    goal = settings.retrieval.handover_oos_recall if target is None else target
    try:
        reports = calibrate_configured(
            settings, files, target=goal, test_fraction=test_fraction, seed=seed
        )
    except KnowledgeIndexError as exc:
        raise ConfigError(str(exc)) from None
    if not reports:
        err.print("no language index had out-of-scope questions: nothing calibrated")
        raise typer.Exit(1)
    for r in reports:
        inside, outside = r.dev_counts
        console.print(
            f"[bold]{r.group}[/]: hand-over score {r.threshold:.3f} (was {r.configured:.3f}; "
            f"confidence = {r.rule.describe()}) "
            f"for {goal:.0%} out-of-scope recall, chosen on {inside} in-scope and {outside} "
            f"out-of-scope questions: {_figures(r.dev)}",
            soft_wrap=True,
        )
        if r.test is not None and r.test_configured is not None:
            inside, outside = r.test_counts
            console.print(
                f"  on the {inside}+{outside} held back: {_figures(r.test)}; at the old score "
                f"{_figures(r.test_configured)}",
                soft_wrap=True,
            )
        if curve:
            _print_curve(r)
    console.print(
        f"stored with the index in {settings.index_dir}; 'afina kb ingest' calibrates again "
        "on the same files when the index changes",
        soft_wrap=True,
    )


def _figures(p) -> str:
    """A point's figures in words."""
    return (
        f"out-of-scope handed over {p.oos_recall:.1%}, in-scope answered right "
        f"{p.answered_right:.1%} (handed over {p.handed_over:.1%})"
    )


def _print_curve(report) -> None:
    """Threshold -> out-of-scope recall and in-scope answered right (dev, and test if any)."""
    table = Table("threshold", "oos handed over", "in-scope right", title=f"{report.group} (dev)")
    held = report.curve and report.curve[0][1] is not None
    if held:
        table = Table(
            "threshold",
            "dev oos",
            "dev right",
            "test oos",
            "test right",
            title=report.group,
        )
    for dev, test in report.curve:
        cells = [f"{dev.threshold:.2f}", f"{dev.oos_recall:.1%}", f"{dev.answered_right:.1%}"]
        if test is not None:
            cells += [f"{test.oos_recall:.1%}", f"{test.answered_right:.1%}"]
        table.add_row(*cells)
    console.print(table)
