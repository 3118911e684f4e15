"""Afina's own Presidio recognizers (no spaCy model needed): IDs, card extras, addresses, names."""

from __future__ import annotations

from chatbot.training.pii.recognizers import (
    AddressRecognizer,
    CardExtrasRecognizer,
    ContextPhoneRecognizer,
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


def names(text: str) -> list[str]:
    return [value for _, value in found(IntroducedNameRecognizer("es"), text)]


def test_names_after_sign_offs_even_when_rare():
    assert names("Muchas gracias. Atentamente,\nAitana Mamani") == ["Aitana Mamani"]
    assert names("Best, Kofi") == ["Kofi"]
    assert names("¡Mil gracias, Yaretzi!") == ["Yaretzi"]
    assert names("Un abrazo y gracias por todo, Maialen") == ["Maialen"]
    assert names("Le saluda atentamente Oluwaseun Adeyemi, cliente desde 2019.") == [
        "Oluwaseun Adeyemi"
    ]
    # a sign-off followed by an ordinary word, a brand or a new sentence is no name
    assert names("Gracias. Mañana paso a recogerlo.") == []
    assert names("Gracias Amazon, todo bien") == []
    assert names("Cheers Mate") == [] and names("Best Buy had it cheaper") == []
    assert names("Un saludo desde Sevilla") == []


def test_names_of_relatives_agents_and_titles():
    assert names("Si no estoy, dejadlo con mi vecina Itziar Etxeberria, en el 3º B.") == [
        "Itziar Etxeberria"
    ]
    assert names("Soy la madre de Thiago Zhang, que hizo el pedido.") == ["Thiago Zhang"]
    assert names("My partner Ngozi ordered it with their account") == ["Ngozi"]
    assert names("Ayer hablé por el chat con Itziar y me dijo que llegaba el lunes") == ["Itziar"]
    assert names("Le escribo de parte de Ravi Kowalski por el pedido 48213") == ["Ravi Kowalski"]
    assert names("La Srta. Maialen Urquiza pasará a recogerlo") == ["Maialen Urquiza"]
    assert names("Cliente: Wei Dubois | Tel: 600 000 000") == ["Wei Dubois"]
    # couriers, shops and banks are not people
    assert names("Ayer hablé con Correos y no saben nada") == []
    assert names("hablé con Movistar y nada") == []
    assert names("Mi vecina dice que el repartidor no vino") == []


def test_brands_and_products_are_not_taken_for_people():
    from chatbot.training.pii.engine import _confirmed

    def person(text: str, guess: str) -> bool:
        start = text.index(guess)
        return _confirmed(text, start, start + len(guess))

    assert not person("Quiero Tommy Hilfiger en color negro", "Tommy Hilfiger")
    assert not person("Ayer me dijo que Massimo Dutti llegaba el lunes", "Massimo Dutti")
    assert not person("Gracias Juan. Xiaomi Redmi Note 13 ya funciona", "Xiaomi Redmi Note")
    assert not person("Garmin Forerunner 265 arrived broken", "Garmin Forerunner")
    assert not person("does the Vega smartwatch have GPS", "Vega")
    assert not person("compré la aspiradora Dyson V15", "Dyson")
    assert not person("¡Gracias! Mañana paso", "Mañana")
    assert person("Leilani Lindqvist llamó ayer", "Leilani Lindqvist")
    assert person("Gracias, Sofía", "Sofía")


def test_spanish_and_latin_american_address_shapes():
    rec = AddressRecognizer("es")
    for address in (
        "C/ Mayor nº 12, 2º izda., CP 28013 Madrid",
        "Calle de Toledo, 45, bajo B, 28005 Madrid",
        "Calle 5 de Mayo 123, Col. Centro, 06000 CDMX",
        "Carrera 7 # 71-21, Bogotá",
        "Av. Corrientes 1234, piso 5, C1043 CABA",
    ):
        assert found(rec, f"Mi nueva dirección: {address}. Gracias.") == [("ADDRESS", address)]
    assert found(rec, "¿Calle de la tienda? ¿No tenéis tienda física?") == []


def test_spanish_phone_named_as_one_even_with_an_unassigned_prefix():
    rec = ContextPhoneRecognizer("es")
    assert found(rec, "Mi móvil es 755 123 456, llamadme") == [("PHONE_NUMBER", "755 123 456")]
    assert found(rec, "tel. +34 744123456") == [("PHONE_NUMBER", "+34 744123456")]
    assert found(rec, "El pedido 755123456 no ha llegado") == []  # no phone word
    assert found(rec, "Pagué 755.123.456 pesos") == []
