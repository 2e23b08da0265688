"""The Redactor's contract: tokens, keys, JSON structure, counts, policy, configuration errors."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tokentrail.redaction import DEFAULT_ENTITIES, SECRET_ENTITIES, RedactionConfig, Redactor, build_redactor, load_key

TOKEN = re.compile(r"<([A-Z_]+):([0-9a-f]{16})>")
EMAIL_TEXT = "Contact maria.garcia84@gmail.com about ORD-2026-3718739."


def test_value_becomes_typed_token(pattern_redactor):
    """A found value is replaced by <ENTITY:16 hex digits> and counted by entity type."""
    out, counts = pattern_redactor.redact_text(EMAIL_TEXT)
    assert "maria.garcia84@gmail.com" not in out
    assert TOKEN.search(out).group(1) == "EMAIL_ADDRESS"
    assert out.startswith("Contact <EMAIL_ADDRESS:") and out.endswith("> about ORD-2026-3718739.")
    assert counts == Counter({"EMAIL_ADDRESS": 1})


def test_same_value_same_token_under_one_key(pattern_redactor, key):
    """The same value gives the same token in different texts, calls and redactors with one key."""
    a, _ = pattern_redactor.redact_text("from maria.garcia84@gmail.com")
    b, _ = pattern_redactor.redact_text("cc: maria.garcia84@gmail.com, thanks")
    c, _ = Redactor(RedactionConfig(nlp_model=None, cache_size=0), key).redact_text("maria.garcia84@gmail.com")
    assert TOKEN.search(a).group(0) == TOKEN.search(b).group(0) == TOKEN.search(c).group(0)


def test_spelling_variants_share_a_token(pattern_redactor):
    """Normalisation: case of an email, separators of a card number do not change the token."""
    a, _ = pattern_redactor.redact_text("Maria.Garcia84@Gmail.com")
    b, _ = pattern_redactor.redact_text("maria.garcia84@gmail.com")
    c, _ = pattern_redactor.redact_text("card 4539 1488 0343 6467")
    d, _ = pattern_redactor.redact_text("card 4539-1488-0343-6467")
    assert TOKEN.search(a).group(0) == TOKEN.search(b).group(0)
    assert TOKEN.search(c).group(0) == TOKEN.search(d).group(0)


def test_other_key_other_token(pattern_redactor, other_key):
    """Under another key the same value gets a different token: tokens are keyed, not plain hashes."""
    other = Redactor(RedactionConfig(nlp_model=None), other_key)
    a, _ = pattern_redactor.redact_text(EMAIL_TEXT)
    b, _ = other.redact_text(EMAIL_TEXT)
    assert TOKEN.search(a).group(2) != TOKEN.search(b).group(2)


def test_different_values_different_tokens(pattern_redactor):
    """Two addresses in one text stay distinguishable."""
    out, counts = pattern_redactor.redact_text("a.one@example.org and b.two@example.org")
    assert len({m.group(0) for m in TOKEN.finditer(out)}) == 2
    assert counts["EMAIL_ADDRESS"] == 2


def test_json_structure_kept_and_keys_redacted(pattern_redactor):
    """Every string is redacted recursively, keys included; numbers, booleans, nulls and order stay."""
    value = {
        "messages": [{"role": "user", "content": "mail kai.berg@posteo.de"}],
        "kai.berg@posteo.de": {"n": 3, "ok": True, "none": None, "f": 1.5, "list": ["x", "kai.berg@posteo.de"]},
    }
    out, counts = pattern_redactor.redact_json(value)
    assert list(out)[0] == "messages" and len(out) == 2
    assert out["messages"][0]["role"] == "user"
    assert "kai.berg@posteo.de" not in out["messages"][0]["content"]
    (key,) = [k for k in out if k != "messages"]
    assert TOKEN.fullmatch(key) and key == TOKEN.search(out["messages"][0]["content"]).group(0)
    inner = out[key]
    assert inner["n"] == 3 and inner["ok"] is True and inner["none"] is None and inner["f"] == 1.5
    assert inner["list"][0] == "x" and inner["list"][1] == key
    assert counts["EMAIL_ADDRESS"] == 3
    assert value["messages"][0]["content"] == "mail kai.berg@posteo.de"  # the input is not mutated


def test_secret_named_fields_are_redacted_whole(pattern_redactor):
    """A value under a password/api_key field is the secret even when it looks like nothing."""
    out, counts = pattern_redactor.redact_json(
        {"password": "hunter22", "db": {"api_key": "k3yvalue-2026"}, "max_tokens": 1024, "token_count": "12"}
    )
    assert TOKEN.fullmatch(out["password"]).group(1) == "PASSWORD"
    assert TOKEN.fullmatch(out["db"]["api_key"]).group(1) == "SECRET"
    assert out["max_tokens"] == 1024 and out["token_count"] == "12"
    assert counts == Counter({"PASSWORD": 1, "SECRET": 1})


def test_placeholders_under_secret_fields_survive(pattern_redactor):
    """Templates and masks are not secrets: ${DB_PASSWORD}, ***, <your-key>."""
    value = {"password": "${DB_PASSWORD}", "api_key": "<your-key>", "secret": "********"}
    assert pattern_redactor.redact_json(value) == (value, Counter())


def test_redact_many_matches_one_by_one(pattern_redactor):
    """The batch form returns, per value, what redact_json returns for it alone."""
    values = [EMAIL_TEXT, {"a": [EMAIL_TEXT, "call +1 415-555-0132"]}, 7, None, "nothing here"]
    assert pattern_redactor.redact_many(values) == [pattern_redactor.redact_json(v) for v in values]


def test_cache_serves_repeats(key):
    """A repeated string is analysed once: the second batch is all cache hits."""
    redactor = Redactor(RedactionConfig(nlp_model=None), key)
    system = "You are the order support assistant. Escalate to support@acme-corp.com."
    first = redactor.redact_many([{"m": [system, "hi"]}])
    misses = redactor.cache_stats["misses"]
    assert redactor.redact_many([{"m": [system, "hi"]}]) == first
    assert redactor.cache_stats["misses"] == misses and redactor.cache_stats["hits"] >= 2


def test_store_raw_text_keeps_pii_but_removes_secrets(key):
    """By policy PII may be kept (and still counted); secrets are removed regardless."""
    redactor = Redactor(RedactionConfig(nlp_model=None, store_raw_text=True), key)
    text = "jo.doe@gmail.com sent AKIAIOSFODNN7ABCDEFG and password=hunter22"
    out, counts = redactor.redact_text(text)
    assert "jo.doe@gmail.com" in out
    assert "AKIAIOSFODNN7ABCDEFG" not in out and "hunter22" not in out
    assert counts == Counter({"EMAIL_ADDRESS": 1, "AWS_ACCESS_KEY_ID": 1, "PASSWORD": 1})
    out, _ = redactor.redact_json({"customer_name": "Olivia Brown", "password": "hunter22"})
    assert out["customer_name"] == "Olivia Brown" and "hunter22" not in out["password"]


def test_allow_list_values_survive(key):
    """An allow-listed value (a public support address) is neither replaced nor counted."""
    redactor = Redactor(RedactionConfig(nlp_model=None, allow_list=("support@acme-corp.com",)), key)
    out, counts = redactor.redact_text("write to support@acme-corp.com or jo.doe@gmail.com")
    assert "support@acme-corp.com" in out and "jo.doe@gmail.com" not in out
    assert counts == Counter({"EMAIL_ADDRESS": 1})


def test_pseudonym_is_stable_and_keyed(pattern_redactor, other_key):
    """pseudonym() (for user_id columns) is stable under one key and differs under another."""
    other = Redactor(RedactionConfig(nlp_model=None), other_key)
    p = pattern_redactor.pseudonym("northwind-user-0226")
    assert re.fullmatch(r"[0-9a-f]{16}", p) and p == pattern_redactor.pseudonym("northwind-user-0226")
    assert p != other.pseudonym("northwind-user-0226") and p != pattern_redactor.pseudonym("northwind-user-0227")


def test_entities_limit_what_is_found(key):
    """Only configured entities are replaced."""
    redactor = Redactor(RedactionConfig(entities=("EMAIL_ADDRESS",), nlp_model=None), key)
    out, counts = redactor.redact_text("jo.doe@gmail.com, +1 415-555-0132, AKIAIOSFODNN7ABCDEFG")
    assert "+1 415-555-0132" in out and "AKIAIOSFODNN7ABCDEFG" in out and counts == Counter({"EMAIL_ADDRESS": 1})


@pytest.mark.parametrize(
    "kwargs, fix",
    [
        ({"entities": ("EMAIL", "PERSON")}, "choose from"),
        ({"entities": ()}, "leave it out"),
        ({"thresholds": {"PHONE_NUMBER": 1.5}}, "(0, 1]"),
        ({"thresholds": {"NOPE": 0.5}}, "unknown entity"),
        ({"phone_regions": ("US", "XX")}, "ISO 3166"),
        ({"processes": 0}, "integer >= 1"),
        ({"cache_size": -1}, "integer >= 0"),
        ({"nlp_model": ""}, "pattern-only"),
        ({"store_raw_text": "yes"}, "true or false"),
    ],
)
def test_bad_configuration_says_the_fix(kwargs, fix):
    """RedactionConfig validates at construction and the message says what to do."""
    with pytest.raises(ValueError, match=re.escape(fix)):
        RedactionConfig(**kwargs)


def test_defaults_cover_pii_and_every_secret_kind():
    """The default entity list includes all secret kinds and the telemetry PII."""
    config = RedactionConfig()
    assert set(SECRET_ENTITIES) <= set(config.entities) == set(DEFAULT_ENTITIES)
    assert {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "IP_ADDRESS",
        "US_SSN",
        "CRYPTO",
        "PERSON",
        "LOCATION",
    } <= set(config.entities)
    assert config.store_raw_text is False


def test_missing_key_is_a_clear_error():
    """No key configured: load_key raises and says which variables to set and how to make a key."""
    with pytest.raises(ValueError, match="TOKENTRAIL_REDACTION_KEY.*TOKENTRAIL_REDACTION_KEY_FILE") as err:
        load_key(allow_ephemeral=False, environ={})
    assert "secrets.token_hex" in str(err.value)


def test_key_sources(tmp_path):
    """The key comes from the variable or the file; both set, short, or unreadable are errors."""
    assert load_key(False, {"TOKENTRAIL_REDACTION_KEY": "0123456789abcdef0123"}) == b"0123456789abcdef0123"
    f = tmp_path / "key"
    f.write_text("fedcba9876543210fedcba\n")
    assert load_key(False, {"TOKENTRAIL_REDACTION_KEY_FILE": str(f)}) == b"fedcba9876543210fedcba"
    with pytest.raises(ValueError, match="set only one"):
        load_key(False, {"TOKENTRAIL_REDACTION_KEY": "0123456789abcdef", "TOKENTRAIL_REDACTION_KEY_FILE": str(f)})
    with pytest.raises(ValueError, match="at least 16"):
        load_key(False, {"TOKENTRAIL_REDACTION_KEY": "short"})
    with pytest.raises(ValueError, match="cannot be read"):
        load_key(False, {"TOKENTRAIL_REDACTION_KEY_FILE": str(tmp_path / "missing")})


def test_ephemeral_key_only_when_allowed(caplog):
    """Demo and replay may run on a random key, and the log says tokens will not match other runs."""
    a, b = load_key(True, {}), load_key(True, {})
    assert len(a) == 32 and a != b
    assert "ephemeral" in caplog.text


def test_build_redactor_refuses_to_start_without_key(monkeypatch):
    """The worker's constructor fails loudly when no key is configured."""
    monkeypatch.delenv("TOKENTRAIL_REDACTION_KEY", raising=False)
    monkeypatch.delenv("TOKENTRAIL_REDACTION_KEY_FILE", raising=False)
    with pytest.raises(ValueError, match="no redaction key"):
        build_redactor(config=RedactionConfig(nlp_model=None))
    assert build_redactor(allow_ephemeral_key=True, config=RedactionConfig(nlp_model=None)).redact_text("x")[0] == "x"


def test_redactor_rejects_short_key():
    """A Redactor cannot be built with a trivially short key."""
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Redactor(RedactionConfig(nlp_model=None), b"short")
