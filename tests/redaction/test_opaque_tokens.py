"""The pattern scanner's shortcut for opaque tokens (ids, call ids, labels) finds what the full scan finds.

`PiiScanner._scan_opaque` skips the rules that cannot match in a string of letters, digits, '_'
and '-' (redaction/pii.py says which and why). These tests hold it to the full path,
`_scan_text`, on PII written as tokens and on random tokens, with every pattern entity on.
"""

from __future__ import annotations

import random
import string

import pytest

from tokentrail.redaction.config import DEFAULT_ENTITIES, OPTIONAL_ENTITIES, OPTIONAL_NER_ENTITIES, RedactionConfig
from tokentrail.redaction.pii import PiiScanner

# PII and look-alikes written without spaces, as an emitter could put them in an id or a label.
TOKENS = [
    "4155550134",
    "user-4155550134",
    "call_650-555-0134",
    "555-0134-77",
    "078-05-1120",
    "078051120",
    "ssn_078-05-1120",
    "4111111111111111",
    "4111-1111-1111-1111",
    "card-5500000000000004-x",
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "NL91ABNA0417164300",
    "iban_FR1420041010050500013M02606",
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "00-14-22-01-23-45",
    "912-70-1234",
    "9434765919",
    "123456789",
    "12345678",
    "A1234567",
    "A12345678",
    "passport-C03005988",
    "0302a0e4c1f5d2b9a7e6f4c3b2a1d0e9",
    "9be303a1c095d2bd",
    "call_b645e3c6184ffaa8153d43bc",
    "ORD-2026-3022931",
    "gpt-4o-2024-08-06",
    "claude-3-5-sonnet-20241022",
    "------",
    "_",
]


@pytest.fixture(scope="module")
def scanner() -> PiiScanner:
    pattern_entities = [e for e in (*DEFAULT_ENTITIES, *OPTIONAL_ENTITIES) if e not in OPTIONAL_NER_ENTITIES]
    return PiiScanner(RedactionConfig(entities=tuple(pattern_entities), nlp_model=None))


@pytest.fixture(scope="module")
def eager_scanner() -> PiiScanner:
    """Every pattern entity at the lowest threshold: whatever a recognizer matches at all is reported."""
    pattern_entities = [e for e in (*DEFAULT_ENTITIES, *OPTIONAL_ENTITIES) if e not in OPTIONAL_NER_ENTITIES]
    thresholds = dict.fromkeys(pattern_entities, 0.01)
    return PiiScanner(RedactionConfig(entities=tuple(pattern_entities), thresholds=thresholds, nlp_model=None))


def _spans(findings: list) -> set[tuple[int, int, str]]:
    return {(f.start, f.end, f.entity) for f in findings}


@pytest.mark.parametrize("token", TOKENS)
def test_pii_written_as_a_token_is_found_as_by_the_full_scan(scanner: PiiScanner, token: str) -> None:
    """Each token, alone: the shortcut and the full scan report the same spans and entities."""
    assert _spans(scanner.scan(token)) == _spans(scanner._scan_text(token))


def test_the_shortcut_agrees_on_random_tokens_and_finds_something(scanner: PiiScanner) -> None:
    """20,000 random tokens weighted towards digits and hyphens: identical findings, and some found."""
    rng = random.Random(20261203)
    alphabets = (string.digits + "-", string.digits * 4 + string.ascii_letters + "-_", string.hexdigits)
    found = 0
    for _ in range(20_000):
        alphabet = rng.choice(alphabets)
        token = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        expected = _spans(scanner._scan_text(token))
        assert _spans(scanner.scan(token)) == expected, token
        found += bool(expected)
    assert found > 50  # the sample exercises the digit-run path, not only clean tokens


def test_text_with_separators_takes_the_full_path(scanner: PiiScanner) -> None:
    """An email or an IP address is never an opaque token: both are still found."""
    entities = {f.entity for f in scanner.scan("mail jane.doe@corp.internal from 8.8.8.8")}
    assert {"EMAIL_ADDRESS", "IP_ADDRESS"} <= entities


def test_the_shortcut_agrees_whatever_the_thresholds(eager_scanner: PiiScanner) -> None:
    """Thresholds are the operator's: at the lowest, every weak pattern (a next-generation passport
    number, a letter glued to eight digits) counts, and the shortcut must still skip none of them."""
    rng = random.Random(20261204)
    alphabet = string.digits * 4 + string.ascii_uppercase + "-_"
    tokens = [*TOKENS, *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(5_000))]
    for token in tokens:
        assert _spans(eager_scanner.scan(token)) == _spans(eager_scanner._scan_text(token)), token
    assert "US_PASSPORT" in {f.entity for f in eager_scanner.scan("passport-C03005988")}


@pytest.mark.parametrize(
    ("token", "entity"),
    [
        ("4111111111111111", "CREDIT_CARD"),
        ("4111-1111-1111-1111", "CREDIT_CARD"),
        ("DE89370400440532013000", "IBAN_CODE"),
        ("GB82WEST12345698765432", "IBAN_CODE"),
        ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "CRYPTO"),
        ("00-14-22-01-23-45", "MAC_ADDRESS"),
        ("9434765919", "UK_NHS"),
    ],
)
def test_pii_written_as_a_token_is_found(scanner: PiiScanner, token: str, entity: str) -> None:
    """Agreement alone passes when both paths miss: these tokens must be found by the shortcut."""
    assert entity in {f.entity for f in scanner.scan(token)}
