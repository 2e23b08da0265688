"""PII from Presidio's own pattern recognizers, behind cheap gates and telemetry-aware filters.

Presidio's AnalyzerEngine runs every recognizer over every text and tokenizes each text with
spaCy first. Here each recognizer is called directly, and only when a one-regex gate says it
could match (no '@', no email recognizer; no run of seven digits, no phone matcher, which then
only sees windows around those runs), because in telemetry most strings hold none of these. The
context boost Presidio's lemma enhancer gives (+0.35, at least 0.4, when a context word is among
the five words before a match) is applied from the raw text, so it works in pattern-only mode
too. Filters after each recognizer drop the look-alikes that make over-redaction: numbers glued
to identifiers (ORD-2026-3718739), internal and loopback addresses, versions shaped like IPs.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import RedactionConfig
from .names import context_findings
from .numbers import number_findings
from .secret_rules import Finding
from .structured import email_address_valid

__all__ = ["PiiScanner"]

log = logging.getLogger("tokentrail.redaction")

PII_PRIORITY = 30
# Where two PII recognizers claim one span, the validated, more specific one names it:
# 078-05-1120 is an SSN before it is a phone number, a Luhn-valid card before either.
_PRIORITY = {
    "CREDIT_CARD": 36,
    "IBAN_CODE": 36,
    "CRYPTO": 36,
    "US_SSN": 35,
    "EMAIL_ADDRESS": 34,
    "IP_ADDRESS": 33,
    "PHONE_NUMBER": PII_PRIORITY,
}


def _recognizers() -> dict[str, Callable[[RedactionConfig], object]]:
    from presidio_analyzer import predefined_recognizers as p

    class AnyDomainEmailRecognizer(p.EmailRecognizer):
        """Presidio's email pattern, valid at any syntactically valid domain. Presidio validates the
        top-level domain against the public suffix list (tldextract), so `jane.doe@corp.internal`
        and `ops@build.local` passed through; internal addresses belong to people too. No suffix
        list also means nothing to download or go stale."""

        def validate_result(self, pattern_text: str) -> bool:
            return email_address_valid(pattern_text)

    return {
        "EMAIL_ADDRESS": lambda c: AnyDomainEmailRecognizer(),
        "PHONE_NUMBER": lambda c: p.PhoneRecognizer(supported_regions=c.phone_regions),
        "CREDIT_CARD": lambda c: p.CreditCardRecognizer(),
        "IBAN_CODE": lambda c: p.IbanRecognizer(),
        "IP_ADDRESS": lambda c: p.IpRecognizer(),
        "US_SSN": lambda c: p.UsSsnRecognizer(),
        "CRYPTO": lambda c: p.CryptoRecognizer(),
        "URL": lambda c: p.UrlRecognizer(),
        "MAC_ADDRESS": lambda c: p.MacAddressRecognizer(),
        "US_BANK_NUMBER": lambda c: p.UsBankRecognizer(),
        "US_PASSPORT": lambda c: p.UsPassportRecognizer(),
        "US_DRIVER_LICENSE": lambda c: p.UsLicenseRecognizer(),
        "US_ITIN": lambda c: p.UsItinRecognizer(),
        "UK_NHS": lambda c: p.NhsRecognizer(),
    }


# Gates: one cheap search that must succeed before a recognizer runs at all. A pattern that opens
# with a lookbehind (or \b) loses the regex engine's scan for its first character and is tried at
# every position, 2-3x slower: so the lookbehind comes after the first character (`\d(?<![0-9]\d)`
# is `(?<![0-9])\d`), or a lookahead names the first character.
# Seven or more digits written the way phone numbers are (an optional +country code, then groups
# of two or more digits), not glued to an identifier (ORD-2026-3718739) and not a table of digits.
_SEVEN_DIGITS = re.compile(
    r"(?=[+(\d])(?<![\w-])(?:\+\d{1,3}[ .-]?)?\(?\d{2,5}\)?(?:[ .-]{0,2}\d{2,}){1,5}"
    r"(?=(?:[^\d]|$))"
)
GATES: dict[str, re.Pattern[str]] = {
    "EMAIL_ADDRESS": re.compile(r"@"),
    "PHONE_NUMBER": _SEVEN_DIGITS,
    # Presidio's card and SSN patterns start (and end) at \b, which is never next to a digit: the
    # gates ask only that, so order ids such as ORD-2026-3022931 stay out of the recognizers.
    "CREDIT_CARD": re.compile(r"\d(?<![0-9]\d)[ -]?(?:\d[ -]?){11}"),
    "IBAN_CODE": re.compile(r"(?i)[a-z](?<!\w[a-z])[a-z]\d{2}[ ]?[a-z0-9]{4}"),  # \b, after the first letter
    # Inside any dotted quad, and inside any x:y:z of IPv6: half the cost of spelling both out.
    "IP_ADDRESS": re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:"),
    "US_SSN": re.compile(r"\d(?<![0-9]\d)(?:\d{2}[- .]?\d{2}[- .]?\d{4}|\d{4}-\d{4}|\d{2}-\d{6})(?![0-9])"),
    "CRYPTO": re.compile(r"(?:bc1|[13])[a-zA-Z0-9]{25}"),
    "URL": re.compile(r"(?i)https?:|www\.|\.[a-z]{2,}\b"),
    "MAC_ADDRESS": re.compile(r"[0-9A-Fa-f]{2}[:-][0-9A-Fa-f]{2}[:-]"),
    "US_BANK_NUMBER": re.compile(r"\d{8}"),
    "US_PASSPORT": re.compile(r"\d{8}"),
    "US_DRIVER_LICENSE": re.compile(r"\d{4}"),
    "US_ITIN": re.compile(r"9\d{2}"),
    "UK_NHS": re.compile(r"\d{3}"),
}

_WORD = re.compile(r"[A-Za-z]+")


def _glued(text: str, start: int, end: int) -> bool:
    """The match is part of a longer identifier (ORD-2026-3718739, build_4155550100, #4155550100)."""
    before = text[start - 1] if start > 0 else " "
    before2 = text[start - 2] if start > 1 else " "
    after = text[end] if end < len(text) else " "
    after2 = text[end + 1] if end + 1 < len(text) else " "
    if before.isalnum() or before in "_#" or after.isalnum() or after == "_":
        return True
    return (before in "-/." and before2.isalnum()) or (after in "-/" and after2.isalnum())


def _keep_phone(text: str, start: int, end: int, context: bool) -> bool:
    value = text[start:end]
    if _glued(text, start, end) or sum(c.isdigit() for c in value) < 7:
        return False  # some regions validate five-digit service numbers: in telemetry that is a price
    bare = value.isdigit()  # 4155550100: ids and timestamps look like this too; needs a phone word
    return not bare or context


def _keep_ip(text: str, start: int, end: int, context: bool) -> bool:
    try:
        ip = ipaddress.ip_address(text[start:end])
    except ValueError:
        return False
    if ip.is_private or ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast or ip.is_reserved:
        return False  # infrastructure, not a person: 10.0.0.5 and 127.0.0.1 help debugging
    before = text[max(0, start - 9) : start].lower()
    if re.search(r"(?:\bv|version[ =:]?|[=<>~]=|@)$", before):
        return False  # v1.2.3.4, version 10.2.0.1, pkg==1.2.3.4
    if start > 1 and text[start - 1] == "." and text[start - 2].isdigit():
        return False
    return not (end + 1 < len(text) and text[end] == "." and text[end + 1].isdigit())


def _keep_email(text: str, start: int, end: int, context: bool) -> bool:
    # user:pass@host or token@host in a URL is a credential (secret rules), not an email address.
    return not re.search(r"://[^\s/@]*$", text[max(0, start - 200) : start]) and not text[start:end].startswith("git@")


def _keep_number(text: str, start: int, end: int, context: bool) -> bool:
    return not _glued(text, start, end)


KEEP: dict[str, Callable[[str, int, int, bool], bool]] = {
    "PHONE_NUMBER": _keep_phone,
    "IP_ADDRESS": _keep_ip,
    "EMAIL_ADDRESS": _keep_email,
    "CREDIT_CARD": _keep_number,
    "US_SSN": _keep_number,
    "IBAN_CODE": _keep_number,
}
# Bare digit runs count as phone numbers only after one of these (Presidio's "number" is too common).
_PHONE_WORDS = ("phone", "tel", "call", "mobile", "cell", "sms", "whatsapp", "fax", "text me", "reach")


@dataclass
class _Pattern:
    entity: str
    recognizer: object
    gate: re.Pattern[str] | None
    context: tuple[str, ...]
    threshold: float


class PiiScanner:
    """Presidio pattern recognizers for the configured entities, gated, boosted, filtered."""

    def __init__(self, config: RedactionConfig) -> None:
        factories = _recognizers()
        self.patterns = []
        for entity in config.entities:
            if entity in factories:
                rec = factories[entity](config)
                context = tuple(w.lower() for w in (getattr(rec, "context", None) or ()))
                self.patterns.append(_Pattern(entity, rec, GATES.get(entity), context, config.threshold(entity)))
        self._opaque_digit_patterns = [p for p in self.patterns if p.entity not in _NEEDS_SEPARATOR]
        self._opaque_patterns = [p for p in self._opaque_digit_patterns if p.entity not in _NEEDS_DIGIT_RUN]
        self._kv_entities = frozenset(config.entities) & {"PERSON", "LOCATION", "PHONE_NUMBER"}
        self._number_entities = frozenset(config.entities) & {"PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS"}

    def scan(self, text: str) -> list[Finding]:
        return self._scan_opaque(text) if _OPAQUE.fullmatch(text) is not None else self._scan_text(text)

    def _scan_text(self, text: str) -> list[Finding]:
        out: list[Finding] = context_findings(text, self._kv_entities) if self._kv_entities else []
        if self._number_entities:
            out.extend(number_findings(text, self._number_entities))
        self._scan_patterns(text, self.patterns, out)
        return out

    def _scan_opaque(self, text: str) -> list[Finding]:
        """An id, a call id, a label: most strings a batch has never seen before are these.

        Without whitespace, '@', '.' or ':' no context rule, email, IP or URL pattern can match,
        and no phone, SSN, card or other digit-run entity without seven digits in a row (hyphens
        between them allowed) that no letter, digit or '_' touches: those are skipped, everything
        else runs as for any text (tests/redaction/test_opaque_tokens.py checks both paths agree).
        """
        out: list[Finding] = []
        if _DIGIT_RUN.search(text) is None:
            self._scan_patterns(text, self._opaque_patterns, out)
            return out
        if self._number_entities:
            out.extend(number_findings(text, self._number_entities))
        self._scan_patterns(text, self._opaque_digit_patterns, out)
        return out

    def _scan_patterns(self, text: str, patterns: list[_Pattern], out: list[Finding]) -> None:
        for p in patterns:
            if p.entity in _WINDOWED:
                results = self._windowed(p, text)
            elif p.gate is not None and p.gate.search(text) is None:
                continue
            else:
                results = p.recognizer.analyze(text, [p.entity], None)  # type: ignore[attr-defined]
            for r in results:
                before = _words_before(text, r.start)
                has_context = any(c in w for w in before for c in p.context) if p.context else False
                score = r.score
                if has_context and score < 1.0:
                    score = min(1.0, max(score + 0.35, 0.4))
                if score < p.threshold:
                    continue
                if p.entity == "PHONE_NUMBER":
                    has_context = any(k in " ".join(before) for k in _PHONE_WORDS)
                keep = KEEP.get(p.entity)
                if keep is not None and not keep(text, r.start, r.end, has_context):
                    continue
                out.append(Finding(r.start, r.end, p.entity, score, _PRIORITY.get(p.entity, 25)))

    @staticmethod
    def _windowed(p: _Pattern, text: str) -> list[Any]:
        """Run a costly recognizer only on windows around its gate's matches, not the whole text.

        python-phonenumbers scans the whole text once per region; a phone number is local, so the
        same matches come out of a window that reaches the surrounding whitespace."""
        spans: list[list[int]] = []
        for m in p.gate.finditer(text):  # type: ignore[union-attr]
            found = m.group()
            if sum(c.isdigit() for c in found) < 7 or _DATE.fullmatch(found):
                continue
            if found.isdigit() and not any(k in text[max(0, m.start() - 40) : m.start()].lower() for k in _PHONE_WORDS):
                continue  # a bare digit run counts only after a phone word (see _keep_phone): skip the work
            start = text.rfind(" ", 0, max(0, m.start() - 24)) + 1
            end = text.find(" ", m.end() + 24)
            end = len(text) if end < 0 else end
            if spans and start <= spans[-1][1] and end - spans[-1][0] <= _MAX_WINDOW:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        results, seen = [], set()
        for start, end in spans:  # windows may overlap (a long run of digits): report each match once
            for r in p.recognizer.analyze(text[start:end], [p.entity], None):  # type: ignore[attr-defined]
                r.start += start
                r.end += start
                if (r.start, r.end) not in seen:
                    seen.add((r.start, r.end))
                    results.append(r)
        return results


_WINDOWED = frozenset({"PHONE_NUMBER"})
# Opaque tokens (PiiScanner._scan_opaque): letters, digits, '_' and '-' only.
_OPAQUE = re.compile(r"[A-Za-z0-9_-]+")
# Seven digits or more (hyphens allowed between them) not glued to a letter, digit or '_' on either
# side: the digit-run patterns start and end at \b, and phonenumbers rejects a number with a Latin
# letter next to it, so a hex id's digits ("c095d2") send it through none of them.
_DIGIT_RUN = re.compile(r"(?<![A-Za-z0-9_])[0-9](?:-*[0-9]){6,}(?![A-Za-z0-9_])")
_NEEDS_SEPARATOR = frozenset({"EMAIL_ADDRESS", "IP_ADDRESS", "URL"})  # an '@', a '.' or a ':'
# At least seven digits in a row, \b on both sides (phone: 7, SSN/ITIN: 9, bank: 8, NHS: 10, card: 12).
# Not US_PASSPORT: its next-generation pattern, [A-Z][0-9]{8}, has a letter glued to the digits.
_NEEDS_DIGIT_RUN = frozenset({"PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "US_ITIN", "US_BANK_NUMBER", "UK_NHS"})
_DATE = re.compile(r"(?:19|20)\d\d[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:19|20)\d\d")
_MAX_WINDOW = 240  # a table of numbers must not become one window the size of the text


def _words_before(text: str, start: int, count: int = 5) -> list[str]:
    return [w.lower() for w in _WORD.findall(text[max(0, start - 80) : start])[-count:]]
