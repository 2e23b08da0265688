"""PII and secret redaction for model telemetry: what the stream processor calls before storing text.

    from tokentrail.redaction import Redactor, RedactionConfig, load_key
    redactor = Redactor(RedactionConfig(), load_key(allow_ephemeral=False))
    clean, counts = redactor.redact_json({"messages": [...]})   # counts: Counter by entity type
    results = redactor.redact_many(batch_of_values)              # one NER pass for the batch

`build_redactor()` does the same from the environment (see settings.py for the variables).
"""

from __future__ import annotations

from .config import (DEFAULT_ENTITIES, DEFAULT_THRESHOLDS, NER_ENTITIES, OPTIONAL_ENTITIES, PII_ENTITIES,
                     SECRET_ENTITIES, RedactionConfig)
from .redactor import Redactor
from .settings import config_from_env, load_key

__all__ = [
    "Redactor", "RedactionConfig", "load_key", "build_redactor", "config_from_env",
    "DEFAULT_ENTITIES", "DEFAULT_THRESHOLDS", "PII_ENTITIES", "NER_ENTITIES", "SECRET_ENTITIES",
    "OPTIONAL_ENTITIES",
]


def build_redactor(*, allow_ephemeral_key: bool = False, config: RedactionConfig | None = None) -> Redactor:
    """A Redactor configured from the environment. Raises ValueError (saying the fix) when the key
    or the configuration is missing or wrong: a worker must not start without redaction."""
    return Redactor(config or config_from_env(), load_key(allow_ephemeral_key))
