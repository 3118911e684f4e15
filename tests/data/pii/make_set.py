"""Write ``messages.jsonl``: the labelled personal-data set (``python -m tests.data.pii.make_set``).

Hand-written support-message templates (English and Spanish) are filled with made-up values
(valid check digits where the format has them; a quarter of the names are rare ones, absent
from Afina's name lists), and every filled slot is labelled with its
character span: personal data to redact, or text that must be kept (product names, prices,
delivery dates, order numbers). Templates alternate between the ``dev`` split (rules were
tuned on it) and the ``test`` split (figures are reported on it); the two share no template.
Deterministic (seed 16): the same file comes out every time.
"""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path

from tests.data.pii.templates import DEV_EN, DEV_ES, EN, ES

HERE = Path(__file__).resolve().parent
PER_TEMPLATE = 3
SLOT = re.compile(r"\{([A-Z_]+)\}")
KEEP = {"PRODUCT", "PRICE", "DATE", "ORDER"}
NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"

FIRST = {
    "en": ["John", "Emily", "Michael", "Sarah", "David", "Jessica", "Daniel", "Olivia", "James",
           "Hannah", "Robert", "Grace", "Thomas", "Chloe", "William", "Megan", "Ethan", "Laura"],
    "es": ["Juan", "María", "Carlos", "Lucía", "José Luis", "Ana", "Javier", "Carmen", "Miguel",
           "Laura", "Alejandro", "Marta", "Sergio", "Elena", "Pablo", "Isabel", "Raúl", "Paula",
           "Diego", "Sofía", "Martín", "Valentina", "Santiago", "Camila"],
}  # fmt: skip
LAST = {
    "en": ["Smith", "Johnson", "Williams", "Brown", "Taylor", "Anderson", "Thompson", "Walker",
           "Harris", "Clarke", "Lewis", "Robinson", "Wright", "Mitchell", "Carter", "Turner"],
    "es": ["Pérez García", "Fernández", "González López", "Rodríguez", "Martínez Sánchez",
           "Gómez Martín", "Ruiz", "Jiménez Moreno", "Díaz", "Hernández Torres", "Álvarez",
           "Romero Navarro", "Castillo", "Ortega Rubio", "Sáez", "Molina Vargas"],
}  # fmt: skip
# names that are not in chatbot/training/pii/names.py: a quarter of the names come from here,
# so the set also measures what the NER model finds on its own
RARE_FIRST = [
    "Xiomara",
    "Oluwaseun",
    "Siobhan",
    "Wei",
    "Anaïs",
    "Thiago",
    "Yaretzi",
    "Ngozi",
    "Bartholomew",
    "Itziar",
    "Aitana",
    "Kofi",
    "Leilani",
    "Zinedine",
    "Maialen",
    "Ravi",
]
RARE_LAST = [
    "Quispe",
    "Adeyemi",
    "Okonkwo",
    "Zhang",
    "Dubois",
    "Etxeberria",
    "Mamani",
    "Kowalski",
    "Nakamura",
    "Urquiza",
    "Huarachi",
    "Lindqvist",
    "Oyelaran",
    "Achterberg",
]
STREETS = {
    "en": ["{n} Baker Street, London NW1 6XE", "{n} Oak Avenue, Springfield, IL 62704",
           "{n} Elm Road, Manchester M14 5TQ", "{n} Maple Drive, Austin, TX 78701",
           "{n} Church Lane, Leeds LS6 2AB", "{n} Sunset Boulevard, Los Angeles, CA 90028",
           "{n} King Street, Apt 4B, Seattle, WA 98104", "{n} Victoria Road, Bristol BS8 1TH"],
    "es": ["Calle Mayor {n}, 28013 Madrid", "Avenida de la Constitución {n}, 41001 Sevilla",
           "C/ Alcalá {n}, 3º B, 28009 Madrid", "Plaza de España {n}, 50001 Zaragoza",
           "Paseo de Gracia {n}, 08007 Barcelona", "Calle San Vicente {n}, 2ºA, 46002 Valencia",
           "Avda. de América {n}, 28028 Madrid", "Calle Larios {n}, 29005 Málaga",
           "Ronda de Toledo {n}, 28005 Madrid"],
}  # fmt: skip
PRODUCTS = {
    "en": ["Nike Air Max 90", "iPhone 15 Pro", "Samsung Galaxy S24", "Kindle Paperwhite",
           "Dyson V15 Detect", "AirPods Pro", "Philips Hue starter kit", "Levi's 501 jeans",
           "Lenovo ThinkPad X1 Carbon", "Instant Pot Duo", "Sony WH-1000XM5", "Apple Watch SE"],
    "es": ["zapatillas Adidas Ultraboost", "cafetera De'Longhi Magnifica", "iPhone 15 Pro",
           "aspiradora Dyson V15", "Samsung Galaxy A55", "freidora Cosori", "Kindle Paperwhite",
           "portátil HP Pavilion", "auriculares Sony WH-1000XM5", "robot Roomba Combo",
           "colchón Emma Original", "Nintendo Switch OLED"],
}  # fmt: skip
# more values for the dev-only extension (DEV_EN, DEV_ES): brands and product lines that read
# like people's names, and address shapes of Spain, Mexico, Argentina and Colombia
MORE_PRODUCTS = {
    "en": ["Google Pixel 8", "Bose QuietComfort Ultra", "Fitbit Charge 6", "Xiaomi Redmi Note 13",
           "Garmin Forerunner 265", "Tommy Hilfiger polo", "Ray-Ban Wayfarer",
           "Ralph Lauren shirt"],
    "es": ["Xiaomi Redmi Note 13", "Google Pixel 8", "Huawei Watch GT 4", "Bose QuietComfort",
           "Cecotec Conga", "Thermomix TM6", "Tommy Hilfiger", "Garmin Forerunner",
           "Oral-B Pro 3", "Rowenta Silence Force", "Massimo Dutti", "Sonos Era 100"],
}  # fmt: skip
MORE_STREETS = {
    "en": ["{n} Park Avenue, Apt 12C, New York, NY 10016",
           "Flat 3, {n} Queen's Road, Brighton BN1 3XE"],
    "es": ["C/ Mayor nº {n}, 2º izda., CP 28013 Madrid",
           "Avda. Diagonal {n}, 5º 2ª, 08017 Barcelona",
           "Calle de Toledo, {n}, bajo B, 28005 Madrid", "Av. Corrientes {n}, piso 5, C1043 CABA",
           "Calle 5 de Mayo {n}, Col. Centro, 06000 CDMX", "Carrera 7 # {n}-21, Bogotá",
           "Paseo de la Castellana nº {n}, CP 28046 Madrid"],
}  # fmt: skip
PRICES = {
    "en": ["$49.99", "$1,299.00", "£35", "$12.50", "€89.90", "USD 249"],
    "es": ["129,95 €", "49,99 euros", "1.299 €", "35 €", "$ 15.000 ARS", "899 pesos"],
}
DATES = {
    "en": ["March 3", "12/05", "next Tuesday", "2026-12-05", "Friday 14 November", "June 21st"],
    "es": ["3 de marzo", "el lunes", "12/05/2026", "mañana", "el 21 de junio", "2026-12-05"],
}


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _luhn_complete(body: str) -> str:
    for d in string.digits:
        total = 0
        for i, ch in enumerate(reversed(body + d)):
            v = int(ch)
            if i % 2 == 1:
                v = v * 2 - 9 if v > 4 else v * 2
            total += v
        if total % 10 == 0:
            return body + d
    raise AssertionError("unreachable")


def card(rng: random.Random) -> str:
    """A Luhn-valid Visa, Mastercard or Amex number, in one of its printed shapes."""
    kind = rng.choice(["visa", "mc", "amex"])
    if kind == "amex":
        n = _luhn_complete("37" + _digits(rng, 12))
        return rng.choice([f"{n[:4]} {n[4:10]} {n[10:]}", n])
    n = _luhn_complete(
        ("4" if kind == "visa" else "5" + rng.choice("12345")) + _digits(rng, 14 - (kind != "visa"))
    )
    sep = rng.choice([" ", "-", ""])
    return sep.join(n[i : i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random) -> str:
    """A mod-97-valid Spanish, German or British IBAN, grouped or compact."""
    country, bban = rng.choice([("ES", _digits(rng, 20)), ("DE", _digits(rng, 18)),
                                ("GB", "NWBK" + _digits(rng, 14))])  # fmt: skip
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    value = f"{country}{98 - numeric % 97:02d}{bban}"
    return (
        " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.6 else value
    )


def nif(rng: random.Random) -> str:
    """A Spanish DNI/NIF with its check letter."""
    n = _digits(rng, 8)
    return n + NIF_LETTERS[int(n) % 23]


def nie(rng: random.Random) -> str:
    """A Spanish NIE (X/Y/Z + 7 digits + check letter)."""
    first, n = rng.choice("XYZ"), _digits(rng, 7)
    return first + n + NIF_LETTERS[int(str("XYZ".index(first)) + n) % 23]


def ssn(rng: random.Random) -> str:
    """A US SSN in its printed AAA-GG-SSSS shape."""
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def cuit(rng: random.Random) -> str:
    """An Argentine CUIT/CUIL with a valid check digit (retries the rare 10)."""
    while True:
        body = rng.choice(["20", "23", "27", "30"]) + _digits(rng, 8)
        check = (
            11
            - sum(w * int(d) for w, d in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), body, strict=True))
            % 11
        )
        if check == 10:
            continue
        check = 0 if check == 11 else check
        return rng.choice([f"{body[:2]}-{body[2:]}-{check}", f"{body}{check}"])


def curp(rng: random.Random) -> str:
    """A Mexican CURP-shaped id."""
    up, vowels = string.ascii_uppercase, "AEIOU"
    consonants = "BCDFGHJKLMNPQRSTVWXYZ"
    return (rng.choice(up) + rng.choice(vowels) + rng.choice(up) + rng.choice(up)
            + f"{rng.randint(50, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            + rng.choice("HM") + rng.choice(["DF", "JC", "NL", "PL", "MC", "VZ"])
            + "".join(rng.choice(consonants) for _ in range(3))
            + rng.choice("0A") + str(rng.randint(0, 9)))  # fmt: skip


def rfc(rng: random.Random) -> str:
    """A Mexican RFC-shaped id (person: 4 letters, date, homoclave)."""
    up = string.ascii_uppercase
    return ("".join(rng.choice(up) for _ in range(4))
            + f"{rng.randint(50, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            + rng.choice(up) + str(rng.randint(1, 9)) + rng.choice("A0123456789"))  # fmt: skip


def phone(rng: random.Random, lang: str) -> str:
    """A phone number as customers write them."""
    if lang == "es":
        n = rng.choice("67") + _digits(rng, 8)
        return rng.choice([f"+34 {n[:3]} {n[3:6]} {n[6:]}", n, f"{n[:3]} {n[3:5]} {n[5:7]} {n[7:]}",
                           f"+54 9 11 {_digits(rng, 4)}-{_digits(rng, 4)}",
                           f"+52 55 {_digits(rng, 4)} {_digits(rng, 4)}"])  # fmt: skip
    area = rng.choice(["415", "212", "646", "312", "617"])
    return rng.choice([f"({area}) 555-{_digits(rng, 4)}", f"+1 {area} 555 {_digits(rng, 4)}",
                       f"{area}-555-{_digits(rng, 4)}", f"+44 20 7946 {_digits(rng, 4)}",
                       f"07700 900{_digits(rng, 3)}"])  # fmt: skip


def order(rng: random.Random) -> str:
    """An order number in one of the shapes shops use."""
    return rng.choice([f"#{_digits(rng, 5)}", f"ORD-2026-{_digits(rng, 5)}", f"{_digits(rng, 6)}",
                       f"{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 7)}",
                       f"A{_digits(rng, 2)}X{_digits(rng, 4)}",
                       f"PED{_digits(rng, 7)}"])  # fmt: skip


def email(rng: random.Random, first: str, last: str) -> str:
    """An e-mail address made from a name."""
    clean = lambda s: s.lower().split()[0].translate(str.maketrans("áéíóúñ", "aeioun"))  # noqa: E731
    user = rng.choice([f"{clean(first)}.{clean(last)}", f"{clean(first)}{rng.randint(1, 99)}",
                       f"{clean(first)[0]}{clean(last)}"])  # fmt: skip
    domain = rng.choice(["gmail.com", "hotmail.es", "yahoo.com", "outlook.com", "empresa.es"])
    return f"{user}@{domain}"


def fill(
    template: str,
    lang: str,
    rng: random.Random,
    extra: dict[str, dict[str, list[str]]] | None = None,
) -> dict:
    """One message from a template: its text, the personal-data spans and the spans to keep.

    ``extra``: slot -> language -> the values to draw from instead of the usual lists.
    """
    lists = {"PRODUCT": PRODUCTS, "ADDRESS": STREETS, **(extra or {})}
    first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
    if rng.random() < 0.25:
        first, last = rng.choice(RARE_FIRST), rng.choice(RARE_LAST)
    values = {
        "NAME": f"{first} {last}", "FIRST": first, "EMAIL": email(rng, first, last),
        "PHONE": phone(rng, lang), "CARD": card(rng), "IBAN": iban(rng), "ES_NIF": nif(rng),
        "ES_NIE": nie(rng), "US_SSN": ssn(rng), "AR_CUIT": cuit(rng), "MX_CURP": curp(rng),
        "MX_RFC": rfc(rng), "CARD_EXPIRY": f"{rng.randint(1, 12):02d}/{rng.randint(26, 31)}",
        "CARD_CVV": _digits(rng, 3),
        "ADDRESS": rng.choice(lists["ADDRESS"][lang]).format(n=rng.randint(1, 240)),
        "PRODUCT": rng.choice(lists["PRODUCT"][lang]), "PRICE": rng.choice(PRICES[lang]),
        "DATE": rng.choice(DATES[lang]), "ORDER": order(rng),
    }  # fmt: skip
    text, spans, keep, at = "", [], [], 0
    for m in SLOT.finditer(template):
        text += template[at : m.start()]
        slot = m.group(1)
        value = values[slot]
        kind = "PERSON" if slot in ("NAME", "FIRST") else slot
        item = {"start": len(text), "end": len(text) + len(value), "type": kind}
        (keep if slot in KEEP else spans).append(item)
        text += value
        at = m.end()
    text += template[at:]
    return {"text": text, "spans": spans, "keep": keep}


def build() -> list[dict]:
    """Every message of the set, deterministic."""
    rng = random.Random(16)
    out = []
    for lang, templates in (("en", EN), ("es", ES)):
        for t, template in enumerate(templates):
            split = "dev" if t % 2 == 0 else "test"
            for k in range(PER_TEMPLATE):
                item = fill(template, lang, rng)
                out.append({"id": f"{lang}-{t:03d}-{k}", "lang": lang, "split": split, **item})
    # the dev-only extension: its own generator and value lists, so the rows above (and the
    # test split) come out exactly as before
    rng = random.Random(1616)
    extra = {
        "PRODUCT": {k: PRODUCTS[k] + MORE_PRODUCTS[k] for k in PRODUCTS},
        "ADDRESS": {k: STREETS[k] + MORE_STREETS[k] for k in STREETS},
    }
    for lang, templates in (("en", DEV_EN), ("es", DEV_ES)):
        for t, template in enumerate(templates):
            for k in range(PER_TEMPLATE):
                item = fill(template, lang, rng, extra)
                out.append({"id": f"{lang}-x{t:02d}-{k}", "lang": lang, "split": "dev", **item})
    return out


def main() -> None:
    """Write the set next to this file."""
    rows = build()
    with (HERE / "messages.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} messages")


if __name__ == "__main__":
    main()
