"""Chainlit's Message and Step constructors stamp distinct times without sleeping on the loop."""

from __future__ import annotations

import importlib
import time
from datetime import datetime
from itertools import pairwise

from chatbot.ui import no_sleep


def test_chainlit_constructors_tick_instead_of_sleeping():
    no_sleep.install()
    no_sleep.install()  # twice is harmless
    for name in ("chainlit.message", "chainlit.step"):
        clock = importlib.import_module(name).time
        assert clock.sleep is no_sleep.tick and clock.time is time.time  # the rest is real
    utc_now = importlib.import_module("chainlit.utils").utc_now
    stamps = []
    for _ in range(200):  # what the constructors do: wait, then stamp
        no_sleep.tick()
        stamps.append(utc_now())
    times = [datetime.fromisoformat(s.removesuffix("Z")) for s in stamps]
    assert all(a < b for a, b in pairwise(times))
