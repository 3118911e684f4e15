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

from chatbot.training.pii.names import brand_phrases, is_brand, is_known
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
_UPPER = "A-ZÁÉÍÓÚÑÜÀÈÌÒÙÂÊÎÔÛÄËÏÖÇ"
_LOWER = "a-záéíóúñüçàèìòùâêîôûäëïöß"
_CAP = rf"(?:[{_UPPER}][{_LOWER}'-]+|[A-Z]\.)"
_EN_ADDRESS = re.compile(
    rf"\b(?P<v>\d{{1,5}}[A-Za-z]?\s+(?:{_CAP}\s+){{1,3}}(?:{_EN_STREET})\b\.?"
    rf"(?:,?\s+(?:Apt|Apartment|Suite|Unit|Flat|#)\.?\s*\w+)?"
    rf"(?:,\s*{_CAP}(?:\s{_CAP}){{0,2}})?(?:,?\s*[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?"
    rf"|,?\s+[A-Z]{{1,2}}\d[A-Z\d]?\s+\d[A-Z]{{2}})?)"
)
_ES_STREET = (
    r"Calle|C/|Cl\.|Avenida|Avda\.?|Av\.|Plaza|Pl\.|Pza\.?|Paseo|P\.º|Camino|Carretera|Ctra\.?|"
    r"Ronda|Travesía|Glorieta|Urbanización|Urb\.|Pasaje|Rambla|Callejón|Barrio|Bulevar|Vía|"
    r"Carrera|Cra\.|Kra\.|Diagonal|Transversal|Calzada|Privada|Cerrada|Andador"
)
_ES_NAME = (
    r"(?:(?:de|del|la|las|los|el|y|l')\s+){0,2}[A-ZÁÉÍÓÚÑÜ][\wáéíóúñü'.-]*"
    r"|\d{1,2}\s+de\s+[A-ZÁÉÍÓÚÑÜ][\wáéíóúñü]*"  # "Calle 5 de Mayo", "Avenida 16 de Septiembre"
)
# a city after a postcode: capitalised words, or an all-capital one ("CDMX", "CABA")
_CITY = rf"(?:{_CAP}(?:\s{_CAP}){{0,2}}|[A-Z]{{2,5}}\b)"
# a postcode: Spain/Mexico 5 digits (after "CP" or not), Argentina's CPA ("C1043", "C1043AAB")
_POSTCODE = r"(?:(?:CP|C\.P\.)\s*)?(?:\d{5}|[A-Z]\d{4}(?:[A-Z]{3})?)(?!\w)"
_ES_ADDRESS = re.compile(
    rf"(?P<v>(?<!\w)(?:{_ES_STREET})\s+(?:(?:{_ES_NAME})\s+){{0,5}}(?:{_ES_NAME})?,?\s*"
    r"(?:n[º°o.]?\s*|#\s*)?\d{1,4}[A-Za-z]?(?:\s*-\s*\d{1,3})?"
    r"(?:,?\s*(?:\d{1,2}\s*[º°ª]\s*-?\s*[A-Za-z]?(?!\w)|piso\s+\d+|portal\s+\d+"
    r"|esc(?:alera)?\.?\s*\w+|puerta\s+\w+|bajo|[A-Z](?!\w)"
    r"|(?:izda|izq|izqda|dcha|dch|der|dpto|depto|dto|int)\.?(?!\w)(?:\s*\d+[A-Za-z]?)?"
    r"|izquierda|derecha|(?:Col\.|Colonia)\s+[A-ZÁÉÍÓÚÑ][\wáéíóúñ]*(?:\s+[A-ZÁÉÍÓÚÑ][\wáéíóúñ]*)?))*"
    rf"(?:,?\s*{_POSTCODE}(?:\s+{_CITY})?)?)"
)
# a Colombian address: "Carrera 7 # 71-21", "Calle 100 No. 8A-55"
_CO_ADDRESS = re.compile(
    r"(?P<v>(?<!\w)(?:Carrera|Cra\.?|Kra\.?|Calle|Cl\.?|Avenida|Av\.?|Diagonal|Dg\.?|"
    r"Transversal|Tv\.?)\s+\d{1,3}\s?[A-Z]?(?:\s+[Bb]is)?\s*(?:#|No\.?|N[º°o])\s*\d{1,3}\s?[A-Z]?"
    rf"\s*-\s*\d{{1,3}}(?:,\s*{_CITY})?)"
)
_POSTCODE_CITY = re.compile(rf"^,?\s*{_POSTCODE}\s+{_CITY}")
_PARTICLE = r"(?:(?:de|del|de\s+la|de\s+los|y|van|von|da|dos|di)\s+)"
_NAME_TAIL = rf"(?P<v>{_CAP}(?:\s+{_PARTICLE}?{_CAP}){{0,3}})"
# people named by their relation to the writer ("mi vecina Ana", "my husband John", "la madre de")
_RELATIVES = (
    r"marido|mujer|esposo|esposa|pareja|novio|novia|hijo|hija|madre|padre|mamá|papá|hermano|"
    r"hermana|compañero|compañera|colega|jefe|jefa|vecino|vecina|amigo|amiga|sobrino|sobrina|"
    r"cuñado|cuñada|abuelo|abuela|tío|tía|primo|prima|suegro|suegra|nieto|nieta|socio|socia|"
    r"wife|husband|partner|son|daughter|mother|mom|mum|father|dad|brother|sister|colleague|"
    r"co-?worker|boss|neighbou?r|friend|nephew|niece|cousin|uncle|aunt|grandmother|grandfather|"
    r"grandma|grandpa|girlfriend|boyfriend|fianc[ée]e?|flatmate|roommate|assistant"
)
_INTRO = re.compile(
    r"(?i:\ba\s+nombre\s+de|\bme\s+llamo|\bmi\s+nombre\s+es|\bsoy|\bhabla|\ble\s+escribe|"
    r"\bte\s+escribe|\bmy\s+name\s+is|\bI'?m|\bI\s+am|\bthis\s+is|\bname:|\bnombre:|"
    r"\bnombre\s+y\s+apellidos:?|\bfull\s+name:?|\bcontact(?:o)?:|\bclient(?:e)?:|\bcustomer:|"
    r"\battn\.?:?|\ba\s+la\s+atenci[oó]n\s+de|\bde\s+parte\s+de|\bon\s+behalf\s+of|"
    r"\bpregunt(?:ad|e|en|ar|a)\s+por|\bask\s+for|\bme\s+atendi[oó]|\ble\s+saluda(?:\s+atentamente)?|"
    r"\bhabl[eé](?:\s+(?:ayer|hoy))?(?:\s+por\s+(?:el\s+)?(?:chat|tel[eé]fono))?\s+con|"
    r"\bchatted\s+with|\bspoke\s+(?:to|with)|\btalked\s+(?:to|with)|"
    r"\b(?:mi|my|nuestr[oa]|our)\s+(?:" + _RELATIVES + r")|"
    r"\b(?:el|la|the)\s+(?:" + _RELATIVES + r")\s+(?:de|of)|"
    r"\btitular:?|\bcardholder:?|\bholder:?|\bdestinatari[oa]:?|\brecipient:?|\bSr\.|\bSra\.|"
    r"\bSrta\.|\bSe[ñn]or(?:ita|a)?|\bDra\.|\bLic\.|\bIng\.|"
    r"\bD\.|\bDña\.|\bMr\.?|\bMrs\.?|\bMs\.?|\bMiss|\bDon|\bDoña)\s*,?\s+" + _NAME_TAIL
)
# intro words that also open other phrases ("this is Nike", "soy Cliente"): one known name or
# two capitalised words must follow
_WEAK = frozenset({"soy", "habla", "i'm", "im", "i", "this", "don", "miss"})
_GREETING = re.compile(
    r"(?i:\b(?:gracias|thanks|thank\s+you(?:\s+so\s+much)?|hola|hi|hello|hey|dear|"
    r"estimad[oa]|querid[oa]|bye|adi[oó]s|cheers|buen[oa]s(?:\s+(?:d[ií]as|tardes|noches))?)),?\s+"
    + _NAME_TAIL
)
# sign-offs: the name after them ("Atentamente, Ana", "Best, Kofi", "Un saludo,\nThiago Quispe"),
# or closing the message after a few more words ("Un abrazo y gracias por todo, Sofía")
_SIGNOFF = (
    r"un\s+saludo|saludos(?:\s+cordiales)?|un\s+abrazo|abrazos|besos|atentamente|cordialmente|"
    r"muchas\s+gracias|mil\s+gracias|gracias(?:\s+de\s+antemano)?|best(?:\s+wishes|\s+regards)?|"
    r"kind\s+regards|warm\s+regards|regards|sincerely|yours(?:\s+sincerely|\s+truly)?|cheers|"
    r"many\s+thanks|thanks(?:\s+again)?|thank\s+you"
)
_SIGNED = re.compile(r"(?i:\b(?:" + _SIGNOFF + r"))(?:\s*[,\n]\s*|[ \t]+)" + _NAME_TAIL)
_SIGNED_LAST = re.compile(
    r"(?i:\b(?:" + _SIGNOFF + r"))[^.!?\n]{0,40}?[,\n]\s*" + _NAME_TAIL + r"\s*[.!]?\s*$"
)
# capitalised words after an intro phrase that are not names ("I'm Happy", "soy Cliente")
NOT_NAMES = frozenset(
    "I A The El La Los Las Un Una Cliente Customer Sorry Lo Very So Not Here Still Trying Going "
    "Looking Writing Calling Afina Muy Yo Tu Usted Bien Happy Back Really Just Also Out New "
    "Nuevo Nueva Sure Okay Ok Hola Hello Hi Interesado Interesada Glad Confused Unable Able "
    "Perfecto Perfecta Genial Vale Perfect Great Awesome Again Everyone All Team Equipo Todos "
    "Chicos Guys Por Please Quedo Espero Saludos Buenas Buenos Feliz Merry Regards Best "
    "Atentamente Gracias Thanks Thank Kind Un Usted Ustedes Vosotros Calle Avenida Street "
    "Servicio Service Support Soporte Atención Madrid Barcelona London Pedido Pedidos Order "
    "Orders Envío Factura Tracking Ref Referencia Mañana Hoy Ayer Tomorrow Today Yesterday "
    "Lunes Martes Miércoles Jueves Viernes Sábado Domingo Monday Tuesday Wednesday Thursday "
    "Friday Saturday Sunday Navidad Christmas Black Cyber PD PS Enviado Sent Mate Mates Folks "
    "Buy".split()
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
        spans = []
        for pattern in (_EN_ADDRESS, _ES_ADDRESS, _CO_ADDRESS):
            for m in pattern.finditer(text):
                start, end = m.span("v")
                tail = _POSTCODE_CITY.match(text[end:])
                if tail:
                    end += tail.end()
                spans.append((start, end))
        for start, end in spans:  # a shorter reading inside a longer one ("Carrera 7") is dropped
            if not any(s <= start and end <= e and (s, e) != (start, end) for s, e in spans):
                yield start, end, 0.7


class IntroducedNameRecognizer(_Regex):
    """A person's name after a phrase that introduces one ("a nombre de X", "my name is X")."""

    ENTITY = "PERSON"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        for start, end in introduced_names(text):
            yield start, end, 0.9


def introduced_names(text: str) -> list[tuple[int, int]]:
    """Names after an introducing phrase or a sign-off, or a known given name after a greeting.

    The name stops at a word that is not one ("I'm Happy", "soy Cliente"); a brand or product
    word ("hablé con Correos", "es para Nintendo Switch") is never taken for a name.
    """
    found = []
    brands = brand_phrases(text)
    for m in _GREETING.finditer(text):
        if is_known(m.group("v").split()[0]):
            found.append(m.span("v"))
    for pattern, weak_default in ((_SIGNED, False), (_SIGNED_LAST, False), (_INTRO, None)):
        for m in pattern.finditer(text):
            words = m.group("v").split()
            kept = 0
            for word in words:
                if word.strip(".,") in NOT_NAMES or is_brand(word):
                    break
                kept += 1
            weak = m.group(0).split()[0].lower() in _WEAK if weak_default is None else weak_default
            if not kept or (weak and kept < 2 and not is_known(words[0])):
                continue
            value = " ".join(words[:kept]).rstrip(".,")
            start = m.start("v")
            if any(s < start + len(value) and start < e for s, e in brands):
                continue
            found.append((start, start + len(value)))
    return sorted(set(found))


# a Spanish 9-digit number (6, 7, 8 or 9 first) named as a phone: the phone library rejects
# prefixes not assigned yet ("777 037 746"), which customers still write as their mobile
_ES_PHONE = re.compile(
    r"(?<![\w+.,/-])(?P<v>(?:(?:\+|00)34[ .-]?)?(?:[6789]\d{2}(?:[ .-]?\d{3}){2}"
    r"|[6789]\d{2}(?: \d{2}){3}))"
    r"(?![\w.,/-]\d|\w)"
)
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:m[oó]vil|tel[eé]fono|tel|tlf|tfno|celular|cel|whatsapp|llam\w*|"
    r"phone|mobile|cell|call)\b"
)


class ContextPhoneRecognizer(_Regex):
    """A Spanish 9-digit phone number after a phone word ("mi móvil 777037746")."""

    ENTITY = "PHONE_NUMBER"

    def _find(self, text: str) -> Iterator[tuple[int, int, float]]:
        for m in _ES_PHONE.finditer(text):
            if _PHONE_WORDS.search(text[max(0, m.start() - 30) : m.start()]):
                yield m.start("v"), m.end("v"), 0.6


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
        ContextPhoneRecognizer,
    ]
    return [kind(language) for kind in kinds]
