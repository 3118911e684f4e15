"""Helpers shared by the CLI sub-apps: consoles, the runtime, progress bars, Ctrl+C."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

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


class CtrlC:
    """Within ``with CtrlC(message) as ctrl_c``, the first Ctrl+C sets ``ctrl_c.pressed``.

    For jobs that check a stop flag between steps and run native code (torch, tokenizers) in
    between: a KeyboardInterrupt raised in the middle of loading such code has aborted the
    process (SIGABRT) and skipped the clean-up. So the first Ctrl+C prints ``message`` and lets
    the job stop at its next check; a second one raises KeyboardInterrupt at once.
    """

    def __init__(self, message: str):
        self.message, self.pressed = message, False
        self._previous: Callable | int | None = None

    def __enter__(self) -> CtrlC:
        # the job may swap sys.stderr (model loading hides its chatter): print to this one
        self._console = Console(file=sys.stderr, highlight=False)
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        self._console.print(self.message)
