"""The evidence key and the receipt stages, without a store."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tokentrail.stream.evidence.receipts import (
    EphemeralEvidenceKey,
    content_hmac,
    key_id,
    load_evidence_key,
    receipt_stages,
)


def test_key_from_variable_or_file(tmp_path):
    """The key comes from the variable or the file (stripped); both set, a short key or a missing file are errors."""
    assert load_evidence_key(False, {"TOKENTRAIL_EVIDENCE_KEY": " k" * 10}) == (" k" * 10).strip().encode()
    path = tmp_path / "key"
    path.write_text("f" * 20 + "\n")
    assert load_evidence_key(False, {"TOKENTRAIL_EVIDENCE_KEY_FILE": str(path)}) == b"f" * 20
    for env, message in (
        ({"TOKENTRAIL_EVIDENCE_KEY": "k" * 20, "TOKENTRAIL_EVIDENCE_KEY_FILE": str(path)}, "only one"),
        ({"TOKENTRAIL_EVIDENCE_KEY": "short"}, "at least 16"),
        ({"TOKENTRAIL_EVIDENCE_KEY_FILE": str(tmp_path / "missing")}, "cannot be read"),
    ):
        with pytest.raises(ValueError, match=message):
            load_evidence_key(True, env)


def test_without_a_key_replay_gets_an_ephemeral_one_and_the_worker_none(caplog):
    """replay/demo (ephemeral allowed): a random key and a warning; the worker: no receipts and a warning."""
    ephemeral = load_evidence_key(True, {})
    assert isinstance(ephemeral, EphemeralEvidenceKey) and len(ephemeral) == 32
    assert load_evidence_key(True, {}) != ephemeral
    assert load_evidence_key(False, {}) is None
    assert sum("no evidence key" in r.getMessage() for r in caplog.records) == 3


def test_stages_hash_before_redaction_and_stamp_rows():
    """The hash is of the text the first stage saw, even if a later stage rewrites it; calls get provenance."""
    key = b"k" * 20
    before, after = receipt_stages(key=key, redactor=SimpleNamespace(key_id="abcd1234", config=None), overrides=None)
    doc = {"type": "tool_call", "tool": {"arguments": {"email": "jo@example.com"}, "result": None}}
    item = SimpleNamespace(doc=doc, event=SimpleNamespace(event_id="e1"))
    batch = SimpleNamespace(accepted=[item], rows={})
    before(batch)
    doc["tool"]["arguments"] = {"email": "<EMAIL_ADDRESS>"}  # what Redact does in between
    batch.rows = {"events": [{"event_id": "e1"}, {"event_id": "e2"}], "calls": [{"event_id": "e3"}]}
    after(batch)
    first, other = batch.rows["events"]
    assert first["content_parts"] == ["tool.arguments"]
    assert first["content_hmacs"] == [content_hmac(key, '{"email":"jo@example.com"}')]
    assert first["content_key_id"] == key_id(key)
    assert other["content_hmacs"] == [] and other["content_key_id"] == ""
    (call,) = batch.rows["calls"]
    assert call["redaction_key_id"] == "abcd1234" and call["price_table"].startswith("genai-prices ")
    assert call["redaction_config"] == "none"
