"""PII redaction: typed placeholders (``<EMAIL_1>``) that stay stable within a conversation.

Found and replaced, in this order: secrets in URLs (credentials, ``?token=...`` values) and
well-known API-key shapes, e-mail addresses, IBANs (mod-97 checked), payment card numbers
(Luhn checked), IP addresses (v4 and v6, parsed), phone numbers (9-15 digits written with a
``+``/``00`` prefix or with separators). Originals are never stored; only counts are reported.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

KINDS = ("SECRET", "EMAIL", "IBAN", "CARD", "IP", "PHONE")
_DIGIT = re.compile(r"\d")
_ASCII_DIGITS = b"0123456789"

_URL_SECRET = re.compile(
    r"(?i)(?P<pre>[?&#;](?:access_token|refresh_token|id_token|token|api[_-]?key|apikey|key|"
    r"secret|client_secret|password|passwd|pwd|sig|signature|auth|code|session|sessionid|"
    r"x-amz-signature|x-amz-credential)=)(?P<v>[^&#\s\"'<>]+)"
)
_URL_USERINFO = re.compile(r"(?i)(?P<pre>\b[a-z][a-z0-9+.-]*://[^/\s:@<>]+:)(?P<v>[^@/\s<>]+)(?=@)")
_API_KEY = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|"
    r"AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+)"
)
_EMAIL = re.compile(r"(?i)\b[a-z0-9._%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?i)(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .\-])(?:(?:\+|00)\d(?:[ .\-()]{0,2}\d){7,14}"
    r"|\(?\d{2,4}\)?(?:[ .\-]{1,2}\(?\d{2,4}\)?){2,4})(?!\w)(?![ .\-]\d)"
)


def _may_hold_key(text: str) -> bool:
    """Whether ``text`` holds a literal part of every API-key shape (gh[pousr]_ holds "_")."""
    return (
        "_" in text
        or "sk-" in text
        or "xox" in text
        or "AKIA" in text
        or "AIza" in text
        or "eyJ" in text
    )


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """Whether ``text`` (spaces allowed) is an IBAN with a valid mod-97 check."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _cuts(value: str) -> list[int]:
    """Where a match may end, longest first: its end, then before each separator.

    A greedy pattern can swallow a following group ("... 1111 2"); the checksum then picks
    the longest prefix that is a real value.
    """
    return [len(value)] + [i for i in range(len(value) - 1, 0, -1) if value[i] in " -.()"]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def digit_count(text: str) -> int:
    """How many digits ``text`` holds, as a bound on what the number patterns can match.

    ``\\d`` also matches other scripts' digits, so text that is not ASCII counts as holding
    plenty (every pattern runs).
    """
    if not text.isascii():
        return 1 << 30
    data = text.encode()
    return len(data) - len(data.translate(None, _ASCII_DIGITS))


def card_grouping_ok(text: str) -> bool:
    """Whether a card number's separators group it as cards are printed (4-4-4-4, 4-6-5...).

    An order number such as ``112-3456789-1234567`` can pass the Luhn check by chance; its
    grouping tells it apart.
    """
    groups = [len(g) for g in re.split(r"[ -]", text.strip()) if g]
    if len(groups) <= 1:
        return True
    return groups[0] == 4 and (
        (all(n == 4 for n in groups[1:-1]) and 1 <= groups[-1] <= 4 + 3 * (len(groups) == 5))
        or groups[1:] in ([6, 5], [6, 4])
    )


def _card(text: str) -> str | None:
    digits = _digits(text)
    ok = 13 <= len(digits) <= 19 and luhn_ok(digits) and card_grouping_ok(text)
    return digits if ok else None


def _iban(text: str) -> str | None:
    return text.replace(" ", "").upper() if iban_ok(text) else None


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _phone(text: str) -> str | None:
    digits = _digits(text)
    return digits if 9 <= len(digits) <= 15 else None


class Redactor:
    """Redacts the texts of one conversation; the same value keeps the same placeholder."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}
        self._next: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    def placeholder(self, kind: str, key: str) -> str:
        """``<KIND_n>`` for a value, numbered in order of first appearance."""
        found = self._seen.get((kind, key))
        if found is None:
            self._next[kind] += 1
            found = self._seen[(kind, key)] = f"<{kind}_{self._next[kind]}>"
        self.counts[kind] += 1
        return found

    def _sub(
        self,
        pattern: re.Pattern[str],
        kind: str,
        text: str,
        key: Callable[[str], str | None],
        shrink: bool = False,
    ) -> str:
        def replace(match: re.Match[str]) -> str:
            value = match.group("v") if "v" in pattern.groupindex else match.group(0)
            prefix = match.group("pre") if "pre" in pattern.groupindex else ""
            for cut in _cuts(value) if shrink else [len(value)]:
                normal = key(value[:cut])
                if normal is not None:
                    return prefix + self.placeholder(kind, normal) + value[cut:]
            return match.group(0)

        return pattern.sub(replace, text)

    def redact(self, text: str) -> str:
        """``text`` with every detected personal value replaced by its placeholder.

        Each pattern runs only when the text holds what any of its replacements needs (a
        literal part, enough digits, separators): most texts skip most patterns, with the
        same result.
        """
        if "://" in text or "=" in text:
            text = self._sub(_URL_USERINFO, "SECRET", text, lambda v: v)
            text = self._sub(_URL_SECRET, "SECRET", text, lambda v: v)
        if _may_hold_key(text):
            text = self._sub(_API_KEY, "SECRET", text, lambda v: v)
        if "@" in text:
            text = self._sub(_EMAIL, "EMAIL", text, str.lower)
        digits = -1  # not counted yet
        if _DIGIT.search(text):  # numbers of some kind
            digits = digit_count(text)
            if digits >= 2:  # an IBAN starts with 2 letters and 2 check digits
                text, digits = self._counted(_IBAN, "IBAN", text, _iban, digits, shrink=True)
            if digits >= 13:  # card numbers have 13-19 digits
                text, digits = self._counted(_CARD, "CARD", text, _card, digits, shrink=True)
            if digits >= 4 and text.count(".") >= 3:
                text, digits = self._counted(_IPV4, "IP", text, _ip, digits)
        if text.count(":") >= 2:
            text, digits = self._counted(_IPV6, "IP", text, _ip, digits)
        if digits < 0 and _DIGIT.search(text):
            digits = digit_count(text)
        if digits >= 9:  # phones have 9-15 digits
            text = self._sub(_PHONE, "PHONE", text, _phone)
        return text

    def _counted(
        self,
        pattern: re.Pattern[str],
        kind: str,
        text: str,
        key: Callable[[str], str | None],
        digits: int,
        shrink: bool = False,
    ) -> tuple[str, int]:
        """``_sub``, and the text's digit count again when something was replaced (-1 when
        it was not counted)."""
        out = self._sub(pattern, kind, text, key, shrink)
        return out, digits if out == text or digits < 0 else digit_count(out)
