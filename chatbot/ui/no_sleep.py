"""Chainlit's Message and Step constructors without their blocking ``time.sleep(0.001)``.

Chainlit 2.12 sleeps 1 ms in every ``Message``/``Step`` constructor (so consecutive
``created_at`` stamps differ), on the event loop: a browser turn builds four (the question, the
run step, the search step, the answer), so every session waits >= 4 ms per turn, and far longer
on a busy machine, where the sleeping loop must win the GIL back from the embedder's and the
personal-data worker's threads (up to 5 ms each time). Profiled under 25 busy sessions, those
sleeps were ~15% of the event loop's time. The replacement waits only until the microsecond
clock ticks, which keeps the stamps distinct and ordered.
"""

from __future__ import annotations

import importlib
import time
from typing import Any


def tick(_seconds: float = 0.0) -> None:
    """Wait until the microsecond clock moves on (well under a microsecond, usually)."""
    start = time.time_ns() // 1000
    while time.time_ns() // 1000 == start:
        pass


class TickingTime:
    """The ``time`` module as ``chainlit.message`` and ``chainlit.step`` see it: ``sleep``
    only ticks; everything else is the real module's."""

    sleep = staticmethod(tick)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def install() -> None:
    """Swap the ``time`` that Chainlit's message and step modules sleep with (once)."""
    for name in ("chainlit.message", "chainlit.step"):  # modules (``chainlit.step`` is a function)
        names = vars(importlib.import_module(name))
        if not isinstance(names["time"], TickingTime):
            names["time"] = TickingTime()
