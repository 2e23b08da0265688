"""Everything redaction reads from the environment, in one place: the pseudonym key and overrides.

TOKENTRAIL_REDACTION_KEY            the HMAC key for pseudonyms (at least 16 characters)
TOKENTRAIL_REDACTION_KEY_FILE       or a file holding it (a mounted secret); set only one
TOKENTRAIL_REDACTION_NLP_MODEL      spaCy model for PERSON/LOCATION, "auto", or "none"
TOKENTRAIL_REDACTION_STORE_RAW_TEXT "1"/"true" keeps PII by policy (secrets are still removed)
TOKENTRAIL_REDACTION_PROCESSES      worker processes for analysis (default 1)
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .config import AUTO_MODEL, RedactionConfig

__all__ = [
    "load_key",
    "config_from_env",
    "is_ephemeral_key",
    "require_persistent_key",
    "EphemeralKey",
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MIN_KEY_CHARS",
]

log = logging.getLogger("tokentrail.redaction")

KEY_ENV = "TOKENTRAIL_REDACTION_KEY"
KEY_FILE_ENV = "TOKENTRAIL_REDACTION_KEY_FILE"
MODEL_ENV = "TOKENTRAIL_REDACTION_NLP_MODEL"
RAW_ENV = "TOKENTRAIL_REDACTION_STORE_RAW_TEXT"
PROCESSES_ENV = "TOKENTRAIL_REDACTION_PROCESSES"
MIN_KEY_CHARS = 16
_HOW = (
    "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'` and put it in "
    f"{KEY_ENV}, or in a file named by {KEY_FILE_ENV}"
)


class EphemeralKey(bytes):
    """A key made up for this process (no key configured): bytes like any key, marked so that
    whoever stores pseudonyms can refuse it (`require_persistent_key`)."""


def is_ephemeral_key(key: bytes) -> bool:
    """True for a key `load_key` made up because none was configured."""
    return isinstance(key, EphemeralKey)


def require_persistent_key(dsn: str, key_is_ephemeral: bool) -> None:
    """Refuse an ephemeral key unless the store is embedded (a `chdb://` DSN).

    Pseudonyms under a throwaway key join nothing from any other run: fine for a demo's embedded
    store, silent damage in a shared ClickHouse. Pass the DSN the sink will actually use, resolved
    (`tokentrail.sinks.connection.resolve_dsn`), not the flag's value, which may be unset.
    Raises ValueError saying the fix.
    """
    if not key_is_ephemeral:
        return
    try:
        scheme = urlparse(dsn.strip()).scheme.lower()
    except (AttributeError, ValueError):
        scheme = ""
    if scheme == "chdb":
        return
    raise ValueError(
        "refusing an ephemeral redaction key with a ClickHouse server: pseudonyms in it would match "
        f"no other run's. Configure a key ({_HOW}); an ephemeral key is only for an embedded chdb:// store"
    )


def read_secret(env: Mapping[str, str], value_var: str, file_var: str) -> tuple[bytes, str] | None:
    """A secret set as a value (`value_var`) or as a file (`file_var`), stripped, with where it came
    from; None when neither is set. Both set, or an unreadable file, is a ValueError naming the fix.
    The one reader for the project's keys (pseudonyms here, evidence receipts in the stream)."""
    value, path = env.get(value_var, ""), env.get(file_var, "")
    if value and path:
        raise ValueError(f"both {value_var} and {file_var} are set: set only one")
    if path:
        try:
            return Path(path).read_bytes().strip(), f"{file_var}={path}"
        except OSError as exc:
            raise ValueError(f"{file_var}={path} cannot be read ({exc.strerror}): point it at the key file") from None
    if value:
        return value.strip().encode(), value_var
    return None


def load_key(allow_ephemeral: bool, environ: Mapping[str, str] | None = None) -> bytes:
    """The pseudonym key. Pseudonyms are only stable (and only joinable across runs) under one key.

    Without a configured key this raises ValueError saying how to set one, unless
    `allow_ephemeral` (demo, replay, tests): then a random key for this process (an EphemeralKey),
    with a warning, because tokens from this run will not match any other run's.
    """
    env = os.environ if environ is None else environ
    found = read_secret(env, KEY_ENV, KEY_FILE_ENV)
    if found is not None:
        raw, source = found
    elif allow_ephemeral:
        log.warning(
            "no redaction key configured: using an ephemeral key, so pseudonyms from this run "
            "will not match any other run's (%s for stable ones)",
            KEY_ENV,
        )
        return EphemeralKey(secrets.token_bytes(32))
    else:
        raise ValueError(f"no redaction key: {_HOW}. The key makes pseudonyms stable; keep it secret.")
    if len(raw) < MIN_KEY_CHARS:
        raise ValueError(
            f"the redaction key from {source} is {len(raw)} characters; it needs at least {MIN_KEY_CHARS}: {_HOW}"
        )
    return raw


def config_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> RedactionConfig:
    """A RedactionConfig from the environment; keyword overrides win."""
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {}
    model = env.get(MODEL_ENV, "").strip()
    if model:
        kwargs["nlp_model"] = None if model.lower() in ("none", "off", "") else model
    raw = env.get(RAW_ENV, "").strip().lower()
    if raw:
        if raw not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(f"{RAW_ENV}={raw!r}: use true or false")
        kwargs["store_raw_text"] = raw in ("1", "true", "yes")
    procs = env.get(PROCESSES_ENV, "").strip()
    if procs:
        if not procs.isdigit():
            raise ValueError(f"{PROCESSES_ENV}={procs!r}: use a whole number such as 2")
        kwargs["processes"] = int(procs)
    kwargs.update(overrides)
    kwargs.setdefault("nlp_model", AUTO_MODEL)
    return RedactionConfig(**kwargs)
