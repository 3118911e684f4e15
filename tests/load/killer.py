"""Kill one worker mid-run (SIGKILL, as a crash or the kernel's out-of-memory killer would)
and time how long ``afina serve --workers`` takes to have it answering again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass

import aiohttp

from tests.load.servers import Running


@dataclass
class Kill:
    """When to kill (seconds after the sessions started sending) and what happened."""

    after_s: float
    port: int | None = None
    pid: int | None = None
    killed_at_s: float | None = None  # from the start of sending
    back_after_s: float | None = None  # from the kill until the new worker answered /healthz

    def describe(self) -> str:
        """One line for the run's table."""
        if self.killed_at_s is None:
            return f"not killed: the run ended before {self.after_s:g} s"
        back = (
            f"answering again {self.back_after_s:.1f} s later"
            if self.back_after_s is not None
            else "not answering again by the end of the run"
        )
        return f"port {self.port} (pid {self.pid}) at {self.killed_at_s:.1f} s, {back}"

    async def run(self, server: Running, give_up_s: float = 180) -> None:
        """Sleep ``after_s``, SIGKILL the first worker, wait until its port answers again."""
        begun = time.perf_counter()
        await asyncio.sleep(self.after_s)
        self.port = server.worker_ports[0]
        self.pid = await asyncio.to_thread(server.worker_pid, self.port)
        if self.pid is None:
            raise RuntimeError(f"no worker listens on port {self.port}")
        os.kill(self.pid, signal.SIGKILL)
        killed = time.perf_counter()
        self.killed_at_s = killed - begun
        url = f"http://127.0.0.1:{self.port}/healthz"
        async with aiohttp.ClientSession() as http:
            while time.perf_counter() - killed < give_up_s:
                try:
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            self.back_after_s = time.perf_counter() - killed
                            return
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                await asyncio.sleep(0.5)
