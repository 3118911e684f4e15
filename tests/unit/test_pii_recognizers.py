"""Afina's own Presidio recognizers (no spaCy model needed): IDs, card extras, addresses, names."""

from __future__ import annotations

from chatbot.training.pii.recognizers import (
    AddressRecognizer,
    CardExtrasRecognizer,
    CuitRecognizer,
    CurpRecognizer,
    IntroducedNameRecognizer,
    RfcRecognizer,
    SecretRecognizer,
    cuit_ok,
)
from chatbot.training.pii.spans import ADMIN, Span, apply, find_text, merge
from chatbot.training.redact import Redactor, card_grouping_ok


def found(recognizer, text: str) -> list[tuple[str, str]]:
    return [(r.entity_type, text[r.start : r.end]) for r in recognizer.analyze(text, [], None)]


def test_cuit_check_digit_and_printed_shape():
    assert cuit_ok("20-12345678-6") and not cuit_ok("20-12345678-9")
    rec = CuitRecognizer("es")
    # the example has a wrong check digit, but its printed shape still marks it
    assert found(rec, "CUIT 20-12345678-9 por favor") == [("AR_CUIT", "20-12345678-9")]
    assert found(rec, "mi cuil 20123456786") == [("AR_CUIT", "20123456786")]
    assert found(rec, "pedido 20123456789 enviado") == []  # 11 digits, bad check, no context


def test_curp_and_rfc():
    assert found(CurpRecognizer("es"), "CURP GODE561231HDFRRN09.") == [
        ("MX_CURP", "GODE561231HDFRRN09")
    ]
    assert found(RfcRecognizer("es"), "mi RFC es GODE561231AB1") == [("MX_RFC", "GODE561231AB1")]
    assert found(RfcRecognizer("es"), "CURP GODE561231HDFRRN09") == []


def test_card_expiry_and_cvv_only_near_a_card_or_their_words():
    rec = CardExtrasRecognizer("en")
    text = "Card 4111 1111 1111 1111 exp 12/27, CVV 123. Delivery on 12/05."
    assert found(rec, text) == [("CARD_EXPIRY", "12/27"), ("CARD_CVV", "123")]
    assert found(rec, "Your parcel arrives 12/05 and costs 12.50") == []
    assert found(rec, "caduca el 03/29 y el código de seguridad es 456") == [
        ("CARD_EXPIRY", "03/29"),
        ("CARD_CVV", "456"),
    ]


def test_addresses_in_english_and_spanish():
    rec = AddressRecognizer("es")
    assert found(rec, "Vivo en Calle Mayor 5, 28013 Madrid.") == [
        ("ADDRESS", "Calle Mayor 5, 28013 Madrid")
    ]
    assert found(rec, "Send it to 221B Baker Street, London NW1 6XE please") == [
        ("ADDRESS", "221B Baker Street, London NW1 6XE")
    ]
    assert found(rec, "El pedido 48213 llega el 3 de marzo") == []


def test_introduced_names():
    rec = IntroducedNameRecognizer("es")
    assert found(rec, "el pedido está a nombre de Juan Pérez García, gracias") == [
        ("PERSON", "Juan Pérez García")
    ]
    assert found(rec, "I'm John Smith. Card declined") == [("PERSON", "John Smith")]
    assert found(rec, "I'm Happy with the Nike shoes") == []
    assert found(rec, "this is Nike support") == []  # weak intro, unknown single word


def test_secrets_in_urls_and_keys():
    fake_key = "sk-" + "abcdefghij" * 2  # built at run time: no key-shaped literal in the repo
    text = f"reset link https://shop.example/r?token=abc123SECRET and key {fake_key}"
    kinds = [kind for kind, _ in found(SecretRecognizer("en"), text)]
    assert kinds == ["SECRET", "SECRET"]


def test_card_grouping_tells_order_numbers_from_cards():
    assert card_grouping_ok("4111 1111 1111 1111") and card_grouping_ok("3782 822463 10005")
    assert not card_grouping_ok("639-8596590-4727030")  # an order number passing Luhn


def test_spans_apply_with_stable_placeholders_and_merge_overlaps():
    red = Redactor()
    text = "Ana Ruiz wrote to ana@x.es; Ana Ruiz again"
    spans = [Span(0, 8, "PERSON"), Span(18, 26, "EMAIL"), Span(28, 36, "PERSON")]
    assert apply(text, spans, red) == "<PERSON_1> wrote to <EMAIL_1>; <PERSON_1> again"
    assert red.counts == {"PERSON": 2, "EMAIL": 1}
    merged = merge([Span(0, 5, "PHONE", 0.4), Span(3, 9, "PERSON", 0.4, ADMIN)])
    assert merged == [Span(0, 9, "PERSON", 0.4, ADMIN)]
    assert [(s.start, s.end) for s in find_text("Zorb and zorb", "Zorb")] == [(0, 4), (9, 13)]
