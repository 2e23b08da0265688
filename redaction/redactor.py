"""The Redactor: keyed pseudonyms in place of what the detector finds, for strings and JSON.

Built once per worker (the detector and the spaCy model load in __init__), then called per batch.
A found value becomes `<ENTITY:xxxxxxxx>`, eight hex digits of HMAC-SHA256 over the normalised
value under the deployment's key: the same value gives the same token under one key (so joins,
loop detection and "which customer" questions still work), and nothing about it can be learned
without the key. Results are cached by a hash of the string, because in telemetry the same system
prompt, template and conversation history arrive again with every call of a trace.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections import Counter, OrderedDict
from functools import lru_cache
from typing import Any

from .config import SECRET_ENTITIES, RedactionConfig
from .detector import MODEL_INSTALL_HINT, Detector
from .names import pii_key_entity, pii_value_fits
from .secret_rules import Finding, is_placeholder, secret_name_entity

__all__ = ["Redactor", "canonical_value"]

log = logging.getLogger("tokentrail.redaction")

_SECRETS = frozenset(SECRET_ENTITIES)
_SEPARATORS = re.compile(r"[\s\-./()]")
_TOKEN = re.compile(r"^<[A-Z_]+:[0-9a-f]{8}>$")  # already redacted
_POOL_MIN_CHARS = 20_000  # below this a batch is analysed in-process: IPC would cost more than it saves
_announced: set[str] = set()
# What redacting one string gives: the new text (None: unchanged) and the findings counted by entity.
Result = tuple[str | None, tuple[tuple[str, int], ...]]
_CLEAN: Result = (None, ())  # the result for a string with nothing found: shared, compared by identity


def canonical_value(entity: str, value: str) -> str:
    """The form that is hashed: spelling variants of one value must give one token."""
    value = value.strip()
    if entity in ("PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "US_BANK_NUMBER"):
        lead = "+" if value.startswith("+") else ""
        return lead + _SEPARATORS.sub("", value).upper()
    if entity == "IP_ADDRESS":
        try:
            return ipaddress.ip_address(value).compressed
        except ValueError:
            return value
    if entity in _SECRETS:
        return value  # exact: secrets are case-sensitive
    return " ".join(value.split()).casefold()


@lru_cache(maxsize=4096)
def _key_entity(name: str) -> str | None:
    return secret_name_entity(name) or pii_key_entity(name)


class _LRU:
    """Bounded map from a content hash to a result; the oldest entries go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[bytes, Result] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: bytes) -> Result | None:
        hit = self.data.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self.data.move_to_end(key)
        return hit

    def put(self, key: bytes, value: Result) -> None:
        if self.size <= 0:
            return
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class Redactor:
    """Replaces PII and secrets in strings and JSON values. Not thread-safe: one per worker.

    `key` is the HMAC key (see `load_key`). With `config.processes > 1`, large batches of
    uncached strings are analysed in worker processes; call `close()` (or use `with`) to stop them.
    """

    def __init__(self, config: RedactionConfig | None = None, key: bytes | str = b"") -> None:
        if isinstance(key, str):
            key = key.encode()
        if not isinstance(key, bytes) or len(key) < 16:
            raise ValueError(
                "Redactor needs a key of at least 16 bytes: use load_key() "
                "(TOKENTRAIL_REDACTION_KEY or TOKENTRAIL_REDACTION_KEY_FILE)"
            )
        self.config = config or RedactionConfig()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.detector = Detector(self.config)
        self._cache = _LRU(self.config.cache_size)
        self._allow = frozenset(self.config.allow_list)
        self._entities = frozenset(self.config.entities)
        self._raw_pii = self.config.store_raw_text
        self._pool = None
        if self.config.processes > 1:
            from .pool import WorkerPool

            self._pool = WorkerPool(self.config, self.config.processes, self.detector)
        self._announce()

    # -- what the pipeline calls ------------------------------------------------------------

    def redact_text(self, text: str) -> tuple[str, Counter[str]]:
        """One string, redacted, with its findings counted by entity type."""
        value, counts = self.redact_many([text])[0]
        return value, counts

    def redact_json(self, value: Any) -> tuple[Any, Counter[str]]:
        """Every string in a JSON value, recursively; keys, numbers and structure untouched."""
        return self.redact_many([value])[0]

    def redact_many(self, values: list[Any]) -> list[tuple[Any, Counter[str]]]:
        """A batch of JSON values (events' free text, dead-letter payloads): one NER pass for all.

        A value with nothing to replace and no PII- or secret-named key comes back as it is, not
        copied: most telemetry has nothing to hide, and rebuilding it costs more than finding that out.
        """
        unique: dict[str, None] = {}
        plans = []
        for value in values:
            strings: list[str] = []
            plans.append((strings, _collect(value, strings)))
            unique.update(dict.fromkeys(strings))
        results = self._results(list(unique))
        out = []
        for value, (strings, keyed) in zip(values, plans, strict=True):
            counts: Counter[str] = Counter()
            if keyed or any(results[text] is not _CLEAN for text in strings):
                value = self._rebuild(value, results, counts, None)
            out.append((value, counts))
        return out

    def token(self, entity: str, value: str) -> str:
        """`<ENTITY:xxxxxxxx>` for a value: stable under this key, meaningless without it."""
        mac = self._mac.copy()
        mac.update(canonical_value(entity, value).encode("utf-8", "surrogatepass"))
        return f"<{entity}:{mac.hexdigest()[:8]}>"

    def pseudonym(self, value: str) -> str:
        """A stable 16-hex-digit pseudonym for an identifier stored in its own column (user_id)."""
        mac = self._mac.copy()
        mac.update(b"id\x00" + value.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()[:16]

    @property
    def pattern_only(self) -> bool:
        return self.detector.pattern_only

    @property
    def cache_stats(self) -> dict[str, int]:
        return {"hits": self._cache.hits, "misses": self._cache.misses, "size": len(self._cache.data)}

    def clear_cache(self) -> None:
        """Forget cached results (benchmarks measure a cold start with it)."""
        self._cache = _LRU(self.config.cache_size)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Redactor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _announce(self) -> None:
        """Say once per process what this redactor can find: pattern-only must never be a surprise."""
        d = self.detector
        if not d.ner_entities:
            message = "redaction: no NER entities configured; patterns and secret rules only"
        elif d.pattern_only and self.config.nlp_model is None:
            message = (
                "redaction: pattern-only by configuration (nlp_model=None): PERSON/LOCATION only where "
                "context gives them away (Mr./Dear/'my name is', street addresses, name and address fields)"
            )
        elif d.pattern_only:
            message = (
                "redaction: no spaCy NER model installed, running pattern-only (Presidio recognizers and "
                "secret rules): PERSON/LOCATION only where context gives them away (Mr./Dear/'my name is', "
                f"street addresses, name and address fields). For NER: {MODEL_INSTALL_HINT}"
            )
        else:
            message = f"redaction: NER with spaCy model {d.model_name} (components: {', '.join(d.nlp.pipe_names)})"
        if message not in _announced:
            _announced.add(message)
            unexpected = d.pattern_only and d.ner_entities and self.config.nlp_model is not None
            (log.warning if unexpected else log.info)(message)

    def _results(self, texts: list[str]) -> dict[str, Result]:
        results: dict[str, Result] = {}
        misses, keys = [], []
        for text in texts:
            key = _digest(text)
            hit = self._cache.get(key)
            if hit is None:
                misses.append(text)
                keys.append(key)
            else:
                results[text] = hit
        if misses:
            if self._pool is not None and sum(map(len, misses)) >= _POOL_MIN_CHARS:
                found = self._pool.find_many(misses)
            else:
                found = self.detector.find_many(misses)
            for text, key, spans in zip(misses, keys, found, strict=True):
                result = self._apply(text, spans)
                self._cache.put(key, result)
                results[text] = result
        return results

    def _apply(self, text: str, spans: list[Finding]) -> Result:
        counts: Counter[str] = Counter()
        parts, pos = [], 0
        for f in spans:
            value = text[f.start : f.end]
            if value in self._allow:
                continue
            counts[f.entity] += 1
            if self._raw_pii and f.entity not in _SECRETS:
                continue
            parts.append(text[pos : f.start])
            parts.append(self.token(f.entity, value))
            pos = f.end
        if not parts:
            return (None, tuple(counts.items())) if counts else _CLEAN
        parts.append(text[pos:])
        return "".join(parts), tuple(counts.items())

    def _rebuild(self, value: Any, results: dict[str, Result], counts: Counter[str], key_entity: str | None) -> Any:
        if isinstance(value, str):
            redacted, found = results[value]
            if key_entity is not None and key_entity in self._entities and self._whole_value(key_entity, value, found):
                counts[key_entity] += 1
                return value if self._raw_pii and key_entity not in _SECRETS else self.token(key_entity, value)
            counts.update(dict(found))
            return value if redacted is None else redacted
        if isinstance(value, dict):
            return {
                k: self._rebuild(v, results, counts, _key_entity(k) if isinstance(k, str) else None)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self._rebuild(v, results, counts, key_entity) for v in value]
        return value

    def _whole_value(self, entity: str, value: str, found: tuple[tuple[str, int], ...]) -> bool:
        """A string under a secret- or person-named key ("password", "customer_name") is that thing.

        Unless the text rules already found a secret in it (then their finer spans are used), or,
        for PII keys, anything at all; and never a placeholder or an existing token.
        """
        stripped = value.strip()
        if not stripped or is_placeholder(stripped) or _TOKEN.match(stripped) or stripped in self._allow:
            return False
        if entity in _SECRETS:
            if any(e in _SECRETS for e, _ in found):
                return False
            if entity == "PASSWORD":
                return len(stripped) >= 3
            return len(stripped) >= 8 and not any(c.isspace() for c in stripped)
        return not found and pii_value_fits(entity, stripped)


def _collect(value: Any, out: list[str]) -> bool:
    """Append every string in `value` to `out`; True if a dict key names a secret or PII ("password")."""
    if isinstance(value, str):
        out.append(value)
        return False
    keyed = False
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and _key_entity(k) is not None:
                keyed = True
            keyed = _collect(v, out) or keyed
    elif isinstance(value, (list, tuple)):
        for v in value:
            keyed = _collect(v, out) or keyed
    return keyed
