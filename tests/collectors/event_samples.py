"""Three valid v1 events and helpers to mutate one field and see what the validator says (contract tests)."""

from __future__ import annotations

import json
from typing import Any

from tokentrail.collectors.events import REASONS, InvalidEvent, OutputEvent, PromptEvent, ToolCallEvent, decode_event

COMMON: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "0193a1c2-7d1e-7b3a-9c55-2f1e0b6c9a10",
    "ts": "2026-11-20T09:01:01.600Z",
    "trace_id": "d40cca85f0f54f30445a3577e18a0a5a",
    "span_id": "bcca95bf8e2f8559",
    "service": "order-agent",
    "environment": "production",
    "tenant": "northwind",
    "feature": "order-support",
}
CALL = {**COMMON, "provider": "openai", "model": "gpt-4o", "prompt_id": "order_assistant", "prompt_version": "v3"}
PROMPT = {**CALL, "type": "prompt", "messages": [{"role": "user", "content": "hi"}], "tools": ["search_orders"]}
OUTPUT = {
    **CALL,
    "type": "output",
    "response_model": "gpt-4o-2024-08-06",
    "tool_calls": [{"id": "call_1", "name": "search_orders", "arguments": {"order": "7781"}}],
    "finish_reason": "tool_calls",
    "usage": {"input_tokens": 812, "output_tokens": 24, "cached_input_tokens": 512, "reasoning_tokens": 0},
    "latency_ms": 1480.5,
    "ttft_ms": 310.0,
    "error": {"type": "RateLimitError", "message": "slow down"},
}
TOOL = {**COMMON, "type": "tool_call", "tool": {"name": "search_orders", "call_id": "call_1", "duration_ms": 12.5}}
BASES = {"prompt": PROMPT, "output": OUTPUT, "tool_call": TOOL}


def event(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the value at dotted `path` (list indexes as numbers) replaced."""
    doc = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


def rejected(doc: dict[str, Any] | bytes | str, **kwargs: Any) -> tuple[str, str]:
    """(reason, field) of an event that must be invalid."""
    raw = doc if isinstance(doc, bytes | str) else json.dumps(doc)
    result = decode_event(raw, **kwargs)
    assert isinstance(result, InvalidEvent), f"accepted: {str(raw)[:200]}"
    assert result.reason in REASONS
    return result.reason, result.field


def accepted(doc: dict[str, Any] | bytes | str, **kwargs: Any) -> PromptEvent | OutputEvent | ToolCallEvent:
    raw = doc if isinstance(doc, bytes | str) else json.dumps(doc)
    result = decode_event(raw, **kwargs)
    assert not isinstance(result, InvalidEvent), result
    return result
