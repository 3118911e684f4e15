"""Casual spelling is set right against the knowledge base's own words before the search."""

from __future__ import annotations

from pathlib import Path

from backends.retrieval.backend import RetrievalBackend
from backends.retrieval.spelling import Speller

KB = ["¿Cuánto cuesta el envío?", "Olvidé mi contraseña", "Pedidos y pedido", "Mi cuenta"]


def test_accents_come_back_as_the_knowledge_base_writes_them():
    speller = Speller(KB)
    assert speller.correct("cuanto cuesta el envio") == "cuánto cuesta el envío"
    assert speller.correct("olvide mi contrasena!") == "olvidé mi contraseña!"
    assert speller.correct("¿Cuánto cuesta el envío?") == "¿Cuánto cuesta el envío?"


def test_a_one_letter_typo_becomes_the_one_word_it_is_near():
    speller = Speller(KB)
    assert speller.correct("olvide mi contrasenia") == "olvidé mi contraseña"
    assert speller.correct("cuesta el emvio") == "cuesta el envío"


def test_words_it_cannot_place_are_left_as_written():
    speller = Speller(KB)
    assert speller.correct("pedidso") == "pedidso"  # one edit from both "pedido" and "pedidos"
    assert speller.correct("mi cueta") == "mi cueta"  # too short to guess
    assert speller.correct("quiero hablar con alguien") == "quiero hablar con alguien"
    assert speller.correct("pedido 12345") == "pedido 12345"


def test_a_typo_no_longer_hands_a_spanish_question_over(small_index_dir: Path):
    question = "ke precio tiene el enbio"  # "qué precio tiene el envío"
    off = RetrievalBackend(small_index_dir, spelling_languages=()).answer(question, locale="es")
    assert off.best is None  # handed over to a person
    on = RetrievalBackend(small_index_dir).answer(question, locale="es")
    assert on.best is not None and on.best.entry.id == "shipping-cost"
    assert on.best.score > off.sources[0].score


def test_a_long_word_with_nothing_near_is_left_alone():
    assert Speller(KB).correct("reacondicionados baratos") == "reacondicionados baratos"
