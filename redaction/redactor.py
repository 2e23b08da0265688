"""The Redactor: keyed pseudonyms in place of what the detector finds, for strings and JSON.

Built once per worker (the detector and the spaCy model load in __init__), then called per batch.
A found value becomes `<ENTITY:xxxxxxxxxxxxxxxx>`, 16 hex digits (64 bits) of HMAC-SHA256 over the
canonical value under the deployment's key: the same value gives the same token under one key (so
joins, loop detection and "which customer" questions still work), nothing about it can be learned
without the key, and collisions stay unlikely up to billions of distinct values (32 bits collide
around 10^5). The first 8 digits are what tokens were before they grew, so older rows still match
by prefix. Identifiers stored in their own columns (user_id, session_id) get `pseudonym()`: 16 hex
digits under a separate domain of the same key. `key_id` names the key without revealing it, so a
rotated key shows in the stored rows. Results are cached by a hash of the string, because in
telemetry the same system prompt, template and conversation history arrive again with every call.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections import Counter
from functools import lru_cache
from typing import Any

from .config import SECRET_ENTITIES, RedactionConfig
from .dead_letters import redact_payloads
from .detector import MODEL_INSTALL_HINT, Detector
from .names import pii_key_entity, pii_value_fits
from .result_cache import Result, ResultCache, content_digest
from .secret_rules import Finding, is_placeholder, secret_name_entity
from .settings import is_ephemeral_key
from .structured import digits_entity, iban_valid, number_entity, number_key_entity, plain_key

__all__ = ["Redactor", "canonical_value", "TOKEN_HEX_DIGITS", "PSEUDONYM_HEX_DIGITS"]

log = logging.getLogger("tokentrail.redaction")

_SECRETS = frozenset(SECRET_ENTITIES)
_SEPARATORS = re.compile(r"[\s\-./()]")
TOKEN_HEX_DIGITS = 16  # 64 bits inline: see the module docstring
PSEUDONYM_HEX_DIGITS = 16  # 64 bits for identifier columns (unchanged, so stored user ids still join)
_TOKEN = re.compile(r"^<[A-Z_]+:[0-9a-f]{8}(?:[0-9a-f]{8})?>$")  # already redacted (older 8-digit tokens too)
_DIGIT_SEPARATORS = re.compile(r"[\s\-./()+]")
_KEY_ID_MESSAGE = b"tokentrail-key-id\x00"
_POOL_MIN_CHARS = 20_000  # below this a batch is analysed in-process: IPC would cost more than it saves
_announced: set[str] = set()
_CLEAN: Result = (None, ())  # the result for a string with nothing found: shared, compared by identity
TOO_DEEP = "<REDACTED:nested too deep to redact>"  # what a value deeper than the stack can walk becomes


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


# What a dict key says about the values under it, and whether the key itself needs analysing:
# (entity of a string under it, entity of a number under it, analyse the key).
KeyPlan = tuple[str | None, str | None, bool]


@lru_cache(maxsize=8192)
def _key_plan(name: str) -> KeyPlan:
    return secret_name_entity(name) or pii_key_entity(name), number_key_entity(name), not plain_key(name)


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
        self.key_id = hmac.new(key, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:8]
        self.key_is_ephemeral = is_ephemeral_key(key)
        self.detector = Detector(self.config)
        self._cache = ResultCache(self.config.cache_size)
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
        """Every string in a JSON value at any depth, keys included, and the numbers that are PII:
        under a key naming a PII kind (`card_number`, `phoneNo`, `iban`, `ssn`, `account_id`) or
        valid card numbers anywhere. Structure is kept; a replaced number becomes its token string.
        Use it (or `redact_many`) for free-form `attributes` and error messages too."""
        return self.redact_many([value])[0]

    def redact_raw(self, payload: bytes | str) -> tuple[str, Counter[str]]:
        """A dead letter's payload: as JSON when it parses (identifier fields pseudonymised as in
        valid events, everything else as `redact_json`), as text when it does not."""
        return self.redact_raw_many([payload])[0]

    def redact_raw_many(self, payloads: list[bytes | str]) -> list[tuple[str, Counter[str]]]:
        """`redact_raw` for a batch: one detector pass for all."""
        return redact_payloads(self, payloads)

    def redact_many(self, values: list[Any]) -> list[tuple[Any, Counter[str]]]:
        """A batch of JSON values (events' free text, dead-letter payloads): one NER pass for all.

        A value with nothing to replace and no PII- or secret-named key comes back as it is, not
        copied: most telemetry has nothing to hide, and rebuilding it costs more than finding that out.
        """
        unique: dict[str, None] = {}
        plans: list[tuple[list[str], bool | None]] = []
        for value in values:
            strings: list[str] = []
            try:
                keyed: bool | None = _collect(value, strings)
            except RecursionError:
                strings, keyed = [], None
            plans.append((strings, keyed))
            unique.update(dict.fromkeys(strings))
        results = self._results(list(unique))
        out = []
        for value, (strings, keyed) in zip(values, plans, strict=True):
            counts: Counter[str] = Counter()
            if keyed or keyed is None or any(results[text] is not _CLEAN for text in strings):
                try:
                    if keyed is None:
                        raise RecursionError
                    value = self._rebuild(value, results, counts, None, None)
                except RecursionError:  # deeper than the stack can walk: fail closed, none of it is stored
                    log.warning("redaction: a value nested too deep to walk was replaced whole")
                    value, counts = TOO_DEEP, Counter()
            out.append((value, counts))
        return out

    def token(self, entity: str, value: str) -> str:
        """`<ENTITY:xxxxxxxxxxxxxxxx>` for a value: stable under this key, meaningless without it."""
        mac = self._mac.copy()
        mac.update(canonical_value(entity, value).encode("utf-8", "surrogatepass"))
        return f"<{entity}:{mac.hexdigest()[:TOKEN_HEX_DIGITS]}>"

    def pseudonym(self, value: str) -> str:
        """The pseudonym of an identifier stored in its own column (user_id, session_id): 16 hex
        digits, stable under this key. The one function for identifiers: valid events and dead
        letters both use it, so a user's dead letters join their events."""
        mac = self._mac.copy()
        mac.update(b"id\x00" + value.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()[:PSEUDONYM_HEX_DIGITS]

    @property
    def pattern_only(self) -> bool:
        return self.detector.pattern_only

    @property
    def cache_stats(self) -> dict[str, int]:
        return {"hits": self._cache.hits, "misses": self._cache.misses, "size": len(self._cache.data)}

    def clear_cache(self) -> None:
        """Forget cached results and NER's spans (benchmarks measure a cold start with it)."""
        self._cache = ResultCache(self.config.cache_size)
        self.detector.clear_ner_cache()

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
            key = content_digest(text)
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

    def _rebuild(
        self,
        value: Any,
        results: dict[str, Result],
        counts: Counter[str],
        key_entity: str | None,
        number_kind: str | None,
    ) -> Any:
        """`value` with what was found replaced. `key_entity`: what the enclosing key says a string
        under it is ("password", "customer_name"); `number_kind`: what it says a number is."""
        if isinstance(value, str):
            redacted, found = results[value]
            if key_entity is not None and key_entity in self._entities and self._whole_value(key_entity, value, found):
                return self._replace_whole(key_entity, value, counts)
            if number_kind is not None and not found:
                entity = self._digits_value(number_kind, value)
                if entity is not None:
                    return self._replace_whole(entity, value, counts)
            counts.update(dict(found))
            return value if redacted is None else redacted
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if isinstance(k, str):
                    string_kind, number_key, analyse = _key_plan(k)
                    if analyse:
                        k = self._rebuild_key(k, results, counts, out)
                    out[k] = self._rebuild(v, results, counts, string_kind, number_key)
                else:
                    out[k] = self._rebuild(v, results, counts, None, None)
            return out
        if isinstance(value, (list, tuple)):
            return [self._rebuild(v, results, counts, key_entity, number_kind) for v in value]
        entity = number_entity(value, number_kind)
        if entity is not None and entity in self._entities and str(value) not in self._allow:
            return self._replace_whole(entity, str(value), counts, original=value)
        return value

    def _replace_whole(self, entity: str, text: str, counts: Counter[str], original: Any = None) -> Any:
        counts[entity] += 1
        if self._raw_pii and entity not in _SECRETS:
            return text if original is None else original
        return self.token(entity, text)

    @staticmethod
    def _rebuild_key(key: str, results: dict[str, Result], counts: Counter[str], siblings: dict[Any, Any]) -> str:
        """A key with its PII replaced (an email used as a key); never overwriting a sibling."""
        redacted, found = results[key]
        counts.update(dict(found))
        if redacted is None:
            return key
        unique, n = redacted, 1
        while unique in siblings:  # two spellings of one address canonicalise to one token
            n += 1
            unique = f"{redacted}#{n}"
        return unique

    def _digits_value(self, number_kind: str, value: str) -> str | None:
        """The entity a string under a number-kind key is when it is that number written out
        ("4915 1123 4567"), or a valid IBAN under an `iban` key; else None."""
        stripped = value.strip()
        if not stripped or stripped in self._allow:
            return None
        if number_kind == "IBAN_CODE" and iban_valid(stripped):
            entity: str | None = "IBAN_CODE"
        else:
            digits = _DIGIT_SEPARATORS.sub("", stripped)
            entity = digits_entity(digits, number_kind) if digits.isdigit() and digits.isascii() else None
        return entity if entity in self._entities else None

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
    """Append every string in `value` to `out`, keys that need analysing too; True if the value
    must be rebuilt whatever the detector finds: a key names a secret or a PII kind ("password",
    "card_number"), or a number is a valid card number.

    Strings inside containers are appended in the loop, not by a call each: most of an event's
    values are strings, and this walk runs on every event."""
    if isinstance(value, str):
        out.append(value)
        return False
    keyed = False
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                string_kind, number_kind, analyse = _key_plan(k)
                if analyse:
                    out.append(k)
                if string_kind is not None or number_kind is not None:
                    keyed = True
            if type(v) is str:
                out.append(v)
            elif _collect(v, out):
                keyed = True
    elif isinstance(value, (list, tuple)):
        for v in value:
            if type(v) is str:
                out.append(v)
            elif _collect(v, out):
                keyed = True
    else:
        return number_entity(value, None) is not None
    return keyed
