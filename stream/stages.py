"""The processor's stages: small callables with one signature, `stage(batch) -> None`.

Each stage reads and extends a `Batch`; none does I/O. The faust worker and the embedded runner
both call `Pipeline.process`, so there is one code path with two drivers (docs/architecture.md,
the data flow). Expensive things (the redactor, the price book) are built once and passed in. Stateful
stages keep bounded, in-memory state keyed by event or span.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from tokentrail.collectors.events import DEFAULT_MAX_EVENT_BYTES, InvalidEvent, OutputEvent, decode_event
from tokentrail.redaction.config import SECRET_ENTITIES  # names only: no Presidio import

from .pricing import UNPRICED, Price, PriceBook

DEADLETTER_NAMESPACE = uuid.UUID("6f1c1f0e-3b59-4a8e-9a53-4f7d8c1b2a90")

# Built once: json.dumps with any option builds a new encoder on every call, a few microseconds
# that add up over several calls per event. Same output as json.dumps with these options.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_TEXT = json.JSONEncoder(ensure_ascii=False).encode
_SORTED = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


@dataclass(slots=True)
class Inbound:
    """One raw message and where it came from (`file.jsonl:17`, `tokentrail.events/2@1234`)."""

    source: str
    raw: bytes
    received_at: datetime


@dataclass(slots=True)
class Accepted:
    """A valid event on its way through: the model, its JSON form (redacted in place), findings, price."""

    inbound: Inbound
    event: Any
    doc: dict[str, Any]
    findings: Counter[str] = field(default_factory=Counter)
    price: Price | None = None


@dataclass(slots=True)
class DeadLetter:
    inbound: Inbound
    invalid: InvalidEvent
    payload: str  # the raw text, redacted by the redact stage


@dataclass
class Batch:
    """What flows through the stages. `rows` is keyed by ClickHouse table."""

    inbound: list[Inbound]
    accepted: list[Accepted] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    detections: list[dict[str, Any]] = field(default_factory=list)


Stage = Callable[[Batch], None]


class Pipeline:
    """Runs the stages in order over one batch, and adds up the time each stage takes (for benchmarks)."""

    def __init__(self, stages: Iterable[Stage]) -> None:
        self.stages = list(stages)
        self.stage_seconds: dict[str, float] = {}  # by stage class name; a second stage of one class is "Name#2"
        self._names = []
        for stage in self.stages:
            name = base = type(stage).__name__
            count = 1
            while name in self.stage_seconds:
                count += 1
                name = f"{base}#{count}"
            self.stage_seconds[name] = 0.0
            self._names.append(name)

    def process(self, inbound: list[Inbound]) -> Batch:
        batch = Batch(inbound)
        seconds, clock = self.stage_seconds, time.perf_counter
        for name, stage in zip(self._names, self.stages, strict=True):
            started = clock()
            stage(batch)
            seconds[name] += clock() - started
        return batch


def now_utc() -> datetime:
    return datetime.now(UTC)


# -- validate ---------------------------------------------------------------------------------


class Validate:
    """Decode and validate; invalid messages become dead letters with a reason (docs/events.md, the validity rules)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes

    def __call__(self, batch: Batch) -> None:
        for item in batch.inbound:
            result = decode_event(item.raw, self.max_bytes)
            if isinstance(result, InvalidEvent):
                batch.dead.append(DeadLetter(item, result, item.raw.decode("utf-8", "replace")))
                continue
            batch.accepted.append(Accepted(item, result, result.model_dump(mode="json")))
            # A receipt per delivery: duplicates are deliveries (distinct sources) beyond the first.
            batch.receipts.append({"event_id": result.event_id, "source": item.source, "received_at": item.received_at})


# -- dedupe -----------------------------------------------------------------------------------


class Dedupe:
    """Drops events whose event_id this process has already seen (bounded LRU).

    Across processes and restarts the store is the backstop: rows are keyed by event_id.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[Any, None] = OrderedDict()

    def __call__(self, batch: Batch) -> None:
        kept = []
        for item in batch.accepted:
            key = item.event.event_id
            if key in self._seen:
                self._seen.move_to_end(key)
                batch.duplicates += 1
                continue
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            kept.append(item)
        batch.accepted = kept


# -- redact -----------------------------------------------------------------------------------


class TextRedactor(Protocol):
    """What the redact stage needs from tokentrail.redaction (see Redact)."""

    def redact_many(self, values: list[Any]) -> list[tuple[Any, Counter[str]]]: ...

    def pseudonym(self, value: str) -> str: ...


def free_text(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of an event that hold free text (and so may hold PII or secrets)."""
    kind = doc["type"]
    if kind == "prompt":
        return {"messages": doc["messages"], "params": doc.get("params") or {}}
    if kind == "output":
        return {"output": doc["output"], "tool_calls": doc["tool_calls"], "error": doc.get("error")}
    return {"tool": {"arguments": doc["tool"].get("arguments"), "result": doc["tool"].get("result")}}


class Redact:
    """Replaces PII and secrets in every free-text part of each event and in dead-letter payloads."""

    def __init__(self, redactor: TextRedactor) -> None:
        self.redactor = redactor

    def __call__(self, batch: Batch) -> None:
        texts: list[Any] = [free_text(item.doc) for item in batch.accepted]
        texts += [dead.payload for dead in batch.dead]
        results = self.redactor.redact_many(texts)
        for item, (clean, findings) in zip(batch.accepted, results, strict=False):  # results: accepted, then dead
            _put_back(item.doc, clean)
            item.findings = findings
            if item.doc.get("user_id"):
                item.doc["user_id"] = self.redactor.pseudonym(item.doc["user_id"])
        for dead, (clean, _) in zip(batch.dead, results[len(batch.accepted) :], strict=True):
            dead.payload = clean


def _put_back(doc: dict[str, Any], clean: dict[str, Any]) -> None:
    if doc["type"] == "tool_call":
        doc["tool"].update(clean["tool"])
    else:
        doc.update(clean)


# -- price ------------------------------------------------------------------------------------


class PriceCalls:
    """Prices each output event; unknown models are marked unpriced, never silently zero."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book

    def __call__(self, batch: Batch) -> None:
        for item in batch.accepted:
            event = item.event
            if isinstance(event, OutputEvent):
                u = event.usage
                item.price = self.book.price(
                    event.provider, event.model, u.input_tokens, u.cached_input_tokens, u.output_tokens, event.ts
                )


# -- rows -------------------------------------------------------------------------------------


def short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def normalise_output_text(text: str) -> str:
    """Case and whitespace do not make two answers different."""
    return " ".join(text.lower().split())


class BuildRows:
    """Turns accepted events and dead letters into rows for the ClickHouse tables.

    Joins each output to its prompt (same span, same partition, so in order) to carry the
    system-prompt and prompt hashes onto the call row; the join state is a bounded LRU.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._prompts: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def __call__(self, batch: Batch) -> None:
        rows: dict[str, list[dict[str, Any]]] = {
            "events": [],
            "calls": [],
            "tool_calls": [],
            "deadletter": [],
            "receipts": batch.receipts,
            "pii_findings": [],
        }
        for item in batch.accepted:
            rows["events"].append(self._event_row(item))
            if item.findings:
                rows["pii_findings"] += self._finding_rows(item)
            kind = item.doc["type"]
            if kind == "prompt":
                self._remember_prompt(item.doc)
            elif kind == "output":
                rows["calls"].append(self._call_row(item))
            else:
                rows["tool_calls"].append(self._tool_row(item))
        rows["deadletter"] = [self._dead_row(dead) for dead in batch.dead]
        batch.rows = rows

    def _remember_prompt(self, doc: dict[str, Any]) -> None:
        system = "\n".join(m["content"] for m in doc["messages"] if m["role"] == "system")
        whole = _TEXT([[m["role"], m["content"]] for m in doc["messages"]])
        self._prompts[doc["span_id"]] = (short_hash(system) if system else "", short_hash(whole))
        if len(self._prompts) > self.capacity:
            self._prompts.popitem(last=False)

    @staticmethod
    def _common(item: Accepted) -> dict[str, Any]:
        e = item.event
        return {
            "event_id": e.event_id,
            "ts": e.ts,
            "trace_id": e.trace_id,
            "span_id": e.span_id,
            "parent_span_id": e.parent_span_id or "",
            "tenant": e.tenant,
            "service": e.service,
            "environment": e.environment,
            "feature": e.feature,
        }

    def _event_row(self, item: Accepted) -> dict[str, Any]:
        doc = item.doc
        return {
            **self._common(item),
            "type": doc["type"],
            "received_at": item.inbound.received_at,
            "session_id": doc.get("session_id") or "",
            "user": doc.get("user_id") or "",
            "provider": doc.get("provider") or "",
            "model": doc.get("model") or "",
            "payload": _COMPACT(doc),
        }

    def _call_row(self, item: Accepted) -> dict[str, Any]:
        e, doc = item.event, item.doc
        price = item.price or UNPRICED
        text = "\n".join(m["content"] for m in doc["output"])
        tool_calls = doc["tool_calls"]
        tool_part = _SORTED([[t["name"], t["arguments"]] for t in tool_calls]) if tool_calls else ""
        system_hash, prompt_hash = self._prompts.get(e.span_id, ("", ""))
        error = doc.get("error")
        return {
            **self._common(item),
            "session_id": doc.get("session_id") or "",
            "user": doc.get("user_id") or "",
            "provider": e.provider,
            "model": e.model,
            "response_model": e.response_model or "",
            "prompt_id": e.prompt_id or "",
            "prompt_version": e.prompt_version or "",
            "system_prompt_hash": system_hash,
            "prompt_hash": prompt_hash,
            "input_tokens": e.usage.input_tokens,
            "cached_input_tokens": e.usage.cached_input_tokens,
            "output_tokens": e.usage.output_tokens,
            "reasoning_tokens": e.usage.reasoning_tokens,
            "cost_usd": price.cost_usd,
            "priced": 1 if price.priced else 0,
            "latency_ms": e.latency_ms,
            "ttft_ms": e.ttft_ms,
            "status": "error" if error or e.finish_reason == "error" else "ok",
            "finish_reason": e.finish_reason or "",
            "error_type": error["type"] if error else "",
            "tool_call_count": len(tool_calls),
            "tool_names": [t["name"] for t in tool_calls],
            "output_text": text,
            "output_hash": short_hash(normalise_output_text(text) + "\x00" + tool_part),
        }

    def _tool_row(self, item: Accepted) -> dict[str, Any]:
        tool = item.doc["tool"]
        return {
            **self._common(item),
            "tool_name": tool["name"],
            "call_id": tool.get("call_id") or "",
            "arguments": _SORTED(tool.get("arguments")),
            "result": _TEXT(tool.get("result")),
            "status": tool.get("status") or "ok",
            "duration_ms": tool.get("duration_ms"),
        }

    @staticmethod
    def _finding_rows(item: Accepted) -> list[dict[str, Any]]:
        e = item.event
        return [
            {
                "event_id": e.event_id,
                "entity": entity,
                "count": count,
                "is_secret": 1 if entity in SECRET_ENTITIES else 0,
                "ts": e.ts,
                "type": e.type,
                "trace_id": e.trace_id,
                "tenant": e.tenant,
                "service": e.service,
                "feature": e.feature,
            }
            for entity, count in item.findings.items()
            if count
        ]

    @staticmethod
    def _dead_row(dead: DeadLetter) -> dict[str, Any]:
        digest = hashlib.sha256(dead.inbound.raw).hexdigest()
        return {
            "id": uuid.uuid5(DEADLETTER_NAMESPACE, f"{dead.inbound.source}\x00{digest}"),
            "received_at": dead.inbound.received_at,
            "reason": dead.invalid.reason,
            "field": dead.invalid.field,
            "detail": dead.invalid.detail[:1000],
            "source": dead.inbound.source,
            "payload": dead.payload,
        }


def build_pipeline(
    *,
    prices: PriceBook,
    redactor: TextRedactor | None,
    allow_raw_text: bool = False,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    detectors: Iterable[Stage] = (),
) -> Pipeline:
    """The standard stage list; per-trace detectors run last, over redacted, priced events.

    Fails closed: without a `redactor` the pipeline would store prompts and outputs as sent, so
    that is a construction error unless `allow_raw_text=True` says raw storage is intended (the
    Redact stage is then left out; tests of the other stages use it).
    """
    if redactor is None and not allow_raw_text:
        raise ValueError(
            "a pipeline without a redactor would store raw prompts and outputs: pass "
            "redactor=tokentrail.redaction.build_redactor(...), or allow_raw_text=True if raw storage is intended"
        )
    redact: list[Stage] = [] if redactor is None else [Redact(redactor)]
    return Pipeline([Validate(max_event_bytes), Dedupe(), *redact, PriceCalls(prices), BuildRows(), *detectors])
