"""The v1 contract: the example in docs/events.md validates; every kind of invalid event is named by a reason.

The bounds (a clarification of v1) have their own tests in test_event_bounds.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokentrail.collectors.events import REASONS, InvalidEvent, OutputEvent, decode_event, event_json_schema

EXAMPLE = {
    "schema_version": 1,
    "event_id": "0193a1c2-7d1e-7b3a-9c55-2f1e0b6c9a10",
    "type": "output",
    "ts": "2026-11-20T09:01:01.600Z",
    "trace_id": "d40cca85f0f54f30445a3577e18a0a5a",
    "span_id": "bcca95bf8e2f8559",
    "service": "order-agent",
    "environment": "production",
    "tenant": "northwind",
    "feature": "order-support",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_id": "order_assistant",
    "prompt_version": "v3",
    "response_model": "gpt-4o-2024-08-06",
    "output": [],
    "tool_calls": [{"id": "call_1", "name": "search_orders", "arguments": {"order": "7781"}}],
    "finish_reason": "tool_calls",
    "usage": {"input_tokens": 812, "output_tokens": 24, "cached_input_tokens": 512, "reasoning_tokens": 0},
    "latency_ms": 1480.5,
    "ttft_ms": 310.0,
}


def variant(**changes: object) -> bytes:
    event = dict(EXAMPLE)
    for key, value in changes.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return json.dumps(event).encode()


CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def doc_section(title: str) -> str:
    """The text of one `## title` section of docs/events.md (the file must exist: no skipping)."""
    text = CONTRACT.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_documented_example_validates():
    """The example in docs/events.md, read from the document itself, is a valid output event."""
    doc_example = doc_section("Example").split("```json")[1].split("```")[0]
    assert json.loads(doc_example) == EXAMPLE
    event = decode_event(doc_example)
    assert isinstance(event, OutputEvent)
    assert event.usage.cached_input_tokens == 512
    assert event.tool_calls[0].arguments == {"order": "7781"}


def test_the_documented_reasons_are_the_code_reasons():
    """The reason table in docs/events.md 'Validity' lists exactly the reasons the validator produces."""
    validator_table = doc_section("Validity").split("| processor reason |")[0]  # the processor's own come after
    rows = [line for line in validator_table.splitlines() if line.startswith("| `")]
    documented = [row.split("`")[1] for row in rows]
    assert documented == list(REASONS)


@pytest.mark.parametrize(
    "raw, reason, field",
    [
        (b"not json at all", "not_json", ""),
        (b"\xff\xfe\x00", "not_json", ""),
        (b"[1, 2]", "not_object", ""),
        (b'"a string"', "not_object", ""),
        (variant(schema_version=...), "unsupported_schema_version", "schema_version"),
        (variant(schema_version=2), "unsupported_schema_version", "schema_version"),
        (variant(schema_version=True), "unsupported_schema_version", "schema_version"),
        (variant(type="span"), "unknown_type", "type"),
        (variant(type=...), "unknown_type", "type"),
        (variant(tenant=...), "missing_field", "tenant"),
        (variant(tenant=None), "missing_field", "tenant"),
        (variant(usage=...), "missing_field", "usage"),
        (variant(event_id="not-a-uuid"), "invalid_value", "event_id"),
        (variant(ts="yesterday"), "invalid_value", "ts"),
        (variant(ts="2026-11-20T09:01:01"), "invalid_value", "ts"),
        (variant(usage={"input_tokens": 5, "output_tokens": -1}), "invalid_value", "usage.output_tokens"),
        (variant(usage={"input_tokens": "5", "output_tokens": 1}), "wrong_type", "usage.input_tokens"),
        (variant(tenant=42), "wrong_type", "tenant"),
        (variant(trace_id=""), "invalid_value", "trace_id"),
        (variant(trace_id="x" * 129), "too_long", "trace_id"),
        (variant(latency_ms=-1), "invalid_value", "latency_ms"),
        (variant(tool_calls=[{"id": "c1"}]), "missing_field", "tool_calls.0.name"),
    ],
)
def test_invalid_events_carry_a_machine_readable_reason(raw, reason, field):
    """Each kind of invalid event in docs/events.md 'Validity' is rejected with its reason and field."""
    result = decode_event(raw)
    assert isinstance(result, InvalidEvent)
    assert result.reason in REASONS
    assert (result.reason, result.field) == (reason, field)
    assert result.raw == raw


def test_size_limit():
    """An event over the size limit is invalid before it is parsed."""
    big = variant(attributes={"blob": "x" * 2000})
    assert decode_event(big, max_bytes=1000).reason == "too_large"
    assert isinstance(decode_event(big), OutputEvent)


def test_unknown_fields_are_ignored():
    """Unknown extra top-level fields are not an error."""
    assert isinstance(decode_event(variant(vendor_extension={"a": 1})), OutputEvent)


def test_prompt_needs_a_message_and_known_roles():
    """A prompt without messages, or with an unknown role, is invalid."""
    base = {
        k: v
        for k, v in EXAMPLE.items()
        if k not in ("usage", "output", "tool_calls", "finish_reason", "response_model")
    }
    prompt = {**base, "type": "prompt", "messages": [{"role": "user", "content": "hi"}]}
    assert decode_event(json.dumps(prompt)).type == "prompt"
    assert decode_event(json.dumps({**prompt, "messages": []})).reason == "invalid_value"
    bad_role = {**prompt, "messages": [{"role": "robot", "content": "hi"}]}
    assert (decode_event(json.dumps(bad_role)).reason, decode_event(json.dumps(bad_role)).field) == (
        "invalid_value",
        "messages.0.role",
    )


def test_tool_call_event():
    """A tool_call event needs tool.name; status defaults to ok."""
    base = {
        k: EXAMPLE[k]
        for k in ("schema_version", "event_id", "ts", "trace_id", "span_id", "service", "tenant", "feature")
    }
    event = decode_event(json.dumps({**base, "type": "tool_call", "tool": {"name": "search", "result": [1, 2]}}))
    assert event.tool.status == "ok" and event.tool.result == [1, 2]
    missing = decode_event(json.dumps({**base, "type": "tool_call", "tool": {"result": 1}}))
    assert (missing.reason, missing.field) == ("missing_field", "tool.name")


def test_json_schema_is_draft_2020_12_with_formats():
    """The published JSON Schema names its draft and sets formats for UUIDs and timestamps."""
    schema = event_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    text = json.dumps(schema)
    assert '"format": "uuid"' in text and '"format": "date-time"' in text
    assert set(schema["discriminator"]["mapping"]) == {"prompt", "output", "tool_call"}
