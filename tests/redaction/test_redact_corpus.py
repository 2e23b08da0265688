"""Quality on the labelled corpus (redaction/corpus.json): nothing labelled survives, technical text does."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tokentrail.redaction import DEFAULT_ENTITIES, NER_ENTITIES
from tokentrail.redaction.quality import CORPUS_PATH, evaluate, load_corpus


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_corpus_is_broad(corpus):
    """At least 200 snippets; every default entity type labelled; prose, JSON, config and logs."""
    assert len(corpus) >= 200
    labelled = Counter(lab.entity for s in corpus for lab in s.labels)
    assert set(DEFAULT_ENTITIES) <= set(labelled), set(DEFAULT_ENTITIES) - set(labelled)
    assert {"prose", "json", "config", "log", "code"} <= {s.form for s in corpus}
    assert any("\n" in lab.value for s in corpus for lab in s.labels if lab.entity == "PRIVATE_KEY")
    assert sum(len(s.keep) for s in corpus) >= 300


def test_corpus_has_no_literal_credentials():
    """Credential-shaped values are generated at load time, so secret scanners have nothing to flag."""
    raw = json.loads(CORPUS_PATH.read_text())
    text = "\n".join(item["text"] for item in raw)
    for prefix in ("sk-proj-", "sk-ant-", "AKIA", "ghp_", "xoxb-", "sk_live_", "AIza", "-----BEGIN"):
        assert prefix not in text, prefix


def test_no_labelled_value_survives_with_ner(ner_redactor, corpus):
    """With NER on, every labelled PII value and secret is gone; >= 95% of technical tokens survive."""
    report = evaluate(ner_redactor, corpus)
    print(report.table())
    assert report.leaks == []
    assert report.survival >= 0.95, report.lost
    assert report.precision >= 0.95, report.false_positives


def test_pattern_only_removes_everything_but_ner_entities(pattern_redactor, corpus):
    """Without a model, every label except PERSON/LOCATION is still removed; technical text survives."""
    report = evaluate(pattern_redactor, corpus, entities=set(DEFAULT_ENTITIES) - set(NER_ENTITIES))
    print(report.table())
    assert report.leaks == []
    assert report.survival >= 0.95, report.lost
