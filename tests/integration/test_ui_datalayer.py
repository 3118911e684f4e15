"""The Chainlit data layer over Afina's tables, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chainlit.context import init_http_context
from chainlit.types import Feedback, Pagination, ThreadFilter
from sqlalchemy import select

from chatbot import reviews
from chatbot.backend_pool import ACTIVE_BACKEND, use_backend
from chatbot.db import history, store
from chatbot.db.models import Feedback as FeedbackRow
from chatbot.errors import InputError, NotAllowedError, NotFoundError
from chatbot.runtime import Runtime
from chatbot.settings import DatabaseSettings, Settings
from chatbot.ui import state
from chatbot.ui.auth import CURRENT_USER_ID
from chatbot.ui.datalayer import AfinaDataLayer

pytestmark = pytest.mark.integration
SOURCES = [
    {"id": "shipping-cost", "title": "How much is shipping?", "score": 0.93, "snippet": "Free"},
    {"id": "gift-cards", "title": "Gift cards", "score": 0.31, "snippet": "10 to 500 EUR"},
]


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A migrated database with two agents, installed as the UI's runtime."""
    settings = Settings(home=tmp_path / "var", database=DatabaseSettings(url=database_url))
    opened = Runtime.open(settings)
    with opened.sessions.begin() as session:
        store.add_user(session=session, username="alice")
        store.add_user(session=session, username="bob")
    state.set_runtime(opened)
    yield opened
    state.set_runtime(None)
    opened.engine.dispose()


def user_id(runtime: Runtime, name: str) -> int:
    with runtime.sessions() as session:
        return store.get_user(session=session, username=name).id


def add_turn(runtime: Runtime, owner: str, question: str, *, thread: str | None = None) -> tuple:
    """A stored question and answer, the answer tied to a run step (as the UI does)."""
    uid = user_id(runtime, owner)
    with runtime.sessions.begin() as session:
        if thread is None:
            thread = store.add_conversation(session=session, user_id=uid, locale="en").id
        conversation = history.ensure_conversation(
            session=session, conversation_id=thread, user_id=uid, locale="en"
        )
        conversation.title = conversation.title or question
        store.add_message(session=session, conversation_id=thread, role="user", content=question)
        answer = store.add_message(
            session=session,
            conversation_id=thread,
            role="assistant",
            content="Shipping is free over 50 EUR.",
            backend_name="faq",
            sources=SOURCES,
            index_version="v1",  # a knowledge-base answer
        )
        run = f"run-{answer.id[:8]}"
        history.set_run_step(session=session, message_id=answer.id, run_step_id=run)
        return thread, answer.id, run


async def test_threads_are_listed_only_for_their_owner(runtime: Runtime):
    layer = AfinaDataLayer()
    thread, _, _ = add_turn(runtime, "alice", "how much is shipping?")
    add_turn(runtime, "alice", "gift card balance")
    alice = await layer.get_user("alice")
    bob = await layer.get_user("bob")
    page = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=alice.id))
    assert {t["name"] for t in page.data} == {"how much is shipping?", "gift card balance"}
    assert not (await layer.list_threads(Pagination(first=10), ThreadFilter(userId=bob.id))).data
    assert await layer.get_thread_author(thread) == "alice"
    assert await layer.get_thread_author("no-such-thread") == ""
    with runtime.sessions.begin() as session, pytest.raises(NotFoundError):
        history.ensure_conversation(
            session=session, conversation_id=thread, user_id=int(bob.id), locale="en"
        )


async def test_search_and_pages(runtime: Runtime):
    layer = AfinaDataLayer()
    for n in range(5):
        add_turn(runtime, "alice", f"question number {n}")
    alice = await layer.get_user("alice")
    first = await layer.list_threads(Pagination(first=3), ThreadFilter(userId=alice.id))
    assert len(first.data) == 3 and first.pageInfo.hasNextPage
    rest = await layer.list_threads(
        Pagination(first=3, cursor=first.pageInfo.endCursor), ThreadFilter(userId=alice.id)
    )
    assert len(rest.data) == 2 and not rest.pageInfo.hasNextPage
    found = await layer.list_threads(
        Pagination(first=10), ThreadFilter(userId=alice.id, search="NUMBER 3")
    )
    assert [t["name"] for t in found.data] == ["question number 3"]
    by_answer = await layer.list_threads(
        Pagination(first=10), ThreadFilter(userId=alice.id, search="free over 50")
    )
    assert len(by_answer.data) == 5  # search looks into messages too


async def test_feedback_goes_to_the_answer_of_the_run_step(runtime: Runtime):
    layer = AfinaDataLayer()
    thread, answer, run = add_turn(runtime, "alice", "how much is shipping?")
    CURRENT_USER_ID.set(user_id(runtime, "alice"))  # what the cookie check does per request
    feedback_id = await layer.upsert_feedback(Feedback(forId=run, value=0, comment="wrong"))
    await layer.upsert_feedback(Feedback(forId=run, value=1, comment="fine after all"))
    with runtime.sessions() as session:
        rows = session.scalars(select(FeedbackRow)).all()
    assert [(r.message_id, r.value, r.comment) for r in rows] == [(answer, 1, "fine after all")]
    view = await layer.get_thread(thread)
    run_step = next(s for s in view["steps"] if s["type"] == "run")
    assert run_step["id"] == run and run_step["feedback"]["value"] == 1
    alice = await layer.get_user("alice")
    rated = await layer.list_threads(
        Pagination(first=10), ThreadFilter(userId=alice.id, feedback=1)
    )
    assert [t["id"] for t in rated.data] == [thread]
    assert await layer.delete_feedback(feedback_id)
    with runtime.sessions() as session:
        assert session.scalars(select(FeedbackRow)).all() == []
    with pytest.raises(NotFoundError):
        await layer.upsert_feedback(Feedback(forId="unknown-run", value=1))


async def test_feedback_on_another_users_answer_is_refused(runtime: Runtime):
    """Bob knows the run-step id of Alice's answer: he can neither rate nor unrate it."""
    layer = AfinaDataLayer()
    _, answer, run = add_turn(runtime, "alice", "how much is shipping?")
    CURRENT_USER_ID.set(user_id(runtime, "alice"))
    await layer.upsert_feedback(Feedback(forId=run, value=1, comment="mine"))
    for who in (user_id(runtime, "bob"), None):  # None: no cookie was checked
        CURRENT_USER_ID.set(who)
        with pytest.raises(NotFoundError):
            await layer.upsert_feedback(Feedback(forId=run, value=0, comment="forged"))
        with pytest.raises(NotFoundError):
            await layer.delete_feedback(answer)
    with runtime.sessions() as session:
        rows = session.scalars(select(FeedbackRow)).all()
    assert [(r.value, r.comment) for r in rows] == [(1, "mine")]


async def test_resumed_thread_has_question_run_retrieval_answer_and_sources(runtime: Runtime):
    layer = AfinaDataLayer()
    thread, answer, run = add_turn(runtime, "alice", "how much is shipping?")
    view = await layer.get_thread(thread)
    assert [s["type"] for s in view["steps"]] == [
        "user_message",
        "run",
        "retrieval",
        "assistant_message",
    ]
    shown = view["steps"][-1]
    assert shown["id"] == answer and shown["parentId"] == run
    assert "Answered by `faq`" in shown["output"] and "1. How much is shipping?" in shown["output"]
    assert "(score " in shown["output"]  # sources listed with their scores, no side panel
    [editor] = view["elements"]  # the correction editor, pre-filled with the answer
    assert editor["type"] == "custom" and editor["forId"] == answer
    assert editor["display"] == "inline" and editor["props"]["answer"].startswith("Shipping")
    with runtime.sessions.begin() as session:
        reviews.correct(
            session=session, message_id=answer, user_id=user_id(runtime, "alice"), text="Better."
        )
    view = await layer.get_thread(thread)
    assert view["elements"][0]["props"]["correction"] == "Better."  # shown when reopened
    CURRENT_USER_ID.set(user_id(runtime, "alice"))  # what the cookie check does per request
    await layer.delete_thread(thread)
    assert await layer.get_thread(thread) is None


async def test_renaming_and_deleting_are_the_owners_only(runtime: Runtime):
    """The data layer hands these writes to chatbot.conversations, which checks ownership
    itself (not only Chainlit's author check before calling)."""
    layer = AfinaDataLayer()
    thread, _, _ = add_turn(runtime, "alice", "how much is shipping?")
    CURRENT_USER_ID.set(user_id(runtime, "bob"))
    with pytest.raises(NotFoundError):
        await layer.update_thread(thread, name="bob was here")
    with pytest.raises(NotFoundError):
        await layer.delete_thread(thread)
    CURRENT_USER_ID.set(user_id(runtime, "alice"))
    await layer.update_thread(thread, name="Shipping \ud800 costs")  # broken text is mended
    view = await layer.get_thread(thread)
    assert view is not None and view["name"] == "Shipping ? costs"


async def test_step_writes_from_chainlit_never_duplicate_messages(runtime: Runtime):
    layer = AfinaDataLayer()
    thread, answer, _ = add_turn(runtime, "alice", "how much is shipping?")
    init_http_context(thread_id=thread)  # the queue decorator looks at the current session
    step = {"id": answer, "threadId": thread, "type": "assistant_message", "output": "other"}
    await layer.create_step(step)
    await layer.update_step(step)
    with runtime.sessions() as session:
        messages = store.conversation_messages(session=session, conversation_id=thread)
    assert [m.content for m in messages] == [
        "how much is shipping?",
        "Shipping is free over 50 EUR.",
    ]


def test_corrections_are_stored_and_empty_ones_refused(runtime: Runtime):
    _, answer, _ = add_turn(runtime, "alice", "how much is shipping?")
    uid = user_id(runtime, "alice")
    with runtime.sessions.begin() as session:
        history.add_correction(session=session, message_id=answer, user_id=uid, content=" Better ")
        with pytest.raises(InputError, match="empty"):
            history.add_correction(session=session, message_id=answer, user_id=uid, content=" ")
    with runtime.sessions() as session:
        assert [
            c.content for c in history.list_corrections(session=session, message_id=answer)
        ] == ["Better"]


def test_only_the_owner_can_correct_an_answer(runtime: Runtime):
    _, answer, _ = add_turn(runtime, "alice", "how much is shipping?")
    with runtime.sessions.begin() as session:
        with pytest.raises(NotFoundError, match="of yours"):
            reviews.correct(
                session=session, message_id=answer, user_id=user_id(runtime, "bob"), text="Mine"
            )
        assert history.list_corrections(session=session, message_id=answer) == []


def test_backend_switch_is_refused_to_agents_by_its_one_writer(runtime: Runtime):
    """The browser re-checks the role, and so does the writer the CLI shares."""
    with runtime.sessions.begin() as session:
        with pytest.raises(NotAllowedError, match="only admins"):
            use_backend(session=session, name="faq", user_id=user_id(runtime, "alice"))
        use_backend(session=session, name="faq")  # the operator at the command line
        assert store.get_setting(session=session, key=ACTIVE_BACKEND) == "faq"
