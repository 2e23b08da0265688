"""PII and secret redaction for model telemetry: what the stream processor calls before storing text.

    from tokentrail.redaction import Redactor, RedactionConfig, load_key
    redactor = Redactor(RedactionConfig(), load_key(allow_ephemeral=False))
    clean, counts = redactor.redact_json({"messages": [...]})   # counts: Counter by entity type
    text, counts = redactor.redact_raw(dead_letter_payload)       # JSON if it parses, else text
    results = redactor.redact_many(batch_of_values)              # one NER pass for the batch

`build_redactor()` does the same from the environment (see settings.py for the variables).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (
    DEFAULT_ENTITIES,
    DEFAULT_THRESHOLDS,
    NER_ENTITIES,
    OPTIONAL_ENTITIES,
    PII_ENTITIES,
    SECRET_ENTITIES,
    RedactionConfig,
)
from .settings import config_from_env, is_ephemeral_key, load_key, require_persistent_key

if TYPE_CHECKING:
    from .redactor import Redactor

__all__ = [
    "Redactor",
    "RedactionConfig",
    "load_key",
    "is_ephemeral_key",
    "require_persistent_key",
    "build_redactor",
    "config_from_env",
    "DEFAULT_ENTITIES",
    "DEFAULT_THRESHOLDS",
    "PII_ENTITIES",
    "NER_ENTITIES",
    "SECRET_ENTITIES",
    "OPTIONAL_ENTITIES",
]


def __getattr__(name: str) -> Any:
    # The Redactor pulls in Presidio and spaCy: only when used, so that reading the
    # entity names (tokentrail.redaction.config) stays cheap for the stream stages and the CLI.
    if name == "Redactor":
        from .redactor import Redactor

        return Redactor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_redactor(
    *, allow_ephemeral_key: bool = False, config: RedactionConfig | None = None, key: bytes | None = None
) -> Redactor:
    """A Redactor configured from the environment (or with `key`, one already loaded). Raises
    ValueError (saying the fix) when the key or the configuration is missing or wrong: a worker
    must not start without redaction."""
    from .redactor import Redactor

    return Redactor(config or config_from_env(), key if key is not None else load_key(allow_ephemeral_key))
