"""PII redaction: typed placeholders, never the original, stable within a conversation."""

from __future__ import annotations

import ipaddress
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.training.redact import Redactor, iban_ok, luhn_ok

WORDS = st.sampled_from(
    ["hello", "my", "order", "is", "late", "please", "call", "me", "at", "or", "thanks", "the"]
)
FILLER = st.lists(WORDS, min_size=0, max_size=6).map(" ".join)


def _luhn_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise AssertionError("unreachable")


@st.composite
def cards(draw) -> str:
    body = "4" + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=14, max_size=14)))
    digits = body + _luhn_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


@st.composite
def ibans(draw) -> str:
    bban = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=18, max_size=18)))
    numeric = int("".join(str(int(ch, 36)) for ch in bban + "DE00"))
    iban = f"DE{98 - numeric % 97:02d}{bban}"
    spaced = draw(st.booleans())
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if spaced else iban


EMAILS = st.from_regex(r"[a-z]{2,8}(\.[a-z]{2,6})?@[a-z]{3,8}\.(com|org|es)", fullmatch=True)
IPV4 = st.integers(min_value=1 << 24, max_value=(223 << 24)).map(
    lambda n: str(ipaddress.IPv4Address(n))
)
PHONES = st.integers(min_value=600_000_000, max_value=699_999_999).map(
    lambda n: f"+34 {str(n)[:3]} {str(n)[3:6]} {str(n)[6:]}"
)
SECRETS = st.from_regex(r"[A-Za-z0-9]{12,24}", fullmatch=True).map(
    lambda s: f"https://shop.example/reset?token={s}"
)
PII = st.one_of(
    EMAILS.map(lambda v: ("EMAIL", v)),
    cards().map(lambda v: ("CARD", v)),
    ibans().map(lambda v: ("IBAN", v)),
    IPV4.map(lambda v: ("IP", v)),
    PHONES.map(lambda v: ("PHONE", v)),
    SECRETS.map(lambda v: ("SECRET", v.split("=", 1)[1])),
)


def _secret_text(kind: str, value: str) -> str:
    return f"https://shop.example/reset?token={value}" if kind == "SECRET" else value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(FILLER, PII), min_size=1, max_size=5), FILLER)
def test_redactor_never_leaks_the_original(pieces, tail):
    text = (
        " ".join(f"{filler} {_secret_text(kind, v)}" for filler, (kind, v) in pieces) + " " + tail
    )
    out = Redactor().redact(text)
    for _, (kind, value) in pieces:
        assert value not in out
        assert re.search(rf"<{kind}_\d+>", out)


@settings(max_examples=100, deadline=None)
@given(st.lists(PII, min_size=1, max_size=4, unique_by=lambda p: p[1]))
def test_placeholders_are_stable_within_a_conversation(values):
    redactor = Redactor()
    first = [redactor.redact(f"see {_secret_text(k, v)} now") for k, v in values]
    again = [redactor.redact(f"again {_secret_text(k, v)} ok") for k, v in values]
    for a, b in zip(first, again, strict=True):
        assert re.findall(r"<[A-Z]+_\d+>", a) == re.findall(r"<[A-Z]+_\d+>", b)


def test_each_conversation_numbers_its_own_placeholders():
    one, two = Redactor(), Redactor()
    assert one.redact("a@x.com b@x.com A@X.COM") == "<EMAIL_1> <EMAIL_2> <EMAIL_1>"
    assert two.redact("b@x.com") == "<EMAIL_1>"
    assert one.counts["EMAIL"] == 3


def test_checksums_keep_ordinary_numbers():
    text = "order 4111 1111 1111 1112 on 2024-01-05 for 12.50, ref DE00 1234 5678 9012 3456 78"
    assert Redactor().redact(text) == text  # bad Luhn, a date, a price, bad IBAN check
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB83 WEST 1234 5698 7654 32")


def test_secrets_in_urls_and_api_keys_are_replaced():
    redactor = Redactor()
    fake_key = "sk-" + "abcdefghijklmnopqrstu"  # built at run time: no key-shaped literal
    out = redactor.redact(
        f"https://bob:hunter2@host.example/x?api_key=abc123&lang=en and {fake_key}"
    )
    assert "hunter2" not in out and "abc123" not in out and "sk-abc" not in out
    assert "lang=en" in out and "https://bob:<SECRET_1>@host.example" in out


def test_ipv6_and_greedy_matches_are_cut_to_the_real_value():
    out = Redactor().redact("from 2001:db8::1 at 10:30:15, card 4111 1111 1111 1111 2 ok")
    assert out == "from <IP_1> at 10:30:15, card <CARD_1> 2 ok"
    assert Redactor().redact("use std::vector at 10:30") == "use std::vector at 10:30"
