"""End to end on the demo generator's traffic: what the generator hid is gone, its look-alikes stay."""

from __future__ import annotations

import json

import pytest

generator = pytest.importorskip("tokentrail.stream.synthetic")


def test_generated_secrets_and_pii_are_removed(ner_redactor):
    """Every PII and secret sample the generator injected is gone; its technical samples survive."""
    traffic = generator.generate(generator.GeneratorConfig(events=1500, seed=3, sensitive_ratio=0.3))
    values = []
    for line in traffic.lines:
        try:
            values.append(json.loads(line))
        except ValueError:
            pass
    before = "\n".join(json.dumps(v, ensure_ascii=False) for v in values)
    after = "\n".join(json.dumps(v, ensure_ascii=False) for v, _ in ner_redactor.redact_many(values))
    truth = traffic.truth
    assert truth.sensitive_samples
    for kind, samples in truth.sensitive_samples.items():
        for sample in samples:
            assert json.dumps(sample)[1:-1] not in after, kind
    kept = [t for t in truth.technical_samples if t in before]
    assert kept and all(t in after for t in kept)
