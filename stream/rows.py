"""The last standard stages: price each call, then turn events and dead letters into table rows.

Every string a row takes from an event comes from its redacted JSON form (`Accepted.doc`) or from
the event's dimension labels, which the contract bounds (docs/events.md); the redact stage runs
before these (stream/redact_stage.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import OrderedDict
from typing import Any

from tokentrail.collectors.encoding import dumps as compact_json
from tokentrail.collectors.events import OutputEvent
from tokentrail.redaction.config import SECRET_ENTITIES  # names only: no Presidio import

from .batch import Accepted, Batch, DeadLetter
from .pricing import UNPRICED, PriceBook

__all__ = ["DEADLETTER_NAMESPACE", "BuildRows", "PriceCalls", "normalise_output_text", "short_hash"]

DEADLETTER_NAMESPACE = uuid.UUID("6f1c1f0e-3b59-4a8e-9a53-4f7d8c1b2a90")

# Built once: json.dumps with any option builds a new encoder on every call, a few microseconds
# that add up over several calls per event. Same output as json.dumps with these options.
_TEXT = json.JSONEncoder(ensure_ascii=False).encode
_SORTED = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


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


def short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def normalise_output_text(text: str) -> str:
    """Case and whitespace do not make two answers different."""
    return " ".join(text.lower().split())


class BuildRows:
    """Turns accepted events and dead letters into rows for the ClickHouse tables.

    Joins each output to its prompt (same span, same partition, so in order) to carry the
    system-prompt and prompt hashes onto the call row; the join state is a bounded LRU.
    `redaction_key_id` names the key that redacted the rows ("raw" when nothing was redacted).
    """

    def __init__(self, capacity: int = 200_000, *, redaction_key_id: str = "raw") -> None:
        self.capacity = capacity
        self.redaction_key_id = redaction_key_id
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
        e, doc = item.event, item.doc
        return {
            "event_id": e.event_id,
            "ts": e.ts,
            "trace_id": doc["trace_id"],
            "span_id": doc["span_id"],
            "parent_span_id": doc.get("parent_span_id") or "",
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
            # orjson when installed (4x the standard library here); same compact text but for float exponents
            "payload": compact_json(doc).decode("utf-8", "surrogatepass"),
            "redaction_key_id": self.redaction_key_id,
        }

    def _call_row(self, item: Accepted) -> dict[str, Any]:
        e, doc = item.event, item.doc
        price = item.price or UNPRICED
        text = "\n".join(m["content"] for m in doc["output"])
        tool_calls = doc["tool_calls"]
        tool_part = _SORTED([[t["name"], t["arguments"]] for t in tool_calls]) if tool_calls else ""
        system_hash, prompt_hash = self._prompts.get(doc["span_id"], ("", ""))
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
            "error_type": str(error["type"]) if isinstance(error, dict) else "",
            "tool_call_count": len(tool_calls),
            "tool_names": [str(t["name"]) for t in tool_calls],
            "output_text": text,
            "output_hash": short_hash(normalise_output_text(text) + "\x00" + tool_part),
            "redaction_key_id": self.redaction_key_id,
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
            "redaction_key_id": self.redaction_key_id,
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
                "trace_id": item.doc["trace_id"],
                "tenant": e.tenant,
                "service": e.service,
                "feature": e.feature,
            }
            for entity, count in item.findings.items()
            if count
        ]

    def _dead_row(self, dead: DeadLetter) -> dict[str, Any]:
        digest = hashlib.sha256(dead.inbound.raw).hexdigest()
        return {
            "id": uuid.uuid5(DEADLETTER_NAMESPACE, f"{dead.inbound.source}\x00{digest}"),
            "received_at": dead.inbound.received_at,
            "reason": dead.invalid.reason,
            "field": dead.field[:200],
            "detail": dead.detail[:1000],
            "source": dead.inbound.source,
            "payload": dead.payload,
            "redaction_key_id": self.redaction_key_id,
        }
