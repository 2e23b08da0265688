"""The process pool: analysis in spawned workers gives exactly the in-process result."""

from __future__ import annotations

from tokentrail.redaction import RedactionConfig, Redactor
from tokentrail.redaction import redactor as module


def test_pool_matches_in_process(pattern_redactor, key, monkeypatch):
    """With processes=2 a large batch is split across workers; tokens and counts are identical."""
    monkeypatch.setattr(module, "_POOL_MIN_CHARS", 0)
    values = [
        {"m": f"ticket {i}: user{i}@example.org, card 4539 1488 0343 6467, AKIAIOSFODNN7ABCDEF{i % 10}"}
        for i in range(60)
    ]
    with Redactor(RedactionConfig(nlp_model=None, processes=2), key) as pooled:
        assert pooled._pool is not None
        assert pooled.redact_many(values) == pattern_redactor.redact_many(values)
    assert pooled._pool is None
