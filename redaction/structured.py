"""PII given away by the shape of JSON rather than by its text: key names, number checksums, addresses.

Text recognizers only see strings. In tool arguments and attributes a card number arrives as a
JSON number (`"card_number": 4539148803436467`), a phone as `"mobileNo": 4915112345678`, and an
email as a key (`{"ana@corp.internal": "owner"}`). This module says, cheaply, which keys name a
PII kind, which numbers are PII on their own (a Luhn-valid card number), which keys can be skipped
by the detector (plain field names), and which email addresses are syntactically valid (any
domain: internal and reserved domains are addresses of people too).
"""

from __future__ import annotations

import re

__all__ = [
    "ACCOUNT_NUMBER",
    "number_key_entity",
    "number_entity",
    "digits_entity",
    "plain_key",
    "key_tokens",
    "luhn_valid",
    "card_number",
    "iban_valid",
    "email_address_valid",
]

ACCOUNT_NUMBER = "ACCOUNT_NUMBER"

# Words that, as a token of a key, say its number is a PII value of that kind. Matched on the
# key's tokens (`card_number`, `cardNumber`, `card-no` -> card, number), never as substrings:
# "cardinality" and "telemetry" name no card and no telephone.
_KIND_WORDS: dict[str, str] = {
    **dict.fromkeys(("card", "creditcard", "debitcard", "cardnumber", "ccn", "pan"), "CREDIT_CARD"),
    **dict.fromkeys(
        ("phone", "telephone", "tel", "mobile", "cell", "cellphone", "fax", "msisdn", "whatsapp", "phoneno"),
        "PHONE_NUMBER",
    ),
    "iban": "IBAN_CODE",
    **dict.fromkeys(("ssn", "socialsecurity", "nino", "itin"), "US_SSN"),
    **dict.fromkeys(("account", "acct", "accountno", "bank", "routing", "sortcode", "bsb"), ACCOUNT_NUMBER),
}
# A token that makes the number a quantity or a code about the thing, not the thing itself:
# card_count, account_balance, phone_attempts, card_last4, cardExpiryYear.
_QUANTITY_WORDS = frozenset(
    """
count counts total totals balance balances amount amounts limit limits len length size age days hours minutes
seconds ms index idx version max min year month day type status last last4 first6 bin attempts retries score
ratio pct percent cost price fee fees expiry exp expires tier level rank digits share weight
""".split()
)
# Fewest digits a number under such a key needs: fewer is a count, a last-four or an extension.
_MIN_DIGITS = {"CREDIT_CARD": 12, "PHONE_NUMBER": 7, "US_SSN": 7, "IBAN_CODE": 12, ACCOUNT_NUMBER: 6}

_KEY_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# A key the detector can skip: a plain field name (letters and underscores, lowercase first, as
# snake_case or camelCase) holds no email, number, address or secret, and no name a detector
# would find without context. Everything else (digits, '@', spaces, capitals first) is analysed.
_PLAIN_KEY = re.compile(r"[a-z][a-z_]{0,39}|[a-z]+(?:[A-Z][a-z]+){1,5}")
# The key functions below are not cached here: the redactor caches its whole plan per key name
# (redactor._key_plan), and that is their only caller.


def key_tokens(key: str) -> tuple[str, ...]:
    """`cardNumber`, `card_number`, `Card-No` -> ('card', 'number'); lowercase, in order."""
    return tuple(part.lower() for part in _KEY_PART.findall(key))


def number_key_entity(key: str) -> str | None:
    """The PII kind a key names for the numbers under it (CREDIT_CARD for `cardNumber`), or None."""
    tokens = key_tokens(key)
    if not tokens or any(t in _QUANTITY_WORDS for t in tokens):
        return None
    for token in tokens:
        if token in _KIND_WORDS:
            return _KIND_WORDS[token]
        if token.endswith("s") and token[:-1] in _KIND_WORDS:  # phones, cards, accounts, ibans
            return _KIND_WORDS[token[:-1]]
    joined = "".join(tokens)  # social_security_number, sort-code, phoneNo
    return next((entity for word, entity in _KIND_WORDS.items() if len(word) > 5 and word in joined), None)


def plain_key(key: str) -> bool:
    """True for a field name no detector could find anything in: the common case, skipped."""
    return _PLAIN_KEY.fullmatch(key) is not None


def digits_entity(digits: str, key_entity: str | None) -> str | None:
    """The entity for a run of digits: what its key names (`phone`: a phone number, even one that
    happens to pass the card checks), else a valid card number wherever it is."""
    if key_entity is not None and len(digits) >= _MIN_DIGITS.get(key_entity, 6):
        return key_entity
    if 13 <= len(digits) <= 19 and card_number(digits):
        return "CREDIT_CARD"
    return None


def number_entity(value: object, key_entity: str | None) -> str | None:
    """The entity a JSON number is (CREDIT_CARD, PHONE_NUMBER, ...), or None for an ordinary number.

    Only integers: a float is a measurement. Booleans are ints in Python and are never PII.
    """
    if type(value) is not int or (key_entity is None and value < 10**12):
        return None  # the common case, decided without making a string
    return digits_entity(str(abs(value)), key_entity)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Issuer prefixes and lengths (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro):
# a Luhn check alone passes one random number in ten.
_CARD = re.compile(
    r"4\d{12}(?:\d{3}){0,2}"
    r"|(?:5[1-5]\d\d|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)\d{12}"
    r"|3[47]\d{13}"
    r"|(?:6011|65\d\d|64[4-9]\d)\d{12,15}"
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"
    r"|3(?:0[0-5]|[68]\d)\d{11,16}"
    r"|62\d{14,17}"
    r"|(?:5[06-9]|6\d)\d{10,17}"
)


def card_number(digits: str) -> bool:
    """A payment card number: an issuer's prefix and length, and the Luhn check digit."""
    return _CARD.fullmatch(digits) is not None and luhn_valid(digits)


_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")


def iban_valid(value: str) -> bool:
    """ISO 13616: country, check digits, then the mod-97 check over the rearranged string."""
    compact = re.sub(r"[\s-]", "", value).upper()
    if _IBAN.fullmatch(compact) is None:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_DOMAIN_LABEL = re.compile(r"(?!-)[^\W_](?:[\w-]{0,61}[^\W_])?", re.UNICODE)
_TLD = re.compile(r"[^\W\d_]{2,63}|xn--[a-z0-9-]{2,59}", re.UNICODE | re.IGNORECASE)


def email_address_valid(address: str) -> bool:
    """Any syntactically valid address is an email: public suffix or not (corp.internal, build.local,
    .test, .example, .invalid, .localhost). The domain needs two or more labels of letters, digits
    and inner hyphens and an alphabetic top label, so `lodash@4.17.21` and `icon@2x.png` are not one.
    """
    local, _, domain = address.rpartition("@")
    if not local or len(local) > 64 or len(domain) > 253:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or _TLD.fullmatch(labels[-1]) is None:
        return False
    if re.fullmatch(r"\d+x", labels[0], re.IGNORECASE):
        return False  # retina image names: logo@2x.png
    return all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
