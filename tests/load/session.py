"""One agent's browser session over HTTP and Socket.IO, as Chainlit's web client speaks it."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import socketio

SOCKET_PATH = "/chat/ws/socket.io"
SESSION_COOKIE = "X-Chainlit-Session-id"  # Chainlit's client sets it for sticky proxies


@dataclass
class Turn:
    """One question and what came back for it (times in seconds, from the send)."""

    session: int
    question: str
    question_id: str
    sent_at: float = 0.0
    ttft_s: float | None = None  # first streamed text (or the whole answer when not streamed)
    latency_s: float | None = None  # the final answer (the message's last update)
    ended_s: float | None = None  # end of the turn (the UI's stop button goes away)
    answer_id: str | None = None
    answer: str = ""
    thread_id: str | None = None
    lost: str | None = None  # why no answer came: "timeout", "disconnected"
    resent: bool = False  # the same text sent again after a lost turn (a new question id)
    answered_again: bool = False  # lost, then answered when the session asked it again
    late_s: float = 0.0  # open loop: how long after its scheduled time it was sent


class Refused(Exception):
    """The server refused the login or the socket."""


async def log_in(http: aiohttp.ClientSession, url: str, username: str, password: str) -> str:
    """POST the login form like the browser; the ``access_token`` cookie. Waits out a 429."""
    for _ in range(30):
        async with http.post(
            f"{url}/chat/login", data={"username": username, "password": password}
        ) as response:
            if response.status == 429:
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status != 200:
                body = await response.text()
                raise Refused(f"login as {username!r}: HTTP {response.status} {body}")
            return response.cookies["access_token"].value
    raise Refused(f"login as {username!r}: still throttled after 30 tries")


class ChatSession:
    """A logged-in chat: ``ask`` sends one question and waits for its whole answer."""

    def __init__(self, index: int, url: str, cookie: str, *, username: str, websocket: bool):
        self.index, self.url, self.cookie, self.username = index, url, cookie, username
        self.session_id = str(uuid.uuid4())
        self.transports = ["websocket"] if websocket else None  # None: polling, then upgrade
        self.thread_id: str | None = None
        self.client: socketio.AsyncClient | None = None
        self.turn: Turn | None = None
        self.disconnects = 0
        self._ended = asyncio.Event()
        self._ready = asyncio.Event()
        self._greeted = False
        self._stream_id: str | None = None

    # connection ----------------------------------------------------------------------------
    async def connect(self, timeout: float = 30) -> None:
        """Open the socket (resuming this session's thread when it has one) and wait until the
        server greeted it (a new chat) or sent the thread back (a resume)."""
        client = socketio.AsyncClient(reconnection=False, request_timeout=timeout)
        client.on("*", self._on_event)
        client.on("disconnect", self._on_disconnect)
        self._ready.clear()
        self._greeted = False
        cookie = f"access_token={self.cookie}; {SESSION_COOKIE}={self.session_id}"
        auth = {"sessionId": self.session_id, "clientType": "webapp", "threadId": self.thread_id}
        try:
            await client.connect(
                self.url,
                socketio_path=SOCKET_PATH,
                headers={"Cookie": cookie},
                auth=auth,
                transports=self.transports,
                wait_timeout=timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            raise Refused(f"session {self.index}: socket refused: {exc}") from exc
        self.client = client
        await client.emit("connection_successful")
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def reconnect(self, give_up_s: float = 60) -> None:
        """Connect again after the socket dropped, retrying like the browser (every 0.5 s)."""
        deadline = time.monotonic() + give_up_s
        while True:
            try:
                await self.connect()
                return
            except (Refused, TimeoutError, OSError, aiohttp.ClientError):
                if time.monotonic() > deadline:
                    raise
                await self._drop()
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        """Disconnect."""
        await self._drop()

    async def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None and client.connected:
            await client.disconnect()

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    # events --------------------------------------------------------------------------------
    async def _on_disconnect(self, *_: Any) -> None:
        self.disconnects += 1
        self._ended.set()  # wakes a waiting ask, which sees the socket is gone

    async def _on_event(self, event: str, data: Any = None) -> None:
        now = time.perf_counter()
        if isinstance(data, dict) and data.get("threadId"):
            self.thread_id = data["threadId"]
        if event == "resume_thread":
            self._ready.set()
            return
        turn = self.turn
        kind = data.get("type") if isinstance(data, dict) else None
        if turn is None:
            if event == "new_message" and kind == "assistant_message":
                self._greeted = True  # the welcome; on_chat_start ends with the next task_end
            elif event == "task_end" and self._greeted:
                self._ready.set()
            return
        if event == "stream_start" and kind == "assistant_message":
            self._stream_id = data.get("id")
            turn.ttft_s = turn.ttft_s or now - turn.sent_at
        elif kind == "assistant_message" and (
            (event == "update_message" and data.get("id") == self._stream_id)
            or (event == "new_message" and not data.get("streaming"))
        ):
            turn.latency_s = now - turn.sent_at
            turn.ttft_s = turn.ttft_s or turn.latency_s
            turn.answer_id, turn.answer = data.get("id"), str(data.get("output") or "")
        elif event == "task_end":
            turn.ended_s = now - turn.sent_at
            self._ended.set()

    # a turn --------------------------------------------------------------------------------
    async def ask(self, question: str, *, timeout: float = 60, resent: bool = False) -> Turn:
        """Send ``question`` as the web client does; return it once the turn ended (or was
        lost: no answer before ``timeout``, or the socket dropped)."""
        turn = Turn(self.index, question, str(uuid.uuid4()), resent=resent)
        message = {
            "id": turn.question_id,
            "threadId": self.thread_id or "",
            "name": self.username,
            "type": "user_message",
            "output": question,
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self._ended.clear()
        self._stream_id = None
        self.turn, turn.sent_at, turn.thread_id = turn, time.perf_counter(), self.thread_id
        try:
            if self.client is None:
                raise ConnectionError("not connected")
            await self.client.emit("client_message", {"message": message, "fileReferences": None})
            await asyncio.wait_for(self._wait_end(), timeout)
        except TimeoutError:
            turn.lost = "timeout"
        except (ConnectionError, socketio.exceptions.SocketIOError):
            turn.lost = "disconnected"
        finally:
            self.turn = None
        if turn.lost is None and turn.latency_s is None:
            turn.lost = "disconnected" if not self.connected else "no answer"
        turn.thread_id = turn.thread_id or self.thread_id
        return turn

    async def _wait_end(self) -> None:
        while True:
            await self._ended.wait()
            self._ended.clear()
            if not self.connected:
                raise ConnectionError("socket dropped")
            if self.turn is not None and self.turn.ended_s is not None:
                return
