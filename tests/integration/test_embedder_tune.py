"""Embedder tuning with the real MiniLM and sentence-transformers' trainer on a tiny knowledge
base (tests/data/kb_tune): approved chats teach it a shop word, switching back restores the
old answers, chats marked for evaluation or excluded never train it, a damaged model is refused.

Feedback and corrections are written directly through the models, as the UI would record them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.index import read_meta
from backends.retrieval.st_onnx import onnx_name
from chatbot.backend_pool import kind_defaults
from chatbot.db import store
from chatbot.db.models import Correction, Feedback
from chatbot.db.tuning_queries import labelled_questions
from chatbot.errors import ConfigError
from chatbot.knowledge.ingest import ingest_configured
from chatbot.knowledge.tuning import registry
from chatbot.knowledge.tuning.job import Cancelled, Hooks, TuneReport, TuneRequest, tune_embedder
from chatbot.knowledge.tuning.switch import use_model
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
KB = ROOT / "tests" / "data" / "kb_tune"
# The shop calls its loyalty points "beans": untuned MiniLM sends this question to shipping-cost.
BEANS = "how many beans are in my jar?"


def seed_chat(
    session,
    question: str,
    *,
    entry: str,
    rating: int = 0,
    correction: str | None = None,
    origin: str = "chat",
    excluded: bool = False,
    pinned: str | None = None,
    handoff: bool = False,
    review: str | None = None,
) -> str:
    """One question and its answer citing ``entry``, rated and/or corrected by an agent."""
    agent = store.ensure_user(session=session, username="agent")
    chat = store.add_conversation(session=session, user_id=agent.id, locale="en")
    chat.origin, chat.exclude_from_training, chat.pinned_split = origin, excluded, pinned
    store.add_message(session=session, conversation_id=chat.id, role="user", content=question)
    answer = store.add_message(
        session=session,
        conversation_id=chat.id,
        role="assistant",
        content="an answer",
        backend_name="faq",
        handoff=handoff,
        sources=[{"id": entry, "title": entry, "score": 0.6, "snippet": "", "locale": "en"}],
        review_status=review,  # an admin's decision on /admin/review
    )
    if rating:
        session.add(Feedback(message_id=answer.id, user_id=agent.id, value=rating))
    if correction is not None:
        session.add(Correction(message_id=answer.id, user_id=agent.id, content=correction))
    session.flush()
    return chat.id


def test_labelled_questions_keep_approved_and_corrected_chats_only(database_url: str, tmp_path):
    rt = Runtime.open(Settings(home=tmp_path / "var", database={"url": database_url}))
    try:
        with rt.sessions.begin() as s:
            approved = seed_chat(s, "beans?", entry="loyalty-points", rating=1)
            corrected = seed_chat(s, "jar?", entry="track-order", correction="Points are ...")
            seed_chat(s, "eval question", entry="track-order", rating=1, origin="eval")
            seed_chat(s, "excluded question", entry="track-order", rating=1, excluded=True)
            seed_chat(s, "pinned test question", entry="track-order", rating=1, pinned="test")
            seed_chat(s, "downvoted", entry="track-order", rating=-1)
            seed_chat(s, "unrated", entry="track-order")
            seed_chat(s, "handed over", entry="track-order", rating=1, handoff=True)
            reviewed = seed_chat(
                s, "beans left?", entry="loyalty-points", rating=-1, review="approved"
            )
            seed_chat(
                s, "rejected", entry="track-order", rating=1, correction="x", review="rejected"
            )
        with rt.sessions() as s:
            found = labelled_questions(session=s)
    finally:
        rt.engine.dispose()
    by_chat = {q.conversation_id: q for q in found}
    assert set(by_chat) == {approved, corrected, reviewed}  # an admin's review outweighs ratings
    assert (by_chat[approved].question, by_chat[approved].entry_id) == ("beans?", "loyalty-points")
    assert by_chat[corrected].correction == "Points are ..." and by_chat[corrected].entry_id is None


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, TuneReport, dict]:
    """A home whose chats approve the beans question (plus eval and excluded chats that must
    not train), its index built untuned, then tuned once; with what search said before."""
    home = tmp_path_factory.mktemp("tune") / "var"
    settings = Settings(
        home=home, retrieval={"kb_path": str(KB)}, tune={"validation_fraction": 0.0}
    )
    rt = Runtime.open(settings)
    try:
        with rt.sessions.begin() as s:
            ids = {
                "approved": seed_chat(s, BEANS, entry="loyalty-points", rating=1),
                "eval": seed_chat(
                    s, "where did my box go", entry="gift-cards", rating=1, origin="eval"
                ),
                "excluded": seed_chat(s, "parcel MIA", entry="gift-cards", rating=1, excluded=True),
            }
        with rt.sessions() as s:
            questions = labelled_questions(session=s)
    finally:
        rt.engine.dispose()
    ingest_configured(settings)
    before = {q: search(settings, q) for q in (BEANS, "How much is shipping?")}
    request = TuneRequest("en", epochs=1, batch_size=8, learning_rate=1e-4, max_minutes=5)
    report = tune_embedder(settings, request, questions)
    return settings, report, {"before": before, "ids": ids}


def search(settings: Settings, text: str) -> tuple[str, float]:
    """The best entry and its score, through the backend configuration a chat would use."""
    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    _, _, hits = backend.search(text, "en", top_k=1)
    return hits[0].entry.id, round(hits[0].score, 4)


def test_tuning_on_approved_chats_answers_the_crafted_question(tuned):
    settings, report, seen = tuned
    assert seen["before"][BEANS][0] == "shipping-cost"  # the untuned model gets it wrong
    assert search(settings, BEANS)[0] == "loyalty-points"
    # the index was rebuilt with the tuned model, which now serves English (on ONNX Runtime,
    # as the untuned default did)
    assert read_meta(settings.index_dir / "en").model == onnx_name(str(report.folder.resolve()))
    assert registry.active_names(settings) == {"en": report.name}
    lineage = json.loads((report.folder / "lineage.json").read_text())
    assert lineage["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(lineage["data"]["kb_files"]) == {"faq.jsonl"}
    assert lineage["training"]["steps"] > 0 and "model.safetensors" in lineage["files"]


def test_chats_marked_eval_or_excluded_never_train(tuned):
    _, report, seen = tuned
    assert report.counts["conversations"] == [seen["ids"]["approved"]]
    assert report.counts["chat_questions"]["approved"] == 1
    assert report.counts["pairs"]["chat"] == 3  # the beans question x loyalty-points' phrasings
    readme = (
        (report.folder / "README.md").read_text() if (report.folder / "README.md").exists() else ""
    )
    assert BEANS not in readme  # no customer question copied into a model card


def test_switching_back_restores_the_old_answers(tuned):
    settings, report, seen = tuned
    use_model(settings, "en", "default")
    assert {q: search(settings, q) for q in seen["before"]} == seen["before"]
    use_model(settings, "en", report.name)  # and forward again: one command each way
    assert search(settings, BEANS)[0] == "loyalty-points"


def test_a_damaged_tuned_model_is_refused_naming_the_way_back(tuned, tmp_path: Path):
    settings, report, _ = tuned
    home = tmp_path / "var"
    shutil.copytree(settings.home, home)
    copy = Settings(home=home, retrieval={"kb_path": str(KB)})
    weights = home / "embedders" / report.name / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a half-copied file
    with pytest.raises(ConfigError, match=r"damaged.*afina kb use-model en default"):
        kind_defaults(copy, "retrieval")
    with pytest.raises(ConfigError, match="afina kb use-model en default"):
        use_model(copy, "en", report.name)
    use_model(copy, "en", "default")  # the way back works
    assert search(copy, "How much is shipping?")[0] == "shipping-cost"


def test_a_tuned_model_serves_on_onnx_when_the_language_does(tuned, tmp_path: Path):
    settings, report, _ = tuned
    home = tmp_path / "var"
    shutil.copytree(settings.home, home)
    onnx = Settings(
        home=home, retrieval={"kb_path": str(KB), "language_models": {"en": "minilm-onnx"}}
    )
    use_model(onnx, "en", "default")
    assert read_meta(onnx.index_dir / "en").model.endswith("all-MiniLM-L6-v2+onnx-int8")
    use_model(onnx, "en", report.name)  # the tuned weights, exported to int8 ONNX on first use
    folder = (home / "embedders" / report.name).resolve()
    assert read_meta(onnx.index_dir / "en").model == f"{folder}+onnx-int8"
    assert search(onnx, BEANS)[0] == "loyalty-points"


def test_a_stop_while_reindexing_leaves_no_model_and_the_old_index(tmp_path: Path):
    """Ctrl+C reaches the job as ``hooks.stop()``; this one comes after the model was saved."""
    settings = Settings(
        home=tmp_path / "var", retrieval={"kb_path": str(KB)}, tune={"validation_fraction": 0.0}
    )
    ingest_configured(settings)
    index, active = read_meta(settings.index_dir / "en").model, registry.active_names(settings)
    reindexing: list[int] = []
    hooks = Hooks(embedding_start=reindexing.append, stop=lambda: bool(reindexing))
    request = TuneRequest("en", epochs=1, batch_size=8, learning_rate=1e-4, max_minutes=5)
    with pytest.raises(Cancelled):
        tune_embedder(settings, request, [], hooks)
    assert reindexing  # it was re-indexing with the saved model when it stopped
    assert not list(registry.embedders_dir(settings).glob("en-*"))  # the saved model is gone
    assert read_meta(settings.index_dir / "en").model == index
    assert registry.active_names(settings) == active
    assert search(settings, "How much is shipping?")[0] == "shipping-cost"
