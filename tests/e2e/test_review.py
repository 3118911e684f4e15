"""The admin review page end to end: real ``afina serve`` (SQLite), real Chromium."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from chatbot.db.models import Conversation, Correction, Message, User
from tests.e2e.conftest import DESKTOP, PHONE, Server, running_server
from tests.e2e.test_browser import ask, latest_answer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for this module, on a SQLite file in its own AFINA_HOME."""
    folder = tmp_path_factory.mktemp("review")
    with running_server(folder, f"sqlite:///{folder / 'afina.db'}") as running:
        yield running


def correct_in_chat(server: Server, open_chat, text: str) -> str:
    """alice asks, then corrects the answer with the editor under it; the answer's id."""
    page = open_chat(server, "alice")
    ask(page, "what are the shipping fees")
    page.get_by_test_id("correction-open").last.click()
    page.get_by_test_id("correction-text").fill(text)
    page.get_by_test_id("correction-save").click()
    page.get_by_test_id("correction-saved").filter(has_text=text).wait_for()
    return latest_answer(server).id


def held(page) -> int:
    """How many conversations the review page says the next export holds."""
    counts = page.locator("#export-counts").inner_text()
    return int(re.search(r"holds (\d+) conversations", counts).group(1))


def test_agents_get_a_friendly_refusal(server: Server, open_chat):
    page = open_chat(server, "bob")
    response = page.goto(f"{server.url}/admin/review")
    assert response.status == 403
    page.get_by_text("Review is for administrators only").wait_for()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_admin_reviews_rejects_approves_excludes_and_downloads(server: Server, open_chat, viewport):
    better = f"Free from 50 EUR, else 4.95 EUR ({viewport['width']})."
    message_id = correct_in_chat(server, open_chat, better)
    with server.sessions() as session:
        conversation_id = session.get(Message, message_id).conversation_id
    admin = open_chat(server, "admin", viewport=viewport)
    link = admin.get_by_role("link", name="review answers and export")  # in the welcome
    assert link.get_attribute("href") == "/admin/review"
    admin.goto(f"{server.url}/admin/review")
    row = admin.locator(f"tr[data-message='{message_id}']")
    assert better in row.inner_text() and "corrected" in row.inner_text()
    # filters: another agent's answers only -> this one is not listed; nothing before 2000
    admin.select_option("select[name=agent]", "carmen")
    admin.get_by_role("button", name="Apply filters").click()
    admin.wait_for_url(re.compile(r"agent=carmen"))
    assert row.count() == 0
    admin.fill("input[name=until]", "2000-01-01")
    admin.get_by_role("button", name="Apply filters").click()
    admin.get_by_text("Nothing to review with these filters.").wait_for()
    admin.goto(f"{server.url}/admin/review?agent=alice")
    assert "Not reviewed yet" in row.inner_text()
    before = held(admin)
    row.get_by_role("button", name="Reject correction").click()
    admin.get_by_text("Rejected for training.").wait_for()
    assert "agent=alice" in admin.url  # back on the same filtered page
    admin.reload()  # the decision is stored, not just shown once
    assert "Rejected by admin" in row.inner_text()
    assert held(admin) == before - 1  # a rejected answer's chat leaves the next export
    assert better not in exported_text(admin)
    with server.sessions() as session:
        assert session.get(Message, message_id).review_status == "rejected"
        kept = session.scalars(select(Correction).where(Correction.message_id == message_id))
        assert [c.content for c in kept] == [better]  # kept (the agent still sees it)
    row.get_by_role("button", name="Approve").click()
    admin.get_by_text("Approved for training.").wait_for()
    admin.reload()
    assert "Approved by admin" in row.inner_text()  # still listed, with its review
    assert held(admin) == before
    assert better in exported_text(admin)  # the approved correction is a training target
    with server.sessions() as session:
        admin_id = session.scalar(select(User.id).where(User.username == "admin"))
        message = session.get(Message, message_id)
        assert (message.review_status, message.reviewed_by) == ("approved", admin_id)
    row.get_by_role("button", name="Exclude chat from training").click()
    admin.get_by_text("Conversation excluded from training.").wait_for()
    with server.sessions() as session:
        assert session.get(Conversation, conversation_id).exclude_from_training
    assert held(admin) == before - 1  # the next export has one conversation less


def exported_text(page) -> str:
    """The training files of the export the review page's button downloads, as one text."""
    with page.expect_download() as download:
        page.click("#download-export")
    assert download.value.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(download.value.path()) as archive:
        return "\n".join(
            json.dumps(json.loads(line), ensure_ascii=False)
            for name in archive.namelist()
            if name.endswith(".jsonl")
            for line in archive.read(name).decode().splitlines()
        )


def login_status(server: Server, browser, username: str, password: str) -> int:
    context = browser.new_context()
    try:
        form = {"username": username, "password": password}
        return context.request.post(f"{server.chat}/login", form=form).status
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_admin_adds_resets_promotes_and_disables_a_user(
    server: Server, open_chat, browser, viewport
):
    name = f"dora{viewport['width']}"
    admin = open_chat(server, "admin", viewport=viewport)
    admin.goto(f"{server.url}/admin/users")
    add = admin.locator("form[action='/admin/users/add']")
    add.locator("input[name=username]").fill(name)
    add.locator("input[name=password]").fill("short")
    add.locator("input[name=password]").evaluate("e => e.removeAttribute('minlength')")
    add.get_by_role("button", name="Add user").click()
    admin.get_by_text("at least 8 characters").wait_for()  # the store's own message
    add.locator("input[name=username]").fill(name)
    add.locator("input[name=password]").fill("first-password")
    add.get_by_role("button", name="Add user").click()
    admin.get_by_text(f"User '{name}' added.").wait_for()
    assert login_status(server, browser, name, "first-password") == 200
    row = admin.locator(f"tr[data-user='{name}']")
    row.locator("input[name=password]").fill("second-password")
    row.get_by_role("button", name="Reset password").click()
    admin.get_by_text(f"Password of '{name}' reset").wait_for()
    assert login_status(server, browser, name, "first-password") == 401
    assert login_status(server, browser, name, "second-password") == 200
    row.get_by_role("button", name="Make admin").click()
    admin.get_by_text(f"Role of '{name}' changed").wait_for()
    with server.sessions() as session:
        assert session.scalar(select(User.role).where(User.username == name)) == "admin"
    row.get_by_role("button", name="Disable").click()
    admin.get_by_text(f"User '{name}' disabled").wait_for()
    assert login_status(server, browser, name, "second-password") == 401
    assert admin.locator("tr[data-user='admin'] button", has_text="Disable").count() == 0


def test_the_server_log_shows_no_traceback(server: Server):
    """After the walk above (chat, corrections, review, users), normal use logs no traceback."""
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "No response returned" not in log
