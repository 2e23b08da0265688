"""The fixed poison pills of issue 11, the good traffic around them, and what a correct processor does with them.

The oracle is the contract itself: `decode_event(raw, received_at=now)` says whether a pill is
valid (and then it must be stored) or a dead letter (and with which reason), so the expected
counts follow docs/events.md rather than whatever the processor happens to do today.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fuzz_strategies import base_events, encode, fresh_event
from pii_plants import CARD, EMAIL, IBAN, NAME, PHONE

from tokentrail.collectors.events import InvalidEvent, decode_event

PII_NEEDLES = [EMAIL, PHONE, CARD, IBAN, NAME]


@dataclass(frozen=True)
class Pill:
    name: str
    raw: bytes


def _event(kind: str) -> dict[str, Any]:
    return fresh_event(next(doc for doc in base_events() if doc["type"] == kind and not doc.get("error")))


def _tool_event(arguments: dict[str, Any]) -> dict[str, Any]:
    doc = _event("tool_call")
    doc["tool"]["arguments"] = arguments
    return doc


def _deep(levels: int) -> bytes:
    """An event with `levels` nested lists in params, written as text (json.dumps would recurse too deep)."""
    doc = _event("prompt")
    doc["params"] = {"deep": "@@DEEP@@"}
    return encode(doc).replace(b'"@@DEEP@@"', b"[" * levels + b"1" + b"]" * levels)


def _prompt_of(messages: int) -> bytes:
    doc = _event("prompt")
    doc["messages"] = [{"role": "user", "content": f"message {i}"} for i in range(messages)]
    return encode(doc)


def _big(size: int) -> bytes:
    doc = _event("prompt")
    doc["messages"][-1]["content"] = "y" * size
    return encode(doc)


def _with(kind: str, **fields: Any) -> bytes:
    doc = _event(kind)
    doc.update(fields)
    return encode(doc)


def _output_with(**fields: Any) -> bytes:
    doc = _event("output")
    doc.update(fields)
    return encode(doc)


def growing_dead_letter() -> bytes:
    """An invalid event of ~600 KB (under Kafka's default 1 MB message limit) whose text is 300,000 quotes:
    escaped once more inside a dead-letter envelope it doubles, past the default limit."""
    doc = _event("prompt")
    doc["schema_version"] = 2
    doc["messages"][-1]["content"] = '"' * 300_000
    return encode(doc)


def control_characters() -> bytes:
    """300 KB of U+0001 (not JSON): its dead-letter message escapes each as `\\u0001`, six bytes for one."""
    return b"\x01" * 300_000


def _backfill(months: int, now: datetime) -> list[Pill]:
    """`months` events, one in each of the last `months` months (130 partitions in one batch)."""
    pills = []
    for i in range(months):
        doc = _event("tool_call")
        doc["ts"] = (now - timedelta(days=30.5 * i + 1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        pills.append(Pill(f"backfill month -{i}", encode(doc)))
    return pills


def poison_pills(now: datetime | None = None) -> list[Pill]:
    """Every pill named in issue 11, plus the resource-limit shapes (1 MiB, 20,000 messages, 3,000 levels)."""
    now = now or datetime.now(UTC)
    usage = {"input_tokens": 5_000_000_000_000, "output_tokens": 1}
    pills = [
        Pill("input_tokens 5e12", _output_with(usage=usage)),
        Pill("ts 0001-01-01", _with("prompt", ts="0001-01-01T00:00:00Z")),
        Pill("ts 9999-12-31", _with("prompt", ts="9999-12-31T23:59:59.999Z")),
        Pill("ts 1-01-15", _with("prompt", ts="1-01-15")),
        Pill("latency NaN", _output_with(latency_ms=float("nan"))),
        Pill("latency Infinity", _output_with(latency_ms=float("inf"))),
        Pill("latency 1e308", _output_with(latency_ms=1e308)),
        Pill("tenant with bidi override", _with("prompt", tenant="acme\u202egnp.exe")),
        Pill("tenant with newline", _with("prompt", tenant="acme\nprod")),
        Pill("tenant 10,000 chars", _with("prompt", tenant="t" * 10_000)),
        Pill("2,000 tool calls", _output_with(tool_calls=[{"id": "c", "name": "t", "arguments": {}}] * 2_000)),
        Pill(
            "PII in attributes",
            _with("prompt", attributes={"customer_email": EMAIL, "note": f"call {NAME} on {PHONE}"}),
        ),
        Pill("email in session_id", _with("output", session_id=EMAIL)),
        Pill("email as a tool-argument key", encode(_tool_event({EMAIL: {"iban": IBAN}}))),
        Pill("card number as a number", encode(_tool_event({"card_number": int(CARD), "amount": 12}))),
        Pill("PII in error message", _output_with(error={"type": "upstream", "message": f"refund to {IBAN} failed"})),
        Pill("PII in a dead letter", _with("prompt", schema_version=2, user_id=EMAIL, note=f"call {NAME} on {PHONE}")),
        # Shrunk failures of the fuzz suite (test_no_leak.py) before the redact stage covered them:
        Pill(
            "phone twice in attributes, dead letter",
            _with("prompt", schema_version=2, attributes={"n": f"{PHONE}\n{PHONE}"}),
        ),
        Pill("email as trace_id", _with("tool_call", trace_id=EMAIL)),
        Pill("PII in a non-JSON line", f"oops {EMAIL} {CARD} call {NAME}".encode()),
        Pill("1 MiB + 1 event", _big(1024 * 1024)),
        Pill("dead letter that doubles when escaped", growing_dead_letter()),
        Pill("300 KB of control characters", control_characters()),
        Pill("20,000-message prompt", _prompt_of(20_000)),
        Pill("3,000-level nesting", _deep(3000)),
        Pill("not JSON", b"\xff\xfe{"),
        Pill("JSON array", b"[1, 2, 3]"),
    ]
    return pills + _backfill(130, now)


def good_events(n: int) -> list[bytes]:
    """`n` fresh valid events of every type (with unique ids and a ts a minute ago)."""
    pool = [doc for doc in base_events() if not doc.get("error")]
    return [encode(fresh_event(pool[i % len(pool)])) for i in range(n)]


def interleave(good: list[bytes], pills: list[Pill]) -> list[bytes]:
    """Good events before, between and after the pills."""
    step = max(1, len(good) // (len(pills) + 1))
    lines: list[bytes] = []
    for i, pill in enumerate(pills):
        lines += good[i * step : (i + 1) * step]
        lines.append(pill.raw)
    return lines + good[len(pills) * step :]


def expected(pills: list[Pill], now: datetime) -> tuple[int, dict[str, int]]:
    """(pills that are valid events, dead letters by reason) per the contract at receive time `now`."""
    valid, dead = 0, {}
    for pill in pills:
        result = decode_event(pill.raw, received_at=now)
        if isinstance(result, InvalidEvent):
            dead[result.reason] = dead.get(result.reason, 0) + 1
        else:
            valid += 1
    return valid, dead


def event_ids(lines: list[bytes]) -> set[str]:
    return {str(json.loads(line)["event_id"]) for line in lines}
