"""Identifiers and keys: dead letters redacted like events, 64-bit pseudonyms, the key id, ephemeral keys."""

from __future__ import annotations

import json
import pickle
import re

import pytest

from tokentrail.redaction import RedactionConfig, Redactor, load_key
from tokentrail.redaction.settings import EphemeralKey, is_ephemeral_key, require_persistent_key

TOKEN = re.compile(r"<([A-Z_]+):[0-9a-f]{16}>")


def test_dead_letter_json_gets_event_treatment(pattern_redactor):
    """A payload that parses is redacted as JSON: identifiers pseudonymised with the same function
    valid events use, keys and attributes redacted, numbers named as PII replaced."""
    payload = {
        "type": "output",
        "user_id": "farah.haddad@corp.internal",
        "session_id": "sess-farah.haddad@corp.internal",
        "attributes": {"customer_email": "farah.haddad@corp.internal", "note": "ring 020 7946 0321 after 5"},
        "tool": {"arguments": {"ahmed.s@build.local": "cc", "card_number": 6011009934128872}},
        "usage": {"input_tokens": 5000000000000},
    }
    text, counts = pattern_redactor.redact_raw(json.dumps(payload).encode())
    assert "farah.haddad" not in text and "ahmed.s" not in text and "6011009934128872" not in text
    out = json.loads(text)
    assert out["user_id"] == pattern_redactor.pseudonym("farah.haddad@corp.internal")
    assert out["session_id"] == pattern_redactor.pseudonym("sess-farah.haddad@corp.internal")
    assert re.fullmatch(r"[0-9a-f]{16}", out["user_id"])
    assert TOKEN.fullmatch(out["tool"]["arguments"]["card_number"]).group(1) == "CREDIT_CARD"
    assert out["usage"] == {"input_tokens": 5000000000000}  # a big number that is no PII stays
    assert list(out) == list(payload)  # field order kept
    # Identifiers are pseudonymised whole, not searched: only the attribute and the key count as
    # emails, and `session_id` is not mistaken for a secret-named field.
    assert counts == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1, "CREDIT_CARD": 1}


def test_dead_letter_numeric_identifier_is_pseudonymised(pattern_redactor):
    """A user_id that arrived as a number is still an identifier: pseudonymised, not kept."""
    text, _ = pattern_redactor.redact_raw('{"user_id": 88213407, "session_id": ""}')
    out = json.loads(text)
    assert out["user_id"] == pattern_redactor.pseudonym("88213407") and out["session_id"] == ""


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe oskar.lind@corp.internal \xc3",  # not UTF-8
        "user_id=oskar.lind@corp.internal level=error",  # not JSON at all
    ],
)
def test_dead_letter_text_is_redacted_as_text(pattern_redactor, payload):
    """A payload that does not parse is redacted as text, whatever its encoding."""
    text, counts = pattern_redactor.redact_raw(payload)
    assert isinstance(text, str) and "oskar.lind" not in text and counts == {"EMAIL_ADDRESS": 1}


def test_clean_dead_letter_comes_back_verbatim(pattern_redactor):
    """Nothing to replace: the payload comes back as it came, formatting included."""
    raw = '{ "type": "prompt",\n  "messages": [] , "n": 3 }'
    assert pattern_redactor.redact_raw(raw) == (raw, {})
    assert pattern_redactor.redact_raw(raw.encode()) == (raw, {})


def test_dead_letter_batch_matches_one_by_one(pattern_redactor):
    """redact_raw_many gives, in order, what redact_raw gives for each payload."""
    payloads = [b'{"user_id": "u-1"}', "plain tala@corp.internal", b"[1, 2", '"just a string"']
    assert pattern_redactor.redact_raw_many(payloads) == [pattern_redactor.redact_raw(p) for p in payloads]


def test_lone_surrogates_stay_encodable(pattern_redactor):
    """A payload escaping a lone surrogate is re-serialised so that it still encodes as UTF-8."""
    text, _ = pattern_redactor.redact_raw('{"user_id": "x", "note": "\\ud800 bo@corp.internal"}')
    text.encode("utf-8")
    assert "bo@corp.internal" not in text


def test_tokens_and_pseudonyms_have_64_bits(pattern_redactor):
    """Inline tokens and identifier pseudonyms carry 16 hex digits; tokens extend the old 8."""
    out, _ = pattern_redactor.redact_text("mail yara.costa@corp.internal")
    assert TOKEN.search(out)
    assert re.fullmatch(r"[0-9a-f]{16}", pattern_redactor.pseudonym("tenant-user-0042"))


def test_key_id_names_the_key_without_revealing_it(key, other_key):
    """key_id is stable for one key, differs for another, and is none of the key's bytes."""
    a, b = Redactor(RedactionConfig(nlp_model=None), key), Redactor(RedactionConfig(nlp_model=None), key)
    other = Redactor(RedactionConfig(nlp_model=None), other_key)
    assert re.fullmatch(r"[0-9a-f]{8}", a.key_id) and a.key_id == b.key_id != other.key_id
    assert a.key_id not in key.hex() and not a.key_is_ephemeral


def test_ephemeral_key_is_marked_and_survives_pickling():
    """load_key without a configured key returns a marked key; the mark crosses a process boundary."""
    key = load_key(allow_ephemeral=True, environ={})
    assert is_ephemeral_key(key) and isinstance(key, bytes) and len(key) == 32
    assert is_ephemeral_key(pickle.loads(pickle.dumps(key))) and pickle.loads(pickle.dumps(key)) == key
    assert not is_ephemeral_key(load_key(allow_ephemeral=True, environ={"TOKENTRAIL_REDACTION_KEY": "k" * 20}))
    assert Redactor(RedactionConfig(nlp_model=None), key).key_is_ephemeral


@pytest.mark.parametrize("dsn", ["http://writer:pw@clickhouse:8123/tokentrail", "https://ch.example.net:8443/db"])
def test_ephemeral_key_refused_with_a_server(dsn):
    """An ephemeral key with a ClickHouse server raises, saying how to configure a key."""
    with pytest.raises(ValueError, match="TOKENTRAIL_REDACTION_KEY") as caught:
        require_persistent_key(dsn, key_is_ephemeral=True)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("dsn", ["chdb:///tmp/tokentrail-demo", "chdb://memory", "CHDB:///var/lib/tt"])
def test_ephemeral_key_allowed_embedded(dsn):
    """The embedded store accepts an ephemeral key (demo, replay into a local store)."""
    require_persistent_key(dsn, key_is_ephemeral=True)


def test_persistent_key_allowed_anywhere():
    """A configured key passes the check for any store."""
    require_persistent_key("http://clickhouse:8123", key_is_ephemeral=False)
    assert is_ephemeral_key(EphemeralKey(b"x" * 32)) and not is_ephemeral_key(b"x" * 32)


def test_dead_letter_nested_beyond_the_parser_is_redacted_as_text(pattern_redactor):
    """3,000 levels of nesting do not parse (RecursionError): the payload is redacted as text."""
    payload = "[" * 3000 + '"runa.eik@corp.internal"' + "]" * 3000
    text, counts = pattern_redactor.redact_raw(payload)
    assert "runa.eik" not in text and counts == {"EMAIL_ADDRESS": 1} and text.startswith("[[[")


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b'{"user_id": "oskar.lind@corp.internal", "messages": [', "oskar.lind@corp.internal"),  # truncated
        (b'{"session_id": "sess-77a1-lindqvist", "ts": "2026-', "sess-77a1-lindqvist"),  # an opaque id
        (b'{"user_id": 88120431, "trace_id": "t', "88120431"),  # a number is an identifier too
        (b'{"type": "prompt", "user_id": "kari.nordman@build.loc', "kari.nordman@build.loc"),  # cut mid-value
    ],
)
def test_dead_letter_text_pseudonymises_identifiers_it_can_still_see(pattern_redactor, payload, value):
    """A payload cut short is no JSON, but its identifier fields are still pseudonymised as valid events'."""
    text, _ = pattern_redactor.redact_raw(payload)
    assert value not in text and pattern_redactor.pseudonym(value) in text, text


def test_dead_letter_text_reads_json_whitespace_escapes_as_whitespace(pattern_redactor):
    """A phone right after a `\\n` escape, in a payload that does not parse, is still a phone."""
    payload = b'{"attributes": {"note": "ring 0132\\n+1 650 555 0176\\tnow"}, "user'
    text, counts = pattern_redactor.redact_raw(payload)
    assert "555 0176" not in text and counts["PHONE_NUMBER"] >= 1, text
