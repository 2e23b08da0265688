"""Content receipts: a keyed hash of every message, output, tool argument and tool result, taken
from the raw text before redaction, so the store can later confirm an original without holding it.

Two stages share one state: `HashRawContent` runs after Dedupe and before Redact (it sees the
text as the service sent it), `StampRows` runs after BuildRows (which rebuilds `batch.rows`) and
puts the hashes on each event's `events` row (`content_parts` / `content_hmacs`, parallel arrays)
and the provenance on each `calls` row (price table, redaction key id and config hash, evidence
key id), so that "what changed?" can list price-table and redaction-config changes.

The key (`TOKENTRAIL_EVIDENCE_KEY`, or a file named by `TOKENTRAIL_EVIDENCE_KEY_FILE`) is not the
pseudonym key: one who may read pseudonyms need not be able to confirm texts. Without it
`replay`/`demo` use an ephemeral key and say so (hashes from that run cannot be verified later);
the worker refuses to start (exit 2, naming both variables; see docs/evidence.md, "keys").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tokentrail.evidence")

KEY_ENV = "TOKENTRAIL_EVIDENCE_KEY"
KEY_FILE_ENV = "TOKENTRAIL_EVIDENCE_KEY_FILE"
MIN_KEY_CHARS = 16
_KEY_ID_MESSAGE = b"tokentrail evidence key id"
_HOW = f"set {KEY_ENV} (at least {MIN_KEY_CHARS} characters), or {KEY_FILE_ENV} naming a file holding it"
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


class EphemeralEvidenceKey(bytes):
    """A key made up for this process: hashes under it can never be verified after the process ends."""


def load_evidence_key(allow_ephemeral: bool, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The evidence key from the environment; ephemeral (with a warning) if allowed, else None.

    A key that is set but unusable (both variables, unreadable file, too short) raises ValueError:
    a misconfiguration must not silently turn receipts off.
    """
    from tokentrail.redaction.settings import read_secret

    env = os.environ if environ is None else environ
    found = read_secret(env, KEY_ENV, KEY_FILE_ENV)
    if found is not None:
        raw = found[0]
    elif allow_ephemeral:
        log.warning(
            "no evidence key configured: content hashes from this run use an ephemeral key and cannot be "
            "verified later (%s)",
            _HOW,
        )
        return EphemeralEvidenceKey(secrets.token_bytes(32))
    else:
        log.warning("no evidence key configured: content hashes are not stored (%s)", _HOW)
        return None
    if len(raw) < MIN_KEY_CHARS:
        raise ValueError(f"the evidence key is {len(raw)} characters; it needs at least {MIN_KEY_CHARS}: {_HOW}")
    return raw


def key_id(key: bytes) -> str:
    """Names the key without revealing it (8 hex digits), as `Redactor.key_id` does for the pseudonym key."""
    return hmac.new(key, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:8]


def canonical_text(value: Any) -> str:
    """The text that is hashed: a string as sent; any other JSON value in canonical JSON (sorted keys, compact)."""
    return value if isinstance(value, str) else _CANONICAL(value)


def content_hmac(key: bytes, text: str) -> str:
    """HMAC-SHA256 of the UTF-8 text, hex."""
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def content_parts(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(part label, raw text) for each hashed part of an event document, labels stable and ordered."""
    kind = doc.get("type")
    if kind == "prompt":
        for i, message in enumerate(doc.get("messages") or []):
            yield f"message[{i}]:{message.get('role', '')}", canonical_text(message.get("content", ""))
    elif kind == "output":
        for i, message in enumerate(doc.get("output") or []):
            yield f"output[{i}]", canonical_text(message.get("content", ""))
        for i, call in enumerate(doc.get("tool_calls") or []):
            yield f"tool_call[{i}].arguments", canonical_text(call.get("arguments"))
    elif kind == "tool_call":
        tool = doc.get("tool") or {}
        if tool.get("arguments") is not None:
            yield "tool.arguments", canonical_text(tool["arguments"])
        if tool.get("result") is not None:
            yield "tool.result", canonical_text(tool["result"])


@dataclass(frozen=True)
class Provenance:
    """What produced a call row's numbers and text: stamped on every `calls` row."""

    price_table: str
    redaction_key_id: str
    redaction_config: str
    evidence_key_id: str


@dataclass
class _Shared:
    key: bytes | None
    provenance: Provenance
    pending: dict[Any, tuple[list[str], list[str]]] = field(default_factory=dict)  # by event_id (a UUID)


class HashRawContent:
    """Before Redact: the keyed hash of each raw text part, held for StampRows (same batch)."""

    def __init__(self, shared: _Shared) -> None:
        self.shared = shared

    def __call__(self, batch: Any) -> None:
        key = self.shared.key
        pending = self.shared.pending
        pending.clear()
        if key is None:
            return
        # The keyed state is set up once and copied per text (as the Redactor does for pseudonyms):
        # same digests as content_hmac, without re-deriving the padded key every time.
        base = hmac.new(key, digestmod=hashlib.sha256)
        for item in batch.accepted:
            labels, digests = [], []
            for label, text in content_parts(item.doc):
                mac = base.copy()
                mac.update(text.encode("utf-8", "surrogatepass"))
                labels.append(label)
                digests.append(mac.hexdigest())
            pending[item.event.event_id] = (labels, digests)


class StampRows:
    """After BuildRows: hashes onto `events` rows, provenance onto `calls` rows."""

    def __init__(self, shared: _Shared) -> None:
        self.shared = shared

    def __call__(self, batch: Any) -> None:
        pending = self.shared.pending
        evidence_key_id = self.shared.provenance.evidence_key_id
        for row in batch.rows.get("events", ()):
            labels, digests = pending.get(row["event_id"], ((), ()))
            row["content_parts"] = list(labels)
            row["content_hmacs"] = list(digests)
            row["content_key_id"] = evidence_key_id if digests else ""
        stamp = self.shared.provenance
        for row in batch.rows.get("calls", ()):
            row["price_table"] = stamp.price_table
            row["redaction_key_id"] = stamp.redaction_key_id
            row["redaction_config"] = stamp.redaction_config
        pending.clear()


def price_table_id(overrides: Mapping[Any, Any] | None) -> str:
    """`genai-prices <version>`, plus a hash of the overrides when there are any."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = f"genai-prices {version('genai-prices')}"
    except PackageNotFoundError:
        base = "genai-prices unknown"
    if not overrides:
        return base
    text = _CANONICAL(sorted([list(map(str, k)), [str(x) for x in vars_of(v)]] for k, v in overrides.items()))
    return f"{base} + overrides {hashlib.sha256(text.encode()).hexdigest()[:8]}"


def vars_of(rates: Any) -> list[Any]:
    return [getattr(rates, name) for name in ("input", "cached_input", "output")]


def redaction_config_id(config: Any) -> str:
    """A short hash of the redaction settings that change what is found (not the key, not tuning knobs)."""
    if config is None:
        return "none"
    relevant = {
        "entities": sorted(config.entities),
        "thresholds": {k: float(v) for k, v in sorted(dict(config.thresholds).items())},
        "nlp_model": config.nlp_model,
        "phone_regions": list(config.phone_regions),
        "store_raw_text": bool(config.store_raw_text),
        "allow_list": sorted(config.allow_list),
    }
    return hashlib.sha256(_CANONICAL(relevant).encode()).hexdigest()[:8]


def receipt_stages(*, key: bytes | None, redactor: Any, overrides: Mapping[Any, Any] | None) -> tuple[Any, Any]:
    """The pair of stages: put the first before Redact, the second after BuildRows."""
    provenance = Provenance(
        price_table=price_table_id(overrides),
        redaction_key_id=getattr(redactor, "key_id", "") if redactor is not None else "raw",
        redaction_config=redaction_config_id(getattr(redactor, "config", None)),
        evidence_key_id=key_id(key) if key is not None else "",
    )
    shared = _Shared(key, provenance)
    return HashRawContent(shared), StampRows(shared)


def with_receipts(pipeline: Any, *, key: bytes | None, redactor: Any, overrides: Mapping[Any, Any] | None) -> Any:
    """A new Pipeline with the receipt stages inserted around Redact and BuildRows."""
    from ..batch import Pipeline
    from ..redact_stage import Redact
    from ..rows import BuildRows

    before, after = receipt_stages(key=key, redactor=redactor, overrides=overrides)
    stages: list[Any] = []
    for stage in pipeline.stages:
        if isinstance(stage, Redact):
            stages.append(before)
        stages.append(stage)
        if isinstance(stage, BuildRows):
            stages.append(after)
    if before not in stages:  # no Redact stage (raw storage by choice): hash right after validation/dedupe
        at = next(i for i, s in enumerate(stages) if isinstance(s, BuildRows))
        stages.insert(at, before)
    return Pipeline(stages)
