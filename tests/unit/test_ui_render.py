"""How answers and backends read in the browser: notices apart from the answer, labels."""

from __future__ import annotations

from chatbot.ui.render import answer_markdown, backend_label, correction_props, fallback_notice


def test_a_fallback_notice_is_shown_above_the_answer_not_inside_it():
    details = {
        "fallback": {"from": "llm", "notice": "The answer service can't be reached.\nBackup:"}
    }
    notice = fallback_notice(details)
    shown = answer_markdown(
        text="Shipping is free.",
        locale="en",
        backend="faq",
        sources=[],
        handoff=False,
        notice=notice,
    )
    assert shown.index("can't be reached") < shown.index("Shipping is free.")
    assert fallback_notice({"grounded": []}) is None and fallback_notice(None) is None


def test_handover_heading_is_in_the_answers_language():
    shown = answer_markdown(
        text="Un agente te responde.", locale="es", backend="x", sources=[], handoff=True
    )
    assert "Derivado a un agente humano" in shown and "Respondido por" in shown


def test_backend_switch_names_kind_and_model():
    assert backend_label("faq", "retrieval", {}) == "faq (retrieval)"
    assert backend_label("llm", "fewshot", {"model": "qwen"}) == "llm (fewshot, qwen)"


def test_correction_editor_is_prefilled_and_labelled_in_the_language():
    props = correction_props(message_id="m1", answer="A", correction=None, locale="es")
    assert props["answer"] == "A" and props["labels"]["save"] == "Guardar"
