"""PII outside message text: JSON keys, numbers named or shaped as PII, emails at any domain.

Card numbers are generated with a Luhn check digit (stream.synthetic's code, not the validator's)
and IBANs with their mod-97 check digits, so the values differ from any example in the issues and
from the corpus.
"""

from __future__ import annotations

import random
import re

import pytest

from tokentrail.redaction import RedactionConfig, Redactor
from tokentrail.redaction.structured import card_number, email_address_valid, iban_valid
from tokentrail.stream.synthetic.sensitive import luhn_complete

TOKEN = re.compile(r"<([A-Z_]+):[0-9a-f]{16}>")


def luhn_card(prefix: str, length: int, rng: random.Random) -> str:
    """A card number with an issuer prefix, random middle digits and a valid Luhn check digit."""
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return luhn_complete(body)  # the generator's own Luhn code, not the validator under test


def iban(country: str, bban: str) -> str:
    """An IBAN with check digits computed by ISO 13616 mod-97."""
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


RNG = random.Random(20261203)
VISA = luhn_card("4", 16, RNG)
MASTERCARD = luhn_card("53", 16, RNG)
AMEX = luhn_card("37", 15, RNG)
IBAN_NL = iban("NL", "RABO0312345678")
IBAN_GB = iban("GB", "NWBK60161331926819")


def test_generated_values_are_valid():
    """The generators above produce what the validators accept, and a changed digit is refused."""
    assert card_number(VISA) and card_number(MASTERCARD) and card_number(AMEX)
    wrong = VISA[:-1] + str((int(VISA[-1]) + 1) % 10)
    assert not card_number(wrong)
    assert iban_valid(IBAN_NL) and iban_valid(IBAN_GB) and not iban_valid(IBAN_GB[:-1] + "0")
    assert not card_number("1" + VISA[1:])  # no issuer starts with 1 (snowflake ids, ns timestamps)


@pytest.mark.parametrize(
    "address",
    [
        "priya.nair@corp.internal",
        "deploy-bot@ci.build.local",
        "qa.lead@shop.test",
        "someone@acme.example",
        "noreply@mail.invalid",
        "admin@dev.localhost",
        "tomas.horak@intranet.lan",
    ],
)
def test_emails_at_non_public_domains_are_emails(pattern_redactor, address):
    """Any syntactically valid address is an email, public suffix or not."""
    out, counts = pattern_redactor.redact_text(f"forwarded to {address} yesterday")
    assert address not in out and counts == {"EMAIL_ADDRESS": 1}, out


@pytest.mark.parametrize("text", ["npm i lodash@4.17.21", "assets/logo@3x.png", "pip install torch@2.3.1", "a@b"])
def test_address_look_alikes_survive(pattern_redactor, text):
    """Package pins, retina image names and a bare `a@b` have no valid domain: kept."""
    assert not email_address_valid(text.split()[-1].split("/")[-1])
    assert pattern_redactor.redact_text(text) == (text, {})


def test_email_used_as_key_is_redacted_at_any_depth(pattern_redactor):
    """An address used as a JSON key, three levels down, becomes the same token as in text."""
    value = {"args": {"acl": {"mei.tanaka@corp.internal": ["read", "write"]}}, "note": "mei.tanaka@corp.internal"}
    out, counts = pattern_redactor.redact_json(value)
    (key,) = out["args"]["acl"]
    assert TOKEN.fullmatch(key) and key == out["note"]
    assert out["args"]["acl"][key] == ["read", "write"] and counts == {"EMAIL_ADDRESS": 2}


def test_keys_that_collide_after_redaction_keep_both_values(pattern_redactor):
    """Two spellings of one address canonicalise to one token; neither value is lost."""
    out, _ = pattern_redactor.redact_json({"Li.Na@Corp.Internal": 1, "li.na@corp.internal": 2})
    assert len(out) == 2 and sorted(out.values()) == [1, 2]
    assert all("corp.internal" not in k.lower() for k in out)


@pytest.mark.parametrize(
    "key, number, entity",
    [
        ("card_number", MASTERCARD, "CREDIT_CARD"),
        ("cardNumber", AMEX, "CREDIT_CARD"),
        ("phone-no", "4930901820", "PHONE_NUMBER"),
        ("mobileNumber", "447911123456", "PHONE_NUMBER"),
        ("customer_ssn", "621418593", "US_SSN"),
        ("accountNumber", "73920461", "ACCOUNT_NUMBER"),
        ("bank_account", "1029384756", "ACCOUNT_NUMBER"),
        ("contact_phones", "14155550187", "PHONE_NUMBER"),
    ],
)
def test_numbers_under_pii_named_keys(pattern_redactor, key, number, entity):
    """A JSON number whose key names a PII kind becomes that kind's token string; so does the
    same number written as a string of digits and separators."""
    out, counts = pattern_redactor.redact_json({"args": {key: int(number)}})
    assert TOKEN.fullmatch(out["args"][key]).group(1) == entity and counts == {entity: 1}
    spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    out, counts = pattern_redactor.redact_json({key: spaced})
    assert number not in out[key].replace(" ", "") and TOKEN.fullmatch(out[key]), out


def test_valid_card_number_anywhere_is_redacted(pattern_redactor):
    """A Luhn-valid number with an issuer prefix is a card under any key, in lists too."""
    out, counts = pattern_redactor.redact_json({"ref": int(VISA), "items": [int(AMEX), 7]})
    assert TOKEN.fullmatch(out["ref"]).group(1) == "CREDIT_CARD"
    assert TOKEN.fullmatch(out["items"][0]) and out["items"][1] == 7
    assert counts == {"CREDIT_CARD": 2}


@pytest.mark.parametrize(
    "value",
    [
        {"card_count": 12345678, "account_balance": 1520775, "phone_attempts": 3, "card_last4": 4821},
        {"ts_ns": 1764720000123456789, "trace_seq": 9007199254740993, "order_id": 40051237},
        {"cardinality": int(VISA[:-1] + str((int(VISA[-1]) + 1) % 10)), "telemetry": 4930901820},
        {"phone": True, "card_number": 1234, "iban": 3.5, "ssn": None},
    ],
)
def test_ordinary_numbers_survive(pattern_redactor, value):
    """Counts, balances, last-four digits, timestamps, ids, Luhn failures, words that merely
    contain "card" or "tel", booleans, floats and short numbers are kept as they are."""
    assert pattern_redactor.redact_json(value) == (value, {})


def test_iban_strings_are_redacted(pattern_redactor):
    """IBANs as strings (compact, grouped, under any key) are found by their mod-97 check."""
    grouped = " ".join(IBAN_GB[i : i + 4] for i in range(0, len(IBAN_GB), 4))
    out, counts = pattern_redactor.redact_json({"iban": IBAN_NL, "memo": f"pay to {grouped} today"})
    assert IBAN_NL not in str(out) and grouped not in str(out) and counts == {"IBAN_CODE": 2}


def test_store_raw_text_keeps_numbers_but_counts_them(key):
    """With raw storage by policy, PII numbers stay as they were (type included) and are counted."""
    redactor = Redactor(RedactionConfig(nlp_model=None, store_raw_text=True), key)
    value = {"card_number": int(MASTERCARD)}
    assert redactor.redact_json(value) == (value, {"CREDIT_CARD": 1})


def test_clean_values_come_back_uncopied(pattern_redactor):
    """Attributes with nothing to hide are returned as the same object: no rebuild, no copy."""
    attributes = {"region": "eu-west-1", "retry": "2", "model_tier": "gpt-4o-mini", "latencyBucket": "p95"}
    error = "TimeoutError: upstream took 30s (request r-19f2)"
    results = pattern_redactor.redact_many([attributes, error])
    assert results[0][0] is attributes and results[1][0] is error
    assert results[0][1] == {} and results[1][1] == {}


def test_attributes_and_errors_are_redacted(pattern_redactor):
    """Free-form attributes (string to string) and error messages go through the same redaction."""
    attributes = {"customer_email": "ines.moreau@wanadoo.fr", "note": "call Mr. Okafor on +44 20 7946 0321"}
    error = "ValueError: no account for ines.moreau@wanadoo.fr"
    (clean, counts), (clean_error, error_counts) = pattern_redactor.redact_many([attributes, error])
    assert "ines.moreau" not in str(clean) and "7946 0321" not in clean["note"] and "Okafor" not in clean["note"]
    assert counts["EMAIL_ADDRESS"] == 1 and counts["PHONE_NUMBER"] == 1 and counts["PERSON"] == 1
    assert "ines.moreau" not in clean_error and error_counts == {"EMAIL_ADDRESS": 1}


def test_too_deep_to_walk_fails_closed(pattern_redactor):
    """A value nested deeper than the stack can walk is replaced whole, never passed through."""
    value: object = {"email": "wen.li@corp.internal"}
    for _ in range(5000):
        value = [value]
    (out, counts), (shallow, _) = pattern_redactor.redact_many([value, {"a": "wen.li@corp.internal"}])
    assert isinstance(out, str) and "wen.li" not in out and counts == {}
    assert "wen.li" not in shallow["a"]


@pytest.mark.parametrize(
    "text",
    [
        "Call me back on <PHONE_NUMBER:08b1e2041c3c55e2> if anything is unclear.",
        "My mobile is <PHONE_NUMBER:e0e1a1e9b40ebf92>, card <CREDIT_CARD:4716038822945173>.",
        "older token <EMAIL_ADDRESS:1a2b3c4d> stays",
    ],
)
def test_tokens_are_not_redacted_again(pattern_redactor, text):
    """Redacting redacted text changes nothing: a phone matcher would read a token's hex letters
    as vanity digits, and an all-digit token passes the card checks."""
    assert pattern_redactor.redact_text(text) == (text, {})


def test_pii_next_to_a_token_is_still_found(pattern_redactor):
    """Skipping tokens does not hide what follows them."""
    out, counts = pattern_redactor.redact_text("<PERSON:0123456789abcdef> wrote from ria.sen@corp.internal")
    assert "ria.sen" not in out and counts == {"EMAIL_ADDRESS": 1}
