"""The retrieval backend's own texts, per language."""

HANDOFF = {
    "en": "I'm not sure — I'll pass this to a human agent.",
    "es": "No estoy seguro — pasaré tu consulta a un agente humano.",
}


def handoff_text(locale: str) -> str:
    """The hand-over message in ``locale`` (English when unknown)."""
    return HANDOFF.get(locale.split("-")[0].lower(), HANDOFF["en"])
