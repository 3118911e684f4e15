"""A chat in the browser: a reload keeps the conversation; Ctrl-C stops the server cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from chatbot.db.models import Message
from tests.e2e.conftest import DESKTOP, PHONE, Server, running_server
from tests.e2e.test_browser import ANSWER, USER, ask, latest_answer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for this module, on a SQLite file in its own AFINA_HOME."""
    folder = tmp_path_factory.mktemp("session")
    with running_server(folder, f"sqlite:///{folder / 'afina.db'}") as running:
        yield running


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_reload_after_answer_and_correction_reopens_the_same_conversation(
    server: Server, open_chat, viewport
):
    page = open_chat(server, "carmen", viewport=viewport)
    question = f"how much is shipping to my home ({viewport['width']})"
    ask(page, question)
    thread_id = latest_answer(server).conversation_id
    page.wait_for_url(re.compile(rf"/chat/thread/{thread_id}$"))  # the chat has its address
    page.reload()
    page.locator(USER, has_text=question).wait_for()  # the same chat, not a new one
    assert page.locator(ANSWER, has_text="Answered by").count() == 1
    better = f"Free from 50 EUR ({viewport['width']})."
    page.get_by_test_id("correction-open").last.click()
    page.get_by_test_id("correction-text").fill(better)
    page.get_by_test_id("correction-save").click()
    page.get_by_test_id("correction-saved").filter(has_text=better).wait_for()
    page.reload()
    page.get_by_test_id("correction-saved").filter(has_text=better).wait_for()
    assert page.url.endswith(f"/chat/thread/{thread_id}")
    follow_up = f"and how long does delivery take ({viewport['width']})?"
    ask(page, follow_up)  # the reopened chat goes on
    with server.sessions() as session:
        asked = session.scalar(select(Message).where(Message.content == follow_up))
        assert asked.conversation_id == thread_id
    page.locator("#new-chat-button").click()  # a new chat is still a new chat
    page.wait_for_url(re.compile(r"/chat/?$"))
    assert page.locator(USER).count() == 0


def test_ctrl_c_stops_a_used_server_cleanly(tmp_path, open_chat):
    """After real use (an answer, a correction, a reload), Ctrl-C ends the server with exit
    status 0 and nothing alarming in its log, even with the browser still connected."""
    with running_server(tmp_path, f"sqlite:///{tmp_path / 'afina.db'}") as server:
        page = open_chat(server, "alice")
        ask(page, "I forgot my password")
        page.get_by_test_id("correction-open").last.click()
        page.get_by_test_id("correction-text").fill("Use 'Forgot password' on the login page.")
        page.get_by_test_id("correction-save").click()
        page.get_by_test_id("correction-saved").wait_for()
        # no websockets (as behind some proxies): Socket.IO long-polls, and a poll is always
        # waiting on the server, as when a browser is mid-reconnect
        page.context.route_web_socket(re.compile(".*"), lambda socket: socket.close())
        page.reload()
        page.wait_for_selector(ANSWER)
        ask(page, "how much is shipping?")  # answered over long polling
        server.process.send_signal(signal.SIGINT)
        try:
            status = server.process.wait(timeout=30)  # a hang guard, not a timing assertion
        except subprocess.TimeoutExpired:
            pytest.fail(f"afina serve ignored Ctrl-C:\n{server.log.read_text()[-3000:]}")
    log = server.log.read_text(errors="replace")
    assert status == 0, log[-3000:]
    for alarming in ("Traceback", "No response returned", "Cancel ", "ERROR"):
        assert alarming not in log, log[-3000:]
