"""PII: Presidio's pattern recognizers behind gates and filters, NER for PERSON/LOCATION, context rules."""

from __future__ import annotations

import pytest

from tokentrail.redaction import RedactionConfig, Redactor


@pytest.mark.parametrize(
    "text, value, entity",
    [
        ("reach me at maria.garcia84@gmail.com", "maria.garcia84@gmail.com", "EMAIL_ADDRESS"),
        ("call me on +1 415-555-0132", "+1 415-555-0132", "PHONE_NUMBER"),
        ("my mobile is (212) 555-0187.", "(212) 555-0187", "PHONE_NUMBER"),
        ("Rufen Sie +49 30 90182736 an", "+49 30 90182736", "PHONE_NUMBER"),
        ("phone: 6465550123", "6465550123", "PHONE_NUMBER"),
        ("card 4539 1488 0343 6467 exp 08/28", "4539 1488 0343 6467", "CREDIT_CARD"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
        ("requests from 81.23.145.9 failed", "81.23.145.9", "IP_ADDRESS"),
        (
            "blocked 2a02:8108:1a40:e00:5d3c:a1ff:fe2b:19c4 today",
            "2a02:8108:1a40:e00:5d3c:a1ff:fe2b:19c4",
            "IP_ADDRESS",
        ),
        ("SSN 536-22-8726", "536-22-8726", "US_SSN"),
        ("ssn: 457555462", "457555462", "US_SSN"),
        ("wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "CRYPTO"),
        ("BTC bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "CRYPTO"),
    ],
)
def test_pattern_pii(pattern_redactor, text, value, entity):
    """Presidio's recognizers find each telemetry-relevant PII type, without NER."""
    out, counts = pattern_redactor.redact_text(text)
    assert value not in out and counts[entity] == 1, (out, counts)


@pytest.mark.parametrize(
    "text",
    [
        "Order ORD-2026-3718739 total $51.92 (tracking 1Z999AA10123456784)",
        "Build 4155550100 failed; unix time 1732700000; offset 1884213",
        "Upstream 10.0.4.12, loopback 127.0.0.1 and ::1, LAN 192.168.1.20, link-local fe80::1ff:fe23:4567:890a",
        "Running v1.2.3.4, driver version 10.2.0.1, pip install pkg==2.0.0.1",
        "Error 0x80070005 at line 1014; exit code 137; HTTP 503; ORA-00942; SQLSTATE 40001",
        "sha256:425c9e15aa3a4f0246d2cd6ea0ce1b29a5e9000cd4a5c3fcfcb866b45b8eeaca md5 9e107d9d372bb6826bd81d3542a419d6",
        "Card ending in 4242; invoice INV-2026-000123 total 1,234.56 EUR",
        "The ARN is arn:aws:iam::123456789012:role/etl-runner",
        '{"order_id":"ORD-2026-1222061","status":"delivered","carrier":"DHL","amount":169.93}',
        "git@github.com:acme/payments.git",
    ],
)
def test_technical_look_alikes_survive(pattern_redactor, text):
    """Ids, versions, internal addresses, error codes, hashes and prices are not PII."""
    assert pattern_redactor.redact_text(text) == (text, {})


def test_structured_fields_without_ner(pattern_redactor):
    """Fields named for a person or place are redacted by name, in JSON and in key=value text."""
    out, counts = pattern_redactor.redact_json(
        {
            "customer_name": "olivia brown",
            "shipping_address": "4 Rue de Rivoli",
            "mobile_number": "07700 900461",
            "name": "get_order_status",
        }
    )
    assert "olivia" not in str(out) and "Rivoli" not in str(out) and "900461" not in str(out)
    assert out["name"] == "get_order_status"
    assert counts == {"PERSON": 1, "LOCATION": 1, "PHONE_NUMBER": 1}
    out, counts = pattern_redactor.redact_text("audit customer_name=Olivia Brown plan=pro city: Hamburg")
    assert "Olivia" not in out and "Hamburg" not in out and "plan=pro" in out


def test_context_names_and_addresses_without_ner(pattern_redactor):
    """Forms of address, sign-offs and street addresses are caught even in pattern-only mode."""
    for text, gone in [
        ("Dear Priya Patel, thanks", "Patel"),
        ("Thanks,\nSophie Laurent\nHead of Ops", "Laurent"),
        ("The account is under the name Noah Dubois.", "Dubois"),
        ("Ship it to 221 Baker Street, London", "Baker Street"),
        ("Lindenweg 15, Berlin", "Lindenweg"),
    ]:
        out, _ = pattern_redactor.redact_text(text)
        assert gone not in out, out


def test_ner_person_and_location(ner_redactor):
    """With a spaCy model, names and places in free prose are found by NER."""
    out, counts = ner_redactor.redact_text(
        "Lukas Schneider called again; he moved to Lisbon and wants it shipped there."
    )
    assert "Schneider" not in out and "Lisbon" not in out
    assert counts["PERSON"] == 1 and counts["LOCATION"] == 1


def test_ner_leaves_tools_and_codes_alone(ner_redactor):
    """Product, model and vendor names, error codes and instructions are not people or places."""
    for text in [
        "Claude Sonnet refused, Gemini answered, GPT-4o timed out.",
        "Please use the Kafka topic tokentrail.events; dashboards are in Grafana.",
        "Summarise this: the export drops the last row since v3.2.1.",
        "403 Forbidden from FedEx API",
        "ORA-00942 and TCK-92982 again",
        "Latency p95 went from 420ms to 1.8s",
        "We offer Starter, Pro and Enterprise plans.",
    ]:
        assert ner_redactor.redact_text(text) == (text, {}), text


def test_ner_batches_many_texts(ner_redactor, key):
    """A batch gives the same result as one text at a time (nlp.pipe batching is transparent)."""
    texts = [f"Ticket {i}: Maria Garcia in Berlin asked about order ORD-2026-{i:07d}" for i in range(40)]
    batch = ner_redactor.redact_many(texts)
    fresh = Redactor(RedactionConfig(cache_size=0), key)
    assert batch == [fresh.redact_text(t) for t in texts]
    assert all("Garcia" not in out and "Berlin" not in out for out, _ in batch)


def test_missing_configured_model_names_it(key):
    """A model named in configuration but not installed is an error that names it and the fix."""
    with pytest.raises(ValueError, match=r"'en_core_web_xl_missing'.*never downloaded.*pip install.*nlp_model=None"):
        Redactor(RedactionConfig(nlp_model="en_core_web_xl_missing"), key)


def test_pattern_only_is_announced_once(caplog, key):
    """Pattern-only mode is said once per process, however many redactors are built."""
    import logging

    from tokentrail.redaction import redactor as module

    module._announced.clear()
    with caplog.at_level(logging.INFO, logger="tokentrail.redaction"):
        Redactor(RedactionConfig(nlp_model=None), key)
        Redactor(RedactionConfig(nlp_model=None), key)
    notes = [r for r in caplog.records if "pattern-only" in r.getMessage()]
    assert len(notes) == 1


def test_ner_offsets_in_long_texts(ner_redactor):
    """Texts longer than one NER chunk are cut at whitespace and offsets still land on the name."""
    text = "filler " * 10_000 + "Maria Garcia lives in Berlin. " + "more " * 5_000
    out, counts = ner_redactor.redact_text(text)
    assert "Garcia" not in out and "Berlin" not in out and out.startswith("filler filler")
    assert counts["PERSON"] == 1 and counts["LOCATION"] == 1


@pytest.mark.parametrize(
    "text, name",
    [
        ("note: call Radhika Subramanian on (415) 555-0148 re the refund", "Radhika Subramanian"),
        ("Escalate to Şükrü Çelik before Friday.", "Şükrü Çelik"),
        ("please text Łucja Wróblewska tomorrow", "Łucja Wróblewska"),
        ("Reach out to Jan van der Berg about the invoice", "Jan van der Berg"),
    ],
)
def test_names_after_a_contact_verb_without_ner(pattern_redactor, text, name):
    """A capitalised pair after call/contact/text/escalate to... is a person, also pattern-only."""
    out, counts = pattern_redactor.redact_text(text)
    assert name.split()[0] not in out and name.split()[-1] not in out and counts["PERSON"] == 1, out


@pytest.mark.parametrize(
    "text",
    ["ask Claude Code to refactor this", "call Support", "contact Customer Success", "ping Grafana Alerting now"],
)
def test_contact_verbs_before_tools_and_teams_keep_them(pattern_redactor, text):
    """Tools, vendors, teams and single words after a contact verb are not people."""
    assert pattern_redactor.redact_text(text) == (text, {})
