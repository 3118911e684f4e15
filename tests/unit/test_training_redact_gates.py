"""The regex redactor skips patterns a text cannot match (for export speed): never a different
result than running every pattern on every text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.training import redact as r
from chatbot.training.redact import Redactor


class EveryPattern(Redactor):
    """The same patterns in the same order, each run on every text."""

    def redact(self, text: str) -> str:
        same = lambda v: v  # noqa: E731
        text = self._sub(r._URL_USERINFO, "SECRET", text, same)
        text = self._sub(r._URL_SECRET, "SECRET", text, same)
        text = self._sub(r._API_KEY, "SECRET", text, same)
        text = self._sub(r._EMAIL, "EMAIL", text, str.lower)
        text = self._sub(r._IBAN, "IBAN", text, r._iban, shrink=True)
        text = self._sub(r._CARD, "CARD", text, r._card, shrink=True)
        text = self._sub(r._IPV4, "IP", text, r._ip)
        text = self._sub(r._IPV6, "IP", text, r._ip)
        return self._sub(r._PHONE, "PHONE", text, r._phone)


PIECES = [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005",
    "ES91 2100 0418 4502 0005 1332", "GB82WEST12345698765432", "192.168.1.20", "10.0.0.1",
    "fe80::1ff:fe23:4567:890a", "::1",
    "+34 612 345 678", "0034612345678", "(555) 123-4567", "612 34 56 78", "ana@example.com",
    "https://bob:hunter2@example.com/x", "?token=abc123&x=1", "sk-" + "a1" * 10,
    "ghp_" + "Z9" * 11, "AKIA" + "ABCDEFGHIJ123456", "order 112-3456789-1234567", "14:00",
    "4.95", "ref 123456", "<EMAIL_1>", "٣٤٥٦٧٨٩٠١٢", " ", ", ", ".", "-", "=", ":", "_", "@",
]  # fmt: skip
TEXTS = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(alphabet="0123456789 .-:()+@=_aZ", max_size=12)),
    max_size=8,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=4))
def test_skipping_patterns_never_changes_what_is_redacted(conversation: list[str]):
    fast, full = Redactor(), EveryPattern()
    assert [fast.redact(t) for t in conversation] == [full.redact(t) for t in conversation]
    assert fast.counts == full.counts


def test_the_pieces_hold_every_kind():
    redactor = Redactor()
    texts = [redactor.redact(piece) for piece in PIECES[:18]]
    assert all("<" in text for text in texts[:15])
    assert set(redactor.counts) == {"CARD", "IBAN", "IP", "PHONE", "EMAIL", "SECRET"}
