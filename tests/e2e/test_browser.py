"""The browser UI end to end: real ``afina serve`` (SQLite), real Chromium, real knowledge base."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from chatbot import reviews
from chatbot.backend_pool import ACTIVE_BACKEND
from chatbot.db import store
from chatbot.db.models import AppSetting, Correction, Feedback, Message, User
from tests.e2e.conftest import (
    ADMIN_PASSWORD,
    BROKEN,
    DESKTOP,
    PASSWORD,
    PHONE,
    STRICT,
    Server,
    running_server,
)

pytestmark = pytest.mark.e2e
ANSWER = '[data-step-type="assistant_message"]'
USER = '[data-step-type="user_message"]'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for this module, on a SQLite file in its own AFINA_HOME."""
    folder = tmp_path_factory.mktemp("web")
    with running_server(folder, f"sqlite:///{folder / 'afina.db'}") as running:
        yield running


def wait_for(check: Callable[[], object], timeout: float = 15.0) -> object:
    """Poll ``check`` until it returns something truthy (the database is written async)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"condition not met in {timeout}s")


def ask(page, text: str) -> object:
    """Type a question, send it, wait for the answer to finish; return the last answer."""
    before = page.locator(ANSWER).count()
    page.fill("#chat-input", text)
    page.click("#chat-submit")
    page.wait_for_function(
        f"document.querySelectorAll('{ANSWER}').length > {before}", timeout=30_000
    )
    page.wait_for_selector("#stop-button", state="detached", timeout=30_000)
    return page.locator(ANSWER).last


def set_active(server: Server, name: str) -> None:
    """Switch the backend directly in the database (what ``afina backends use`` does)."""
    with server.sessions.begin() as session:
        store.set_setting(session=session, key=ACTIVE_BACKEND, value=name)


def latest_answer(server: Server) -> Message:
    with server.sessions() as session:
        query = select(Message).where(Message.role == "assistant")
        return session.scalars(query.order_by(Message.created_at.desc())).first()


def test_wrong_password_says_invalid_credentials(server: Server, browser):
    context = browser.new_context()
    try:
        response = context.request.post(
            f"{server.chat}/login", form={"username": "alice", "password": "not-her-password"}
        )
        assert response.status == 401
        assert response.json() == {"detail": "invalid credentials"}
        page = context.new_page()
        page.goto(f"{server.chat}/login")
        page.fill("#email", "alice")
        page.fill("#password", "still-not-her-password")
        page.click("button[type=submit]")
        page.get_by_text("Invalid credentials.").first.wait_for()
    finally:
        context.close()


def test_agent_sees_streamed_answer_with_sources_and_backend(server: Server, open_chat):
    page = open_chat(server, "alice")
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
    page.reload()
    page.wait_for_selector(ANSWER)
    answer = ask(page, "how much does delivery cost?")
    text = answer.inner_text()
    assert "Shipping is free on orders over 50 EUR" in text
    assert "Answered by faq" in text
    assert "1. How much is shipping?".lower() in text.lower()
    # streamed in one chunk (the text is ready at once), not a socket event per word
    assert any("stream_start" in f for f in frames)
    assert not any("stream_token" in f for f in frames)
    assert re.search(r"How much is shipping\? \(score 0\.\d\d\)", text)  # sources inline
    search = page.get_by_text("Knowledge-base search").last
    assert search.bounding_box()["y"] < answer.bounding_box()["y"]  # the search, then the answer
    stored = latest_answer(server)
    assert stored.content.startswith("Shipping is free") and stored.run_step_id
    assert stored.sources[0]["id"] == "shipping-cost"


def test_thumbs_up_with_comment_lands_in_database(server: Server, open_chat):
    page = open_chat(server, "alice")
    ask(page, "I forgot my password")
    page.locator(".positive-feedback-off").last.click()
    page.locator("textarea").last.fill("spot on")
    page.click("#submit-feedback")
    message_id = latest_answer(server).id

    def stored():
        with server.sessions() as session:
            row = session.scalar(select(Feedback).where(Feedback.message_id == message_id))
            return row and (row.value, row.comment)

    assert wait_for(stored) == (1, "spot on")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_correction_is_edited_under_the_answer_and_the_chat_stays_usable(
    server: Server, open_chat, viewport
):
    page = open_chat(server, "alice", viewport=viewport)
    ask(page, "what are the shipping fees")
    message_id = latest_answer(server).id
    page.get_by_test_id("correction-open").last.click()
    editor = page.get_by_test_id("correction-text")
    assert editor.input_value().startswith("Shipping is free")  # pre-filled with the answer
    better = f"Free above 50 EUR, else 4.95 EUR ({viewport['width']})."
    editor.fill(better)
    page.get_by_test_id("correction-save").click()
    page.get_by_test_id("correction-saved").filter(has_text=better).wait_for()
    assert page.locator("#stop-button").count() == 0  # nothing left running
    assert page.locator(USER, has_text=better).count() == 0  # not a customer's bubble
    ask(page, "I forgot my password")  # the next question is answered as usual
    with server.sessions() as session:
        row = session.scalar(select(Correction).where(Correction.message_id == message_id))
        author = session.get(User, row.user_id).username
        thread_id = session.get(Message, message_id).conversation_id
    assert row.content == better and author == "alice"
    page.goto(f"{server.chat}/thread/{thread_id}")  # reopened: shown, and editable again
    page.get_by_test_id("correction-saved").filter(has_text=better).wait_for()
    assert page.get_by_test_id("correction-open").count() == 2  # one per answer
    page.get_by_test_id("correction-open").first.click()
    assert page.get_by_test_id("correction-text").input_value() == better
    page.get_by_test_id("correction-text").fill("Edited later.")
    page.get_by_test_id("correction-save").click()
    page.get_by_test_id("correction-saved").filter(has_text="Edited later.").wait_for()
    with server.sessions() as session:
        assert reviews.latest_corrections(session=session, message_ids=[message_id]) == {
            message_id: "Edited later."
        }


def test_admin_switches_backend_and_agents_next_answer_uses_it(server: Server, open_chat):
    agent = open_chat(server, "bob")
    assert "Answered by faq" in ask(agent, "how much is shipping?").inner_text()
    assert agent.locator("#chat-settings-open-modal").count() == 0  # agents get no control
    admin = open_chat(server, "admin")
    try:
        admin.click("#chat-settings-open-modal")
        admin.locator("#backend").click()
        admin.get_by_role("option", name=f"{STRICT} (retrieval)", exact=True).click()
        admin.get_by_role("button", name="Confirm").click()
        admin.get_by_text(f"switched the answering backend to {STRICT}").wait_for()
        with server.sessions() as session:
            row = session.get(AppSetting, ACTIVE_BACKEND)
            assert row.value == STRICT
            assert session.get(User, row.updated_by).username == "admin"
        text = ask(agent, "how much is shipping?").inner_text()
        assert f"Answered by {STRICT}" in text
        assert "Handed over to a human agent" in text
    finally:
        set_active(server, "faq")


def test_conversation_reopens_from_the_sidebar(server: Server, open_chat):
    page = open_chat(server, "carmen")
    ask(page, "can I still send something back after three weeks?")
    page.locator(".positive-feedback-off").last.click()
    page.click("#submit-feedback")
    page.goto(f"{server.chat}/")
    page.wait_for_selector(ANSWER)
    link = page.locator("#thread-history a", has_text="three weeks")
    link.first.click()
    answer = page.locator(ANSWER, has_text="within 30 days")
    answer.first.wait_for()
    assert "Answered by faq" in answer.first.inner_text()
    page.locator(".positive-feedback-on").first.wait_for()  # the rating survived the reload


def test_a_user_never_sees_another_users_conversation(server: Server, open_chat, browser):
    alice = open_chat(server, "alice")
    ask(alice, "secret question about my lost password from alice")
    with server.sessions() as session:
        thread_id = session.scalar(
            select(Message.conversation_id).where(Message.content.like("%from alice%"))
        )
    bob = open_chat(server, "bob")
    bob.wait_for_selector("#thread-history")
    assert "from alice" not in bob.locator("#thread-history").inner_text()
    response = bob.context.request.get(f"{server.chat}/project/thread/{thread_id}")
    assert response.status in (401, 404)
    bob.goto(f"{server.chat}/thread/{thread_id}")
    bob.get_by_text("does not exist or is not yours").wait_for()  # not a network error
    assert "from alice" not in bob.content()
    bob.get_by_role("link", name="Start a new chat").click()
    bob.wait_for_selector(ANSWER)  # back in a chat of their own


def in_own_loop(coroutine):
    """Run a coroutine on a fresh event loop in a thread (Playwright holds this thread's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _forged_switch(server: Server, username: str, password: str, backend: str) -> list:
    """Log in over HTTP, then talk Socket.IO by hand: ask for a backend switch."""
    import requests
    import socketio

    login = requests.post(
        f"{server.chat}/login", data={"username": username, "password": password}, timeout=10
    )
    assert login.ok
    client = socketio.AsyncClient()
    seen: list[str] = []
    client.on("new_message", lambda data: seen.append(json.dumps(data)))
    await client.connect(
        server.url,
        socketio_path="/chat/ws/socket.io",
        headers={"Cookie": f"access_token={login.cookies['access_token']}"},
        auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp", "threadId": None},
        wait_timeout=10,
    )
    try:
        await client.emit("connection_successful")
        await client.emit("chat_settings_change", {"backend": backend})
        for _ in range(100):
            if any("backend" in s and ("switched" in s or "Only an admin" in s) for s in seen):
                break
            await asyncio.sleep(0.1)
    finally:
        await client.disconnect()
    return seen


def test_forged_socketio_switch_from_an_agent_is_refused(server: Server):
    """A hand-made Socket.IO client (python-socketio) logged in as an agent asks for a switch."""
    seen = in_own_loop(_forged_switch(server, "bob", PASSWORD, STRICT))
    assert any("Only an admin can change the answering backend" in s for s in seen)
    with server.sessions() as session:
        assert store.get_setting(session=session, key=ACTIVE_BACKEND) == "faq"
    try:  # the same hand-made client does switch for an admin: the refusal is about the role
        seen = in_own_loop(_forged_switch(server, "admin", ADMIN_PASSWORD, STRICT))
        assert any(f"switched the answering backend to {STRICT}" in s for s in seen)
        with server.sessions() as session:
            assert store.get_setting(session=session, key=ACTIVE_BACKEND) == STRICT
    finally:
        set_active(server, "faq")


def test_spanish_browser_gets_spanish_texts(server: Server, open_chat):
    page = open_chat(server, "carmen", locale="es-ES")
    assert "Soy Afina" in page.locator(ANSWER).first.inner_text()
    answer = ask(page, "¿Cuánto cuesta el envío?").inner_text()
    assert "El envío es gratis" in answer and "Respondido por faq" in answer
    page.get_by_text("Sugerir una respuesta mejor").last.wait_for()
    placeholder = page.locator("#chat-input").get_attribute("placeholder") or ""
    assert placeholder and "message" not in placeholder.lower()  # Chainlit's own Spanish UI


def test_markup_is_shown_as_text_and_bad_input_gets_a_clear_message(server: Server, open_chat):
    page = open_chat(server, "carmen")
    markup = '<img src="x" id="injected" onerror="document.title=1"><b>bold</b> shipping?'
    ask(page, markup)
    assert (
        page.locator("#injected").count() == 0 and page.locator("b", has_text="bold").count() == 0
    )
    page.get_by_text("<b>bold</b>", exact=False).first.wait_for()
    page.fill("#chat-input", "x" * 4500)
    page.click("#chat-submit")
    page.get_by_text(re.compile(r"too long \(4500 characters; the limit is 4000\)")).wait_for()


def test_backend_failure_is_a_friendly_message_and_the_question_is_kept(server: Server, open_chat):
    page = open_chat(server, "carmen")
    set_active(server, BROKEN)
    try:
        text = ask(page, "where is my parcel?").inner_text()
    finally:
        set_active(server, "faq")
    assert "knowledge base is not available right now" in text
    assert "Traceback" not in page.content()
    with server.sessions() as session:
        question = session.scalar(select(Message).where(Message.content == "where is my parcel?"))
        reply = latest_answer(server)
        assert question is not None and question.role == "user"
        assert reply.conversation_id == question.conversation_id and reply.error


def test_serve_created_the_admin_and_an_auth_secret(server: Server):
    secret = Path(server.home) / "chainlit-auth-secret"
    assert secret.exists() and len(secret.read_text().strip()) > 30
    with server.sessions() as session:
        admin = store.get_user(session=session, username="admin")
        assert admin is not None and admin.role == "admin"


def test_admin_downloads_an_export_and_agents_are_refused(server: Server, open_chat):
    """The export download of the web app: admins get a zip (recorded as an export), others not."""
    import io
    import zipfile

    import requests

    from chatbot.db.models import Export

    ask(open_chat(server, "carmen"), "my email is carmen@example.com, how much is shipping?")

    def session_for(username: str, password: str) -> requests.Session:
        http = requests.Session()
        login = http.post(
            f"{server.chat}/login", data={"username": username, "password": password}, timeout=10
        )
        assert login.ok
        return http

    assert requests.get(f"{server.url}/admin/export", timeout=30).status_code == 401
    agent = session_for("bob", PASSWORD).get(f"{server.url}/admin/export", timeout=30)
    assert agent.status_code == 403 and "text/html" in agent.headers["content-type"]
    assert "for administrators only" in agent.text  # a page, not raw JSON
    admin = session_for("admin", ADMIN_PASSWORD)
    bad = admin.get(f"{server.url}/admin/export", params={"rating": "great"}, timeout=30)
    assert bad.status_code == 400 and "unknown --rating &#x27;great&#x27;" in bad.text
    bad = admin.get(f"{server.url}/admin/export", params={"since": "yesterday"}, timeout=30)
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text and "yesterday" in bad.text
    got = session_for("admin", ADMIN_PASSWORD).get(f"{server.url}/admin/export", timeout=120)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/zip"
    files = zipfile.ZipFile(io.BytesIO(got.content))
    names = set(files.namelist())
    assert {"train.jsonl", "report.json"} <= names
    exported = "".join(files.read(n).decode() for n in names if n.endswith(".jsonl"))
    assert "carmen@example.com" not in exported  # redacted by default
    with server.sessions() as session:
        export = session.scalars(select(Export).order_by(Export.id.desc())).first()
    assert export is not None and export.created_by is not None


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_login_page_is_afinas_asks_for_a_user_name_and_no_other_host(
    server: Server, browser, viewport
):
    context = browser.new_context(viewport=viewport)
    outside: list[str] = []

    def route(request_route):
        if request_route.request.url.startswith((server.url, "data:")):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    try:
        page = context.new_page()
        page.goto(f"{server.chat}/login")
        page.get_by_text("User name").wait_for()
        page.get_by_text("Log in to Afina").wait_for()
        assert page.get_by_text("Email address").count() == 0
        logo = context.request.get(f"{server.chat}/logo?theme=light")
        assert "Afina" in logo.text() and "Chainlit" not in logo.text()
        assert "Afina" in context.request.get(f"{server.chat}/public/login.svg").text()
        assert "#0f766e" in context.request.get(f"{server.chat}/favicon").text()
        page.fill("#email", "carmen")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector(ANSWER)
        ask(page, "how much is shipping?")
        assert "LLMs can make mistakes" not in page.content()
        assert outside == []  # no KaTeX stylesheet, no fonts from a CDN
    finally:
        context.close()


def test_handover_heading_follows_the_conversations_language(server: Server, open_chat):
    """An English browser, a customer writing Spanish: the hand-over is Spanish throughout."""
    page = open_chat(server, "carmen")
    with server.sessions.begin() as session:  # hands over in every language
        config = {"min_score": 2.0, "language_min_scores": {}}
        store.put_backend(session=session, name="strict-all", kind="retrieval", config=config)
    set_active(server, "strict-all")
    try:
        text = ask(page, "¿Cuánto cuesta el envío a Canarias?").inner_text()
    finally:
        set_active(server, "faq")
    assert "Derivado a un agente humano" in text and "Respondido por strict-all" in text
    assert "Handed over" not in text
    page.goto(f"{server.chat}/thread/{latest_answer(server).conversation_id}")
    reopened = page.locator(ANSWER, has_text="Derivado a un agente humano")
    reopened.first.wait_for()  # the same labels when the chat is reopened
