"""Personal-data redaction: recall and precision per type on the labelled set, vs today's regexes.

``python -m tests.bench.run --only pii``. The set (``tests/data/pii/messages.jsonl``, how it
was made in its README) has a ``dev`` split the rules were tuned on and a ``test`` split that
shares no template with it; figures are printed for both, ``test`` is the one to quote.

A labelled span counts as found when at least 80% of its non-space characters are redacted
(by any placeholder type); a redacted region counts as right when it overlaps a labelled span.
"False keep" is the share of messages where a product name, price, delivery date or order
number lost a character to redaction; "(piece)" counts redacted characters the alignment could
not tie to a placeholder (a part of a replaced value). Redactors are compared on what they
output, so the same scoring serves today's regex redactor, the Presidio detector alone, and
the export's pipeline (stored Presidio spans, then the regex layer as a net).
"""

from __future__ import annotations

import difflib
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from chatbot.settings import PiiSettings
from chatbot.training.pii import spans as pii_spans
from chatbot.training.pii.engine import Detector
from chatbot.training.redact import Redactor

SET = Path(__file__).resolve().parents[1] / "data" / "pii" / "messages.jsonl"
STRUCTURED = ("CARD", "CARD_EXPIRY", "CARD_CVV", "IBAN", "ES_NIF", "ES_NIE", "US_SSN",
              "AR_CUIT", "MX_CURP", "MX_RFC", "EMAIL", "PHONE")  # fmt: skip
FREE = ("PERSON", "ADDRESS")
_BASE = 0xE000  # placeholders become private-use characters, never present in the input


class _Marking(Redactor):
    """A redactor whose placeholders are single private-use characters (exact alignment)."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    def placeholder(self, kind: str, key: str) -> str:
        """One character standing for ``kind``."""
        self.kinds.append(kind)
        return chr(_BASE + len(self.kinds) - 1)


def _regions(original: str, redacted: str, kinds: list[str]) -> list[tuple[int, int, str]]:
    """Redacted character ranges of ``original`` and their placeholder types."""
    out = []
    matcher = difflib.SequenceMatcher(None, original, redacted, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("replace", "delete") and i2 > i1:
            marks = [kinds[ord(c) - _BASE] for c in redacted[j1:j2] if ord(c) >= _BASE]
            if not marks and out and out[-1][1] == i1:  # the rest of the previous placeholder
                out[-1] = (out[-1][0], i2, out[-1][2])
                continue
            out.append((i1, i2, marks[0] if marks else "(piece)"))
    return out


def _covered(text: str, start: int, end: int, regions: list[tuple[int, int, str]]) -> float:
    chars = [i for i in range(start, end) if not text[i].isspace()]
    hit = sum(any(s <= i < e for s, e, _ in regions) for i in chars)
    return hit / max(1, len(chars))


class Score:
    """Counts for one redactor on one slice of the set."""

    def __init__(self) -> None:
        self.gold: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.right: Counter[str] = Counter()
        self.messages = 0
        self.false_keep = 0

    def add(self, row: dict, regions: list[tuple[int, int, str]]) -> None:
        """Score one message's redacted regions against its labels."""
        text = row["text"]
        self.messages += 1
        for span in row["spans"]:
            self.gold[span["type"]] += 1
            self.found[span["type"]] += _covered(text, span["start"], span["end"], regions) >= 0.8
        for s, e, kind in regions:
            self.predicted[kind] += 1
            self.right[kind] += any(s < g["end"] and g["start"] < e for g in row["spans"])
        keep = any(_covered(text, k["start"], k["end"], regions) > 0 for k in row["keep"])
        self.false_keep += keep

    def recall(self, kinds: tuple[str, ...]) -> float:
        """Share of labelled spans of ``kinds`` found."""
        return sum(self.found[k] for k in kinds) / max(1, sum(self.gold[k] for k in kinds))

    def lines(self) -> list[str]:
        """Per-type recall and precision, then the group figures."""
        out = []
        for kind in sorted(set(self.gold) | set(self.predicted)):
            r = f"{self.found[kind]}/{self.gold[kind]}" if self.gold[kind] else "-"
            p = f"{self.right[kind]}/{self.predicted[kind]}" if self.predicted[kind] else "-"
            out.append(f"      {kind:<12} recall {r:>8}  precision {p:>8}")
        out.append(
            f"      structured recall {self.recall(STRUCTURED):.1%}, names+addresses recall "
            f"{self.recall(FREE):.1%}, messages with a false redaction of kept text "
            f"{self.false_keep}/{self.messages} ({self.false_keep / max(1, self.messages):.1%})"
        )
        return out


Redact = Callable[[dict], list[tuple[int, int, str]]]


def today(row: dict) -> list[tuple[int, int, str]]:
    """Regions today's regex redactor replaces."""
    red = _Marking()
    return _regions(row["text"], red.redact(row["text"]), red.kinds)


def presidio(detector: Detector, net: bool) -> Redact:
    """Regions the Presidio detector finds (then the regex layer, when ``net``)."""

    def run(row: dict) -> list[tuple[int, int, str]]:
        red = _Marking()
        found = detector.detect([row["text"]], row["lang"])[0]
        out = pii_spans.apply(row["text"], found, red)
        if net:
            out = red.redact(out)
        return _regions(row["text"], out, red.kinds)

    return run


def evaluate(name: str, rows: list[dict], redact: Redact) -> None:
    """Print one redactor's figures per split and language."""
    start = time.perf_counter()
    scores: dict[tuple[str, str], Score] = {}
    for row in rows:
        for key in ((row["split"], row["lang"]), (row["split"], "all")):
            scores.setdefault(key, Score()).add(row, redact(row))
    per = (time.perf_counter() - start) / len(rows) * 1000
    print(f"  {name} ({per:.1f} ms/message)")
    for split in ("test", "dev"):
        for lang in ("all", "en", "es"):
            if (split, lang) not in scores:
                continue
            print(f"    {split} {lang}:")
            print("\n".join(scores[(split, lang)].lines()))


def run(quick: bool = False) -> None:
    """Print the figures for today's redactor and Presidio (with and without a Spanish model)."""
    rows = [json.loads(line) for line in SET.open(encoding="utf-8")]
    settings = PiiSettings()
    print(f"pii: {len(rows)} labelled messages ({SET.name}); test = reported, dev = tuned on")
    evaluate("today's regex redactor", rows, today)
    start = time.perf_counter()
    detector = Detector(settings.english_model, settings.spanish_model, settings.threshold)
    print(f"  Presidio loaded in {time.perf_counter() - start:.1f} s")
    evaluate(f"Presidio ({settings.english_model} + {settings.spanish_model})", rows,
             presidio(detector, net=False))  # fmt: skip
    evaluate("export pipeline: Presidio spans + regex net", rows, presidio(detector, net=True))
    if not quick and settings.spanish_model:
        english_only = Detector(settings.english_model, "", settings.threshold)
        spanish = [r for r in rows if r["lang"] == "es"]
        evaluate("Presidio, English model for Spanish too (rules only)", spanish,
                 presidio(english_only, net=True))  # fmt: skip
    texts = [r["text"] for r in rows]
    start = time.perf_counter()
    detector.detect(texts, "en", batch=64)
    per = (time.perf_counter() - start) / len(texts) * 1000
    print(f"  batched detection (nlp.pipe, 64): {per:.1f} ms/message")
