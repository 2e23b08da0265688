"""Phone numbers, card numbers and IPv6 addresses that Presidio's recognizers let through.

Measured on the Faker evaluation set (benchmarks/redaction_eval), not on text written here:
- phone numbers in national formats no configured region parses ("002-457 63 99", "070228285",
  "+31(0)284-709848", "300-817-9301x67020"): a number is a phone number when a phone word
  ("call", "text", "callback", "phone", "number on file") comes right before it;
- card numbers outside Presidio's pattern (Mastercard's 2-series, 12- to 19-digit Maestro):
  Luhn-valid with a card prefix, and for fewer than 15 digits a card word before them;
- uncompressed IPv6 addresses, which Presidio's pattern misses: any address that parses and is
  public (the same filter as for IPv4).
Each has a one-character gate, so text without digits (or colons) pays one search.
"""

from __future__ import annotations

import ipaddress
import re

from .secret_rules import Finding
from .structured import luhn_valid

__all__ = ["number_findings"]

# A phone-shaped run of digits (separators, an extension), then what must come right before it.
_PHONE_SHAPE = re.compile(
    r"(?=[(+\d])(?<![\w@.+(-])(\(?\+?\(?\d[\d ()./-]{5,22}\d(?:[ \t]?(?:x|ext\.?|#)[ \t]?\d{1,6})?)(?![\w@])"
)
_PHONE_WORD_BEFORE = re.compile(
    r"(?i)\b(?:call|text|phone|tel|telephone|mobile|cell|callback|call back|sms|whatsapp|fax|ring"
    r"|reach (?:me|us|them)(?: at| on)?|number(?: on file)?(?: is)?|contact(?: number)?)\b"
    r"[ \t:]*(?:(?:at|on|is|to|me|us)[ \t]+)?$"
)
# "call Ana Ruiz on 692 347 829": the number after on/at, a phone verb earlier in the sentence.
_ON_BEFORE = re.compile(r"\b(?:on|at)[ \t]+$")
_PHONE_VERB = re.compile(r"(?i)\b(?:call|text|phone|ring|reach|sms|whatsapp)\b")
_CARD = re.compile(r"(\d(?<![\w.-]\d)(?:[ -]?\d){11,18})(?![\w-]|\.\d)")  # lookbehind second: see pii.GATES
_CARD_PREFIX = re.compile(r"4|5[0-8]|2[2-7]|3[47]|6")
_CARD_WORD = re.compile(r"(?i)\b(?:card|cc|visa|mastercard|maestro|amex|pan)\b")
_IPV6 = re.compile(r"(?<![\w:])([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w:])")
_ANY_DIGIT = re.compile(r"\d")
_DIGITS = re.compile(r"\d\d\d\d")  # a card number has four digits in a row
_PRIORITY = {"PHONE_NUMBER": 30, "CREDIT_CARD": 36, "IP_ADDRESS": 33}


def _phones(text: str) -> list[Finding]:
    """Phone-shaped numbers first (a digit scan), then the phone word before each: most text has none."""
    out = []
    for m in _PHONE_SHAPE.finditer(text):
        value = m.group(1).rstrip(" ./-(")
        digits = sum(c.isdigit() for c in value)
        if not 7 <= digits <= 18 or value.count("(") != value.count(")"):
            continue
        before = text[max(0, m.start(1) - 60) : m.start(1)]
        word = _PHONE_WORD_BEFORE.search(before)
        if word is None:
            on = _ON_BEFORE.search(before)
            if on is None or _PHONE_VERB.search(before, 0, on.start()) is None:
                continue
        out.append(Finding(m.start(1), m.start(1) + len(value), "PHONE_NUMBER", 0.7, _PRIORITY["PHONE_NUMBER"]))
    return out


def _cards(text: str) -> list[Finding]:
    out = []
    for m in _CARD.finditer(text):
        digits = m.group(1).replace(" ", "").replace("-", "")
        if not 12 <= len(digits) <= 19 or not luhn_valid(digits):
            continue
        # A Luhn-valid number is one id in ten: with a card word before it any prefix (JCB's 2131,
        # Maestro's 0604), without one only 15+ digits with a major network's prefix.
        if _CARD_WORD.search(text, max(0, m.start() - 40), m.start()) is None and (
            len(digits) < 15 or not _CARD_PREFIX.match(digits)
        ):
            continue
        out.append(Finding(m.start(1), m.end(1), "CREDIT_CARD", 0.8, _PRIORITY["CREDIT_CARD"]))
    return out


def _ipv6(text: str) -> list[Finding]:
    out = []
    for m in _IPV6.finditer(text):
        try:
            ip = ipaddress.IPv6Address(m.group(1))
        except ValueError:
            continue
        if ip.is_private or ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast:
            continue
        out.append(Finding(m.start(1), m.end(1), "IP_ADDRESS", 0.8, _PRIORITY["IP_ADDRESS"]))
    return out


def number_findings(text: str, entities: frozenset[str]) -> list[Finding]:
    """Phone numbers after a phone word, card numbers outside Presidio's pattern, IPv6 addresses."""
    out: list[Finding] = []
    if _ANY_DIGIT.search(text) is None:
        return out
    if "PHONE_NUMBER" in entities:
        out.extend(_phones(text))
    if "CREDIT_CARD" in entities and _DIGITS.search(text) is not None:
        out.extend(_cards(text))
    if "IP_ADDRESS" in entities and ("::" in text or text.count(":") >= 7):
        out.extend(_ipv6(text))
    return out
