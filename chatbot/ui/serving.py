"""Run the web app under uvicorn, and stop it cleanly: browser sockets are closed first."""

from __future__ import annotations

import logging
import os
import socket
import sys

import uvicorn

log = logging.getLogger(__name__)
GRACE_S = 3  # how long requests still running at a stop may take to finish


async def close_browser_sockets() -> int:
    """End every browser's Socket.IO session now; returns how many there were.

    A long poll (the browser's Socket.IO before, or instead of, a websocket) waits up to ~45 s
    for something to send: at a stop, uvicorn would wait for it past its grace time, then cancel
    it with a traceback. Closed here, each poll answers at once and the browser reconnects to
    the next server."""
    from chainlit.server import sio

    sockets = list(sio.eio.sockets.values())
    for browser in sockets:
        try:
            await browser.close(wait=False)
        except Exception:  # one broken socket must not keep the others (or the stop) waiting
            log.warning("could not close a browser socket at shutdown", exc_info=True)
    return len(sockets)


class Server(uvicorn.Server):
    """uvicorn's server, closing browser sockets before it waits for open requests."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Close the browser sockets, then uvicorn's own graceful stop (and the lifespan's)."""
        await close_browser_sockets()
        await super().shutdown(sockets=sockets)


def run(app: object, host: str, port: int) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM (what ``uvicorn.run`` does, with a clean stop).

    Once stopped (the lifespan has closed the database and the backends), the process ends at
    once: Python's own teardown of the loaded models (torch, ONNX Runtime, FAISS) would add
    seconds of nothing to every stop."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=GRACE_S,
    )
    server = Server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    if not server.started:  # the port was taken, or the app failed to start
        sys.exit(3)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
