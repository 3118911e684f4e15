"""Helpers shared by the CLI sub-apps: consoles, the runtime, progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from chatbot.runtime import Runtime
from chatbot.settings import get_settings

console = Console()
err = Console(stderr=True)


def open_runtime() -> Runtime:
    """Connect to the database named in settings and migrate it."""
    return Runtime.open(get_settings())


@contextmanager
def progress_bar(label: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A rich progress bar: yields (set total, advance by n)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(label, total=None)

        def start(total: int) -> None:
            progress.update(task, total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        yield start, advance
