"""Calibrated hand-overs on the small knowledge base (real MiniLM): the score is chosen for the
target out-of-scope recall, stored with the index, used by the chat, kept while the index is
unchanged, and calibrated again on the same questions when a re-ingest changes the index."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from backends.base import Conversation, ReplyMeta, Turn
from backends.retrieval import handover
from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.index import read_meta
from chatbot.backend_pool import kind_defaults
from chatbot.errors import InputError
from chatbot.knowledge.calibrate import calibrate_configured
from chatbot.knowledge.ingest import ingest_configured
from chatbot.settings import Settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
SMALL_KB = ROOT / "tests" / "data" / "kb_small"
OUT_OF_SCOPE = {
    "en": [
        "Will it rain in Lisbon tomorrow afternoon?",
        "tell me a joke about cats",
        "who won the football match last night",
        "give me a recipe for pasta carbonara",
        "do you sell refurbished laptops?",
    ],
    "es": [
        "va a llover manana en Lisboa?",
        "cuentame un chiste de gatos",
        "quien gano el partido de futbol anoche",
        "dame una receta de pasta carbonara",
        "venden portatiles reacondicionados?",
    ],
}
IN_SCOPE = [
    ("I can't remember my password", "en", "reset-password"),
    ("what do you charge for delivery", "en", "shipping-cost"),
    ("no me acuerdo de mi contraseña", "es", "reset-password"),
    ("cuanto cobran por el envio", "es", "shipping-cost"),
]


def write_questions(path: Path) -> Path:
    """A calibration file: in-scope questions with their entry, out-of-scope ones without."""
    rows = [{"text": t, "locale": loc, "entry_id": e} for t, loc, e in IN_SCOPE]
    rows += [{"text": t, "locale": loc} for loc, texts in OUT_OF_SCOPE.items() for t in texts]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def reply(settings: Settings, text: str, locale: str) -> ReplyMeta:
    """One chat turn through the retrieval backend as configured."""
    import asyncio

    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    meta = ReplyMeta()

    async def go() -> None:
        conversation = Conversation("c", (Turn("user", text),), locale=locale)
        async for _ in backend.stream(conversation, meta):
            pass

    asyncio.run(go())
    return meta


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A home over a copy of the small KB, both languages on MiniLM (fast), index built."""
    kb = tmp_path / "kb"
    shutil.copytree(SMALL_KB, kb)
    settings = Settings(
        home=tmp_path / "var", retrieval={"kb_path": str(kb), "language_models": {}}
    )
    ingest_configured(settings)
    return settings


def test_calibrated_score_hands_over_every_out_of_scope_question(settings, tmp_path):
    questions = write_questions(tmp_path / "questions.jsonl")
    reports = {r.group: r for r in calibrate_configured(settings, [questions], target=1.0)}
    assert set(reports) == {"en", "es"}
    for group, report in reports.items():
        assert report.dev.oos_recall == 1.0
        stored = handover.read(settings.index_dir / group)
        assert stored is not None and stored.threshold == report.threshold
        assert stored.holds_for(read_meta(settings.index_dir / group).version, stored.model)
        assert stored.sources[0]["path"] == str(questions.resolve())
    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    assert backend.threshold("en") == reports["en"].threshold
    for locale, texts in OUT_OF_SCOPE.items():
        for text in texts:
            assert reply(settings, text, locale).handoff, text
    assert not reply(settings, "I forgot my password", "en").handoff
    # the setting turns the stored score off
    off = Settings(
        **{
            **settings.model_dump(),
            "retrieval": {**settings.retrieval.model_dump(), "calibrated_handover": False},
        }
    )
    assert RetrievalBackend.from_config(kind_defaults(off, "retrieval")).threshold("en") == 0.5


def test_reingest_keeps_or_recalibrates_the_stored_score(settings, tmp_path):
    questions = write_questions(tmp_path / "questions.jsonl")
    calibrate_configured(settings, [questions], target=0.8)
    before = handover.read(settings.index_dir / "en")
    assert before is not None
    # unchanged knowledge base: same index version, the calibration is kept as it was
    reports = {r.group: r for r in ingest_configured(settings)}
    assert reports["en"].handover is None
    assert handover.read(settings.index_dir / "en") == before
    # a changed knowledge base: a new version, calibrated again on the same questions
    faq = Path(settings.retrieval.kb_path) / "faq.jsonl"
    faq.write_text(
        faq.read_text()
        + json.dumps(
            {
                "id": "gift-wrap",
                "questions": ["Can you gift wrap it?"],
                "answer": "Yes, for 2 EUR.",
                "locale": "en",
            }
        )
        + "\n"
    )
    reports = {r.group: r for r in ingest_configured(settings)}
    after = handover.read(settings.index_dir / "en")
    assert after is not None and reports["en"].handover == after.threshold
    assert after.index_version == reports["en"].version != before.index_version


def test_calibration_without_out_of_scope_questions_is_refused(settings, tmp_path):
    path = tmp_path / "inscope.jsonl"
    path.write_text(json.dumps({"text": "password?", "locale": "en", "entry_id": "x"}) + "\n")
    with pytest.raises(InputError, match="out-of-scope questions"):
        calibrate_configured(settings, [path])


def test_switching_the_embedder_calibrates_the_new_index_again(settings, tmp_path):
    from chatbot.knowledge.tuning.switch import use_model

    calibrate_configured(settings, [write_questions(tmp_path / "q.jsonl")], target=1.0)
    (settings.index_dir / "en" / handover.FILE).unlink()  # as if the index had been rebuilt
    use_model(settings, "en", "default")  # re-embeds the English index
    stored = handover.read(settings.index_dir / "en")
    assert stored is not None
    assert stored.holds_for(read_meta(settings.index_dir / "en").version, stored.model)


def _store_rule(settings: Settings, group: str, **fields) -> None:
    """Overwrite the group's stored calibration with ``fields`` changed."""
    stored = handover.read(settings.index_dir / group)
    assert stored is not None
    handover.write(settings.index_dir / group, replace(stored, **fields))


def test_stored_logistic_rule_decides_in_the_chat(settings, tmp_path):
    calibrate_configured(settings, [write_questions(tmp_path / "q.jsonl")], target=1.0)
    # a rule that is sure of nothing: even a question the KB answers is handed over
    _store_rule(settings, "en", features=["best"], coefficients=[0.0], intercept=-20.0)
    _store_rule(settings, "es", features=["best"], coefficients=[0.0], intercept=-20.0)
    assert reply(settings, "I forgot my password", "en").handoff
    # one that trusts the agreement of the other language's index: answers, and tells apart
    _store_rule(
        settings,
        "en",
        features=["other_agrees"],
        coefficients=[10.0],
        intercept=-5.0,
        threshold=0.5,
    )
    assert not reply(settings, "I forgot my password", "en").handoff


def test_stale_or_unknown_calibration_is_ignored(settings, tmp_path):
    calibrate_configured(settings, [write_questions(tmp_path / "q.jsonl")], target=1.0)
    config = kind_defaults(settings, "retrieval")
    assert RetrievalBackend.from_config(config).threshold("en") != 0.5
    _store_rule(settings, "en", index_version="an-older-index")
    assert RetrievalBackend.from_config(config).threshold("en") == 0.5  # the configured score
    calibrate_configured(settings, [write_questions(tmp_path / "q.jsonl")], target=1.0)
    _store_rule(settings, "en", features=["from-a-newer-release"], coefficients=[1.0])
    assert RetrievalBackend.from_config(config).threshold("en") == 0.5
