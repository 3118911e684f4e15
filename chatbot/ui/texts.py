"""Afina's own texts in the browser, in English and Spanish (Chainlit translates the rest)."""

from __future__ import annotations

LOCALES = ("en", "es")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "welcome": "Hello {name}! I'm Afina. Ask me a customer's question and I'll answer "
        "from the help centre, citing my sources.",
        "handoff": "Handed over to a human agent",
        "answered_by": "Answered by",
        "sources": "Sources",
        "retrieval": "Knowledge-base search",
        "no_sources": "No matching entries.",
        "score": "score",
        "error": "Something went wrong while answering. Please try again in a moment.",
        "empty": "The message is empty: type a question first.",
        "too_long": "The message is too long ({length} characters; the limit is {limit}). "
        "Please shorten it.",
        "correct_label": "Suggest a better answer",
        "correct_prompt": "Write the answer Afina should have given:",
        "correct_saved": "Thank you: your answer was saved and will be used to improve Afina.",
        "correct_empty": "The correction was empty, so nothing was saved.",
        "correct_save": "Save",
        "correct_cancel": "Cancel",
        "correct_edit": "Edit the better answer",
        "correct_heading": "Better answer (for training)",
        "correct_failed": "Not saved: reload the page and try again.",
        "admin_links": "Admin pages: [review answers and export](/admin/review) · "
        "[users](/admin/users) · [fine-tuning](/admin/finetune) · "
        "[evaluations](/admin/evaluations)",
        "backend_label": "Answering backend (for everyone)",
        "backend_switched": "{user} switched the answering backend to {name}.",
        "backend_refused": "Only an admin can change the answering backend.",
        "not_found": "This conversation is not available.",
        "partial": "The answer was cut off before it finished.",
        "unsaved": "This turn could not be saved: the database is not answering. It is kept and "
        "goes into the history when the database is back (a question with no answer yet: "
        "please ask again in a moment).",
        "interrupted": "This question was not answered: the server stopped. Please ask again.",
        "session_ended": "Your session has ended (logged out, password changed or account "
        "disabled). Reload the page and log in again; your question was not sent.",
    },
    "es": {
        "welcome": "¡Hola {name}! Soy Afina. Hazme la pregunta de un cliente y responderé "
        "con el centro de ayuda, citando mis fuentes.",
        "handoff": "Derivado a un agente humano",
        "answered_by": "Respondido por",
        "sources": "Fuentes",
        "retrieval": "Búsqueda en la base de conocimiento",
        "no_sources": "No hay entradas que coincidan.",
        "score": "puntuación",
        "error": "Algo salió mal al responder. Vuelve a intentarlo en un momento.",
        "empty": "El mensaje está vacío: escribe primero una pregunta.",
        "too_long": "El mensaje es demasiado largo ({length} caracteres; el límite es {limit}). "
        "Acórtalo, por favor.",
        "correct_label": "Sugerir una respuesta mejor",
        "correct_prompt": "Escribe la respuesta que Afina debería haber dado:",
        "correct_saved": "Gracias: tu respuesta se ha guardado y servirá para mejorar a Afina.",
        "correct_empty": "La corrección estaba vacía; no se ha guardado nada.",
        "correct_save": "Guardar",
        "correct_cancel": "Cancelar",
        "correct_edit": "Editar la respuesta mejor",
        "correct_heading": "Respuesta mejor (para el entrenamiento)",
        "correct_failed": "No se guardó: recarga la página e inténtalo de nuevo.",
        "admin_links": "Páginas de administración: [revisar respuestas y exportar](/admin/review)"
        " · [usuarios](/admin/users) · [ajuste fino](/admin/finetune)"
        " · [evaluaciones](/admin/evaluations)",
        "backend_label": "Motor de respuestas (para todos)",
        "backend_switched": "{user} cambió el motor de respuestas a {name}.",
        "backend_refused": "Solo un administrador puede cambiar el motor de respuestas.",
        "not_found": "Esta conversación no está disponible.",
        "partial": "La respuesta se cortó antes de terminar.",
        "unsaved": "No se pudo guardar este turno: la base de datos no responde. Se conserva y "
        "pasará al historial cuando vuelva (una pregunta aún sin respuesta: vuelve a "
        "preguntar en un momento).",
        "interrupted": "Esta pregunta no se respondió: el servidor se detuvo. Vuelve a preguntar.",
        "session_ended": "Tu sesión ha terminado (cierre de sesión, cambio de contraseña o "
        "cuenta desactivada). Recarga la página e inicia sesión de nuevo; tu pregunta no se envió.",
    },
}


def locale_of(language: str | None) -> str:
    """Afina's locale for a browser language such as ``es-ES`` (English when unsupported)."""
    base = (language or "").split("-")[0].lower()
    return base if base in LOCALES else "en"


def t(locale: str, key: str, **values: object) -> str:
    """The text ``key`` in ``locale`` with ``values`` filled in."""
    text = TEXTS.get(locale, TEXTS["en"]).get(key) or TEXTS["en"][key]
    return text.format(**values) if values else text
