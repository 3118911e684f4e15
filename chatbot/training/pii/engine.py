"""The Presidio analyzer Afina detects personal data with: spaCy models loaded offline by
module import, Presidio's recognizers for the IDs it knows, Afina's for the rest."""

from __future__ import annotations

import importlib
import logging
import re
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import spacy
import tldextract
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    EsNieRecognizer,
    EsNifRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)

from chatbot.errors import ConfigError
from chatbot.training.pii.names import brand_phrases, is_brand, is_known
from chatbot.training.pii.recognizers import NOT_NAMES, afina_recognizers, introduced_names
from chatbot.training.pii.spans import Span, merge
from chatbot.training.redact import card_grouping_ok

log = logging.getLogger(__name__)
LANGUAGES = ("en", "es")
# Presidio's entity names -> Afina's placeholder kinds
KINDS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",
}
PHONE_REGIONS = ("ES", "US", "GB", "AR", "MX", "CO", "CL", "PE", "FR", "DE", "IT", "PT")
# spaCy labels: only people are taken from the model (cities and companies are not redacted)
_NER = NerModelConfiguration(
    model_to_presidio_entity_mapping={"PERSON": "PERSON", "PER": "PERSON"},
    labels_to_ignore=["ORG", "GPE", "LOC", "MISC", "NORP", "FAC", "DATE", "TIME", "MONEY",
                      "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "PRODUCT", "EVENT",
                      "WORK_OF_ART", "LAW", "LANGUAGE"],
)  # fmt: skip
_CONTEXT = {
    "phone": ["phone", "telephone", "mobile", "cell", "call", "teléfono", "telefono", "móvil",
              "movil", "llamar", "llámame", "whatsapp", "tel"],
    "card": ["credit", "card", "visa", "mastercard", "amex", "tarjeta", "crédito", "débito"],
    "nif": ["dni", "nif", "documento", "identidad", "identificación"],
    "nie": ["nie", "extranjero", "identificación"],
    "ssn": ["ssn", "social", "security"],
}  # fmt: skip
# words that open a name the model took as part of it ("Soy Carlos Ruiz", "Hola Ana")
_LEADING = frozenset(
    "soy hola buenas buenos hi hello hey dear estimado estimada sr sra sr. sra. don doña mr "
    "mr. mrs mrs. ms ms. de del a nombre gracias thanks saludos regards atentamente me llamo "
    "habla i'm im yo".split()
)
# words of product names, never of people's ("Roomba Combo", "Air Max", "Switch OLED")
_PRODUCT_WORDS = frozenset(
    "pro max mini plus ultra combo original air lite series edition kit set pack duo se oled "
    "xl xs watch phone pad book buds switch".split()
)
# lower-case words naming a kind of product, just before a brand the model took for a name
# ("aspiradora Dyson V15", "the Kindle Paperwhite" is not caught here, but its brand word is)
_PRODUCT_NOUNS = frozenset(
    "zapatillas zapatos botas camiseta camisa pantalón vestido chaqueta sudadera abrigo bolso "
    "reloj móvil movil teléfono portátil tablet auriculares cascos altavoz cafetera freidora "
    "aspiradora robot colchón televisor tele monitor cámara consola batidora plancha secador "
    "perfume gafas mochila maleta smartwatch shoes sneakers boots shirt jacket dress bag watch "
    "laptop headphones earbuds speaker vacuum mattress camera console phone smartphone".split()
)
_MODEL_AFTER = re.compile(r"\s+(?=[A-Za-z-]{0,4}\d)[A-Za-z0-9-]{1,6}(?![º°ª\w])")
_CUE_BEFORE = re.compile(
    r"(?i)\b(?:gracias|thanks|thank\s+you|hola|hi|hello|hey|dear|estimad[oa]|querid[oa]|"
    r"saludos|regards|atentamente)[\s,:]{0,3}$"
)
_CUE_AFTER = re.compile(r"(?i)\s+(?:here|aqu[ií])\b")
_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "van", "von", "da", "dos", "di"})
_ORDER = re.compile(
    r"(?i)\b(?:order|orders|pedido|pedidos|orden|ref|reference|referencia|tracking|seguimiento|"
    r"invoice|factura|ticket|albar[aá]n|env[ií]o|shipment|parcel|paquete|rma|sku|c[oó]digo\s+de"
    r"\s+producto|item|art[ií]culo|model|modelo)\b[\s.:#ºn°-]{0,6}(?:(?:number|no|num|número"
    r"|n[º°o])[\s.:#-]{0,3})?(?P<v>[A-Z0-9][A-Z0-9-]{3,})"
)
_OVERRIDES = {"IBAN", "EMAIL", "ES_NIF", "ES_NIE", "MX_CURP", "SECRET"}
_lock = threading.Lock()
_detectors: dict[tuple[str, str], Detector] = {}


def model_path(module: str) -> Path:
    """The folder of an installed spaCy model package (import it; no download)."""
    try:
        with warnings.catch_warnings():  # W095 on import: a model trained on an older spaCy 3
            warnings.filterwarnings("ignore", message=r"\[W095\]")
            package = importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"the spaCy model package {module!r} is not installed: run scripts/install, "
            "or set AFINA_PII_ENGLISH_MODEL / AFINA_PII_SPANISH_MODEL to an installed one"
        ) from None
    root = Path(package.__file__ or "").parent
    if (root / "config.cfg").exists():
        return root
    for child in sorted(root.iterdir()):
        if (child / "config.cfg").exists():
            return child
    raise ConfigError(f"{module!r} holds no spaCy pipeline (no config.cfg): reinstall it")


class _InstalledSpacy(SpacyNlpEngine):
    """Presidio's spaCy engine, loading pipelines from installed package folders."""

    def __init__(self, paths: dict[str, Path]):
        super().__init__(
            models=[{"lang_code": k, "model_name": str(p)} for k, p in paths.items()],
            ner_model_configuration=_NER,
        )
        self._paths = paths

    def load(self) -> None:
        """Load each language's pipeline once (languages sharing a folder share it)."""
        loaded: dict[Path, spacy.Language] = {}
        nlp: dict[str, spacy.Language] = {}
        for lang, path in self._paths.items():
            if path not in loaded:
                with warnings.catch_warnings():  # W095: a model trained on an older spaCy 3
                    warnings.filterwarnings("ignore", message=r"\[W095\]")
                    loaded[path] = spacy.load(path, exclude=["parser"])
            nlp[lang] = loaded[path]
        self.nlp = nlp  # type: ignore[assignment]  # Presidio declares it None until loaded


class _OfflineEmail(EmailRecognizer):
    """Presidio's e-mail recognizer, checking domains against tldextract's bundled list."""

    _extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def validate_result(self, pattern_text: str) -> bool:
        """Whether the address ends in a known public suffix (no network)."""
        return bool(self._extract(pattern_text).suffix)


class _PrintedCard(CreditCardRecognizer):
    """Presidio's card recognizer, also requiring a card's printed grouping (not 3-7-7)."""

    def validate_result(self, pattern_text: str) -> bool:
        """Luhn (Presidio's check), then the grouping."""
        return bool(super().validate_result(pattern_text)) and card_grouping_ok(pattern_text)


class _AnySsn(UsSsnRecognizer):
    """Presidio's SSN recognizer, also redacting the published sample numbers."""

    def invalidate_result(self, pattern_text: str) -> bool:
        """Mismatched separators or one repeated digit are not an SSN."""
        separators = {c for c in pattern_text if c in ".- "}
        digits = [c for c in pattern_text if c.isdigit()]
        return len(separators) > 1 or len(set(digits)) == 1


def _recognizers(language: str) -> list[EntityRecognizer]:
    """Presidio's recognizers used by Afina (every one for both languages), then Afina's."""
    words = _CONTEXT  # context words of both languages
    found: list[EntityRecognizer] = [
        _OfflineEmail(supported_language=language),
        PhoneRecognizer(
            supported_language=language, context=words["phone"], supported_regions=PHONE_REGIONS
        ),
        _PrintedCard(supported_language=language, context=words["card"]),
        IbanRecognizer(supported_language=language),
        IpRecognizer(supported_language=language),
        EsNifRecognizer(supported_language=language, context=words["nif"]),
        EsNieRecognizer(supported_language=language, context=words["nie"]),
        _AnySsn(supported_language=language, context=words["ssn"]),
        SpacyRecognizer(supported_language=language, supported_entities=["PERSON"]),
    ]
    return found + afina_recognizers(language)


class Detector:
    """Finds personal data in texts; one per process (the models load once)."""

    def __init__(self, english_model: str, spanish_model: str, threshold: float = 0.4):
        paths = {"en": model_path(english_model)}
        paths["es"] = model_path(spanish_model) if spanish_model else paths["en"]
        engine = _InstalledSpacy(paths)
        engine.load()
        registry = RecognizerRegistry(supported_languages=list(LANGUAGES))
        for language in LANGUAGES:
            for recognizer in _recognizers(language):
                registry.add_recognizer(recognizer)
        self._engine = engine
        self._analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=engine, supported_languages=list(LANGUAGES)
        )
        self._threshold = threshold
        self._busy = threading.Lock()  # one batch at a time: the worker and an export may share it

    def detect(
        self, texts: Sequence[str], language: str = "en", batch: int = 64
    ) -> list[list[Span]]:
        """Spans of personal data in each text (spaCy runs over the texts as one batch)."""
        with self._busy:
            return self._detect(texts, language if language in LANGUAGES else "en", batch)

    def _detect(self, texts: Sequence[str], lang: str, batch: int) -> list[list[Span]]:
        out: list[list[Span]] = []
        batches = self._engine.process_batch(list(texts), lang, batch_size=batch)
        for text, artifacts in batches:  # type: ignore[misc]  # pairs when as_tuples is False
            results = self._analyzer.analyze(
                text=text, language=lang, nlp_artifacts=artifacts, score_threshold=self._threshold
            )
            spans = [
                Span(r.start, r.end, KINDS.get(r.entity_type, r.entity_type), r.score)
                for r in results
            ]
            out.append(_clean(text, spans))
        return out


def _clean(text: str, spans: list[Span]) -> list[Span]:
    """Trim greetings off names, drop what is not a name, keep order numbers."""
    orders = [m.span("v") for m in _ORDER.finditer(text)]
    kept = []
    for span in spans:
        if span.type == "PERSON":  # the name as trimmed must look like one
            trimmed = _trim_name(text, span)
            if trimmed is None or not _confirmed(text, trimmed.start, trimmed.end):
                continue
            span = trimmed
        inside = any(s <= span.start and span.end <= e for s, e in orders)
        if inside and span.type not in _OVERRIDES:
            continue
        kept.append(span)
    return merge(kept)


def _confirmed(text: str, start: int, end: int) -> bool:
    """Whether the model's PERSON guess looks like a person, not a product or a verb.

    Introduced ("me llamo X") or greeted ("gracias, X", "X here"): yes, unless it is a brand
    ("Gracias, Amazon") or a common word ("Gracias. Mañana..."). Holding a product word or a
    digit ("Roomba Combo", "Air Max 90"), or next to a product noun or a model number
    ("aspiradora Dyson", "Redmi Note 13"): no. Otherwise a known name, or two capitalised words
    ("Leilani Lindqvist"); a lone unknown word ("Levi's", "Vivo") is not enough.
    """
    if any(s < end and start < e for s, e in introduced_names(text)):
        return True
    words = [w.strip(".,;:!?¡¿()'\"") for w in text[start:end].split()]
    if all(w in NOT_NAMES for w in words) or any(is_brand(w) for w in words):
        return False
    if any(s < end and start < e for s, e in brand_phrases(text)):
        return False  # "Ralph Lauren", "Massimo Dutti": brands made of people's names
    if _CUE_BEFORE.search(text[max(0, start - 20) : start]) or _CUE_AFTER.match(text[end:]):
        return True
    if any(w.casefold() in _PRODUCT_WORDS or any(c.isdigit() for c in w) for w in words):
        return False
    before = text[:start].split()
    if before and before[-1].casefold() in _PRODUCT_NOUNS:
        return False  # "aspiradora Dyson", "zapatillas Adidas Ultraboost"
    after = text[end:].split(maxsplit=1)
    if after and after[0].strip(".,;:!?").casefold() in _PRODUCT_NOUNS:
        return False  # "the Vega smartwatch", "Lumen headphones"
    if _MODEL_AFTER.match(text[end:]):
        return False  # a model number follows: "Redmi Note 13", "Forerunner 265", "Era 100"
    if any(is_known(w) for w in words):
        return True
    return sum(w[:1].isupper() for w in words) >= 2


def _trim_name(text: str, span: Span) -> Span | None:
    """The name without leading greetings/titles; None when nothing name-like is left."""
    start, end = span.start, span.end
    words = list(re.finditer(r"\S+", text[start:end]))
    while words and words[0].group().strip(",.:;").lower() in _LEADING:
        words.pop(0)
    if not words:
        return None
    for i, word in enumerate(words[1:], 1):  # a name ends at a sentence end or a common word
        if words[i - 1].group()[-1] in "?!.;" or not (
            word.group()[0].isupper() or word.group() in _PARTICLES
        ):
            words = words[:i]
            break
    start, end = span.start + words[0].start(), span.start + words[-1].end()
    value = text[start:end].rstrip(",.:;!?")
    if not any(w[:1].isupper() for w in value.split()) or any(c.isdigit() for c in value):
        return None
    return Span(start, start + len(value), span.type, span.score, span.source)


def get_detector(english_model: str, spanish_model: str, threshold: float = 0.4) -> Detector:
    """The process's detector for these models (loaded on first use, ~5-15 s)."""
    key = (english_model, spanish_model)
    with _lock:
        if key not in _detectors:
            _detectors[key] = Detector(english_model, spanish_model, threshold)
        return _detectors[key]
