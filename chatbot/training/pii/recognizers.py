"""Afina's own Presidio recognizers, for what Presidio ships none of.

Argentine CUIT/CUIL (check digit), Mexican CURP and RFC, a card's expiry date and CVV next to a
card or its keywords, secrets in URLs and API-key shapes, street addresses (English and
Spanish), and people's names after phrases that introduce them ("a nombre de", "me llamo",
"my name is"). Each is a Presidio ``EntityRecognizer`` so the analyzer merges, scores and
filters their results with its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from chatbot.training.pii.names import is_known
from chatbot.training.redact import _API_KEY, _URL_SECRET, _URL_USERINFO, luhn_ok

_CUIT = re.compile(
    r"(?<![\w-])(?P<v>(?:20|23|24|27|30|33|34)(?P<sep>[- .]?)\d{8}(?P=sep)\d)(?![\w-])"
)
_CUIT_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_CUIT_WORDS = re.compile(r"(?i)\b(?:cuit|cuil|cdi)\b")
_STATES = (
    "AS|BC|BS|CC|CL|CM|CS|CH|DF|DG|GT|GR|HG|JC|MC|MN|MS|NT|NL|OC|PL|QT|QR|SP|SL|SR|TC|TS|TL|VZ|"
    "YN|ZS|NE"
)
_DATE6 = r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_CURP = re.compile(
    rf"(?<![A-Za-z0-9])(?P<v>[A-Z][AEIOUX][A-Z]{{2}}{_DATE6}[HM](?:{_STATES})"
    r"[B-DF-HJ-NP-TV-Z]{3}[0-9A-Z]\d)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_RFC = re.compile(
    rf"(?<![A-Za-z0-9])(?P<v>[A-ZÑ&]{{3,4}}{_DATE6}[A-Z0-9]{{2}}[0-9A])(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_RFC_WORDS = re.compile(r"(?i)\brfc\b")
# card expiry and CVV: only next to a card number or their own keywords
_CARD_NEAR = re.compile(r"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.])")
_EXPIRY = re.compile(r"(?<![\d/.-])(?P<v>(?:0[1-9]|1[0-2])\s?[/-]\s?(?:20)?\d{2})(?![\d/]|[.-]\d)")
_EXPIRY_WORDS = re.compile(
    r"(?i)\b(?:exp(?:iry|iration|ires|\.)?|valid\s+(?:thru|through|until)|caduca(?:d|ción)?|"
    r"caducidad|vence|vencimiento|venc\.?|fecha\s+de\s+(?:caducidad|vencimiento))\b"
)
_CVV = re.compile(
    r"(?i)\b(?:cvv2?|cvc2?|csc|cid|security\s+code|c[oó]digo\s+(?:de\s+seguridad|cvv|cvc)|"
    r"c[oó]digo\s+de\s+verificaci[oó]n)\b\W{0,3}(?:(?:is|es|:|=)\W{0,2})?(?P<v>\d{3,4})(?!\d)"
)
_NEAR = 25  # characters between a card number and an expiry date written with it

_EN_STREET = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|Way|"
    r"Terrace|Close|Crescent|Square|Sq|Parkway|Highway|Hwy"
)
_CAP = r"(?:[A-ZÁÉÍÓÚÑÜ][a-záéíóúñüç'-]+|[A-Z]\.)"
_EN_ADDRESS = re.compile(
    rf"\b(?P<v>\d{{1,5}}[A-Za-z]?\s+(?:{_CAP}\s+){{1,3}}(?:{_EN_STREET})\b\.?"
    rf"(?:,?\s+(?:Apt|Apartment|Suite|Unit|Flat|#)\.?\s*\w+)?"
    rf"(?:,\s*{_CAP}(?:\s{_CAP}){{0,2}})?(?:,?\s*[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?"
    rf"|,?\s+[A-Z]{{1,2}}\d[A-Z\d]?\s+\d[A-Z]{{2}})?)"
)
_ES_STREET = (
    r"Calle|C/|Cl\.|Avenida|Avda\.?|Av\.|Plaza|Pl\.|Pza\.?|Paseo|P\.º|Camino|Carretera|Ctra\.?|"
    r"Ronda|Travesía|Glorieta|Urbanización|Urb\.|Pasaje|Rambla|Callejón|Barrio|Bulevar|Vía"
)
_ES_NAME = r"(?:(?:de|del|la|las|los|el|y|l')\s+){0,2}[A-ZÁÉÍÓÚÑÜ][\wáéíóúñü'.-]*"
_ES_ADDRESS = re.compile(
    rf"(?P<v>(?<!\w)(?:{_ES_STREET})\s+(?:{_ES_NAME}\s+){{0,5}}{_ES_NAME}?,?\s*"
    r"(?:n[º°o.]?\s*)?\d{1,4}[A-Za-z]?"
    r"(?:,?\s*(?:\d{1,2}\s*[º°ª]\s*-?\s*[A-Za-z]?(?!\w)|piso\s+\d+|portal\s+\d+"
    r"|esc(?:alera)?\.?\s*\w+|puerta\s+\w+|bajo|[A-Z](?!\w)))*"
    rf"(?:,?\s*(?:CP\s*)?\d{{5}}(?:\s+{_CAP}(?:\s{_CAP}){{0,2}})?)?)"
)
_POSTCODE_CITY = re.compile(rf"^,?\s*(?:CP\s*)?\d{{5}}\s+{_CAP}(?:\s{_CAP}){{0,2}}")
_PARTICLE = r"(?:(?:de|del|de\s+la|de\s+los|y|van|von|da|dos|di)\s+)"
_NAME_TAIL = rf"(?P<v>{_CAP}(?:\s+{_PARTICLE}?{_CAP}){{0,3}})"
_INTRO = re.compile(
    r"(?i:\ba\s+nombre\s+de|\bme\s+llamo|\bmi\s+nombre\s+es|\bsoy|\bhabla|\ble\s+escribe|"
    r"\bte\s+escribe|\bmy\s+name\s+is|\bI'?m|\bI\s+am|\bthis\s+is|\bname:|\bnombre:|"
    r"\btitular:?|\bcardholder:?|\bholder:?|\bdestinatari[oa]:?|\brecipient:?|\bSr\.|\bSra\.|"
    r"\bD\.|\bDña\.|\bMr\.?|\bMrs\.?|\bMs\.?|\bMiss|\bDon|\bDoña)\s+" + _NAME_TAIL
)
# intro words that also open other phrases ("this is Nike", "soy Cliente"): one known name or two
# capitalised words must follow
_WEAK = frozenset({"soy", "habla", "i'm", "im", "i", "this", "don", "miss"})
_GREETING = re.compile(
    r"(?i:\b(?:gracias|thanks|thank\s+you(?:\s+so\s+much)?|hola|hi|hello|hey|dear|"
    r"estimad[oa]|querid[oa]|bye|adi[oó]s|cheers)),?\s+" + _NAME_TAIL
)
# capitalised words after an intro phrase that are not names ("I'm Happy", "soy Cliente")
_NOT_NAMES = frozenset(
    "I A The El La Los Las Un Una Cliente Customer Sorry Lo Very So Not Here Still Trying Going "
    "Looking Writing Calling Afina Muy Yo Tu Usted Bien Happy Back Really Just Also Out New "
    "Nuevo Nueva Sure Okay Ok Hola Hello Hi Interesado Interesada Glad Confused Unable Able".split()
)


def cuit_ok(value: str) -> bool:
    """Whether an Argentine CUIT/CUIL (11 digits, any separators) has a valid check digit."""
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) != 11:
        return False
    check = 11 - sum(w * d for w, d in zip(_CUIT_WEIGHTS, digits, strict=False)) % 11
    return digits[10] == {11: 0, 10: 9}.get(check, check)


class _Regex(EntityRecognizer):
    """A recognizer whose matches come from ``_find`` (start, end, score)."""

    ENTITY = ""

    def __init__(self, language: str):
        super().__init__(
            supported_entities=[self.ENTITY], supported_language=language, name=type(self).__name__
        )

    def load(self) -> None:
        """Nothing to load: the patterns are compiled at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Presidio's entry point: every match above zero score."""
        return [
            RecognizerResult(self.ENTITY, start, end, score)
            for start, end, score in self._find(text)
            if score > 0
        ]

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        raise NotImplementedError(f"_find not implemented by {type(self).__name__}")


class CuitRecognizer(_Regex):
    """Argentine CUIT/CUIL: 11 digits with a known prefix; a valid check digit scores high."""

    ENTITY = "AR_CUIT"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        context = bool(_CUIT_WORDS.search(text))
        for m in _CUIT.finditer(text):
            value = m.group("v")
            if cuit_ok(value):
                yield m.start("v"), m.end("v"), 0.9
            elif m.group("sep") == "-" or context:  # its printed shape, or named as one
                yield m.start("v"), m.end("v"), 0.6


class CurpRecognizer(_Regex):
    """Mexican CURP: 18 characters encoding name initials, birth date, sex and state."""

    ENTITY = "MX_CURP"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        for m in _CURP.finditer(text):
            yield m.start("v"), m.end("v"), 0.9


class RfcRecognizer(_Regex):
    """Mexican RFC (tax id): 3-4 letters, a date, a 3-character homoclave."""

    ENTITY = "MX_RFC"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        context = bool(_RFC_WORDS.search(text))
        for m in _RFC.finditer(text):
            value = m.group("v")
            if _CURP.fullmatch(value):
                continue
            letters = sum(c.isalpha() for c in value[:4])
            if context or (letters == 4 and value[:4].isupper()):
                yield m.start("v"), m.end("v"), 0.85 if context else 0.6


class CardExtrasRecognizer(_Regex):
    """A card's expiry date and CVV: near a card number, or after their own keywords."""

    ENTITY = "CARD_EXTRA"

    def __init__(self, language: str):
        EntityRecognizer.__init__(
            self,
            supported_entities=["CARD_EXPIRY", "CARD_CVV"],
            supported_language=language,
            name=type(self).__name__,
        )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Expiry dates and CVVs found in ``text``."""
        cards = [m.span() for m in _CARD_NEAR.finditer(text) if luhn_ok(re.sub(r"\D", "", m[0]))]
        results = []
        for m in _EXPIRY.finditer(text):
            start, end = m.span("v")
            near = any(
                start - _NEAR <= c_end and c_start - _NEAR <= end for c_start, c_end in cards
            )
            keyword = _EXPIRY_WORDS.search(text[max(0, start - 30) : start])
            if near or keyword:
                results.append(RecognizerResult("CARD_EXPIRY", start, end, 0.85))
        for m in _CVV.finditer(text):
            results.append(RecognizerResult("CARD_CVV", m.start("v"), m.end("v"), 0.85))
        return results


class SecretRecognizer(_Regex):
    """Secrets in URLs (credentials, ``?token=``) and well-known API-key shapes."""

    ENTITY = "SECRET"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        for pattern in (_URL_USERINFO, _URL_SECRET):
            for m in pattern.finditer(text):
                yield m.start("v"), m.end("v"), 0.95
        for m in _API_KEY.finditer(text):
            yield m.start(), m.end(), 0.95


class AddressRecognizer(_Regex):
    """Street addresses: "221B Baker Street, London NW1 6XE", "Calle Mayor 5, 28013 Madrid"."""

    ENTITY = "ADDRESS"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        for pattern in (_EN_ADDRESS, _ES_ADDRESS):
            for m in pattern.finditer(text):
                start, end = m.span("v")
                tail = _POSTCODE_CITY.match(text[end:])
                if tail:
                    end += tail.end()
                yield start, end, 0.7


class IntroducedNameRecognizer(_Regex):
    """A person's name after a phrase that introduces one ("a nombre de X", "my name is X")."""

    ENTITY = "PERSON"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        for start, end in introduced_names(text):
            yield start, end, 0.9


def introduced_names(text: str) -> list[tuple[int, int]]:
    """Names after an introducing phrase, or a known given name after a greeting."""
    found = []
    for m in _GREETING.finditer(text):
        if is_known(m.group("v").split()[0]):
            found.append(m.span("v"))
    for m in _INTRO.finditer(text):
        words = m.group("v").split()
        kept = 0
        for word in words:
            if word.strip(".,") in _NOT_NAMES:
                break
            kept += 1
        weak = m.group(0).split()[0].lower() in _WEAK
        if not kept or (weak and kept < 2 and not is_known(words[0])):
            continue
        value = " ".join(words[:kept]).rstrip(".,")
        found.append((m.start("v"), m.start("v") + len(value)))
    return found


def afina_recognizers(language: str) -> list[EntityRecognizer]:
    """Afina's recognizers for one analyzer language."""
    kinds: list[type[_Regex]] = [
        CuitRecognizer,
        CurpRecognizer,
        RfcRecognizer,
        CardExtrasRecognizer,
        SecretRecognizer,
        AddressRecognizer,
        IntroducedNameRecognizer,
    ]
    return [kind(language) for kind in kinds]
