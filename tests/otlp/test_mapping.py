"""The span -> v1 event mapping, for the current and the older GenAI conventions, from both encodings."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from otlp_builders import agent_span, chat_current, chat_older, http_span, json_line, request, span, tool_span

from tokentrail.collectors.events import InvalidEvent, decode_event
from tokentrail.stream.otlp import MappingSettings, Skipped, Unmappable, decode_request, event_id, map_span
from tokentrail.stream.otlp.mapping import EVENT_NAMESPACE

TRACE = "0af7651916cd43dd8448eb211c80319c"
RESOURCE = {"service.name": "order-agent", "deployment.environment.name": "staging", "tokentrail.tenant": "northwind"}


def mapped(s: Any, resource: dict[str, Any] | None = None, settings: MappingSettings | None = None) -> Any:
    """Map one span after a round trip through protobuf bytes, as the worker receives it."""
    raw = request(RESOURCE if resource is None else resource, [s]).SerializeToString()
    (decoded,) = decode_request(raw)
    return map_span(decoded, settings or MappingSettings())


def valid(event: dict[str, Any]) -> Any:
    result = decode_event(json.dumps(event).encode())
    assert not isinstance(result, InvalidEvent), result
    return result


def test_current_chat_span_becomes_prompt_and_output() -> None:
    """Current names: provider, models, usage with cache reads, finish reason, JSON parts, tool calls."""
    s = chat_current(
        TRACE, "00f067aa0ba902b7", usage=(812, 24, 512), answer="", tool_calls=[("call_1", "search", {"q": "7781"})]
    )
    prompt, output = mapped(s)
    assert (prompt["type"], output["type"]) == ("prompt", "output")
    assert prompt["span_id"] == output["span_id"] == "00f067aa0ba902b7"
    assert prompt["messages"] == [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "where is order 7781?"},
    ]
    assert prompt["params"] == {"temperature": 0.2}
    assert output["provider"] == "openai" and output["model"] == "gpt-4o"
    assert output["response_model"] == "gpt-4o-2024-08-06"
    assert output["usage"] == {
        "input_tokens": 812,
        "output_tokens": 24,
        "cached_input_tokens": 512,
        "reasoning_tokens": 0,
    }
    assert output["tool_calls"] == [{"id": "call_1", "name": "search", "arguments": {"q": "7781"}}]
    assert output["output"] == [] and output["finish_reason"] == "tool_calls"
    assert output["latency_ms"] == 1000.0 and output["error"] is None
    assert (output["service"], output["environment"], output["tenant"]) == ("order-agent", "staging", "northwind")
    assert output["feature"] == "order-agent"  # no tokentrail.feature, no agent: the service name
    assert prompt["ts"] < output["ts"]
    valid(prompt), valid(output)


def test_older_chat_span_reads_gen_ai_system_prompt_tokens_and_indexed_content() -> None:
    """Older names: gen_ai.system, llm.request.type, prompt/completion tokens, gen_ai.prompt.N / completion.N."""
    s = chat_older(
        TRACE, "00f067aa0ba902b8", system="anthropic", model="claude-sonnet-4-0", usage=(300, 40),
        tool_calls=[("toolu_1", "lookup", '{"id": 7}')],
    )  # fmt: skip
    prompt, output = mapped(s)
    assert output["provider"] == "anthropic" and output["model"] == "claude-sonnet-4-0"
    assert output["usage"]["input_tokens"] == 300 and output["usage"]["output_tokens"] == 40
    assert [m["role"] for m in prompt["messages"]] == ["system", "user"]
    assert output["output"] == [{"role": "assistant", "content": "It ships tomorrow."}]
    assert output["tool_calls"] == [{"id": "toolu_1", "name": "lookup", "arguments": {"id": 7}}]
    assert output["finish_reason"] == "tool_calls"
    valid(prompt), valid(output)


def test_operation_details_event_supplies_content() -> None:
    """Content on the gen_ai.client.inference.operation.details event is used when the span has none."""
    details = {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}]),
    }
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    s = span(
        TRACE, "00f067aa0ba902b9", attrs=attrs, events=[("gen_ai.client.inference.operation.details", 900, details)]
    )
    prompt, output = mapped(s)
    assert prompt["messages"] == [{"role": "user", "content": "hi"}]
    assert output["output"] == [{"role": "assistant", "content": "hello"}]
    assert "tokentrail.content" not in prompt["attributes"]


def test_span_without_content_keeps_the_call_and_says_so() -> None:
    """Content capture is opt-in: the call is still priced, its prompt flagged as not captured."""
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 2,
    }
    prompt, output = mapped(span(TRACE, "00f067aa0ba902ba", attrs=attrs))
    assert prompt["messages"] == [{"role": "user", "content": ""}]
    assert prompt["attributes"]["tokentrail.content"] == "not_captured"
    assert output["usage"]["input_tokens"] == 10
    valid(prompt), valid(output)


def test_tool_messages_in_current_input_keep_their_call_id() -> None:
    """A tool_call_response part becomes a `tool` message with its tool_call_id."""
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "find 7781"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "search", "arguments": {"q": 1}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"found": True}}]},
    ]
    s = chat_current(TRACE, "00f067aa0ba902bb", extra={"gen_ai.input.messages": json.dumps(messages)})
    prompt, _ = mapped(s)
    assert prompt["messages"][1:] == [
        {"role": "user", "content": "find 7781"},
        {"role": "assistant", "content": '[["search",{"q":1}]]'},
        {"role": "tool", "content": '{"found":true}', "tool_call_id": "c1"},
    ]


def test_execute_tool_span_becomes_tool_call_event() -> None:
    """Name, call id, arguments and result parsed from JSON, status from error.type, duration from the span."""
    (ok,) = mapped(tool_span(TRACE, "00f067aa0ba902bc", "search", {"q": "7781"}, ["7781"], call_id="call_1"))
    assert ok["type"] == "tool_call"
    assert ok["tool"] == {
        "name": "search",
        "call_id": "call_1",
        "arguments": {"q": "7781"},
        "result": ["7781"],
        "status": "ok",
        "duration_ms": 40.0,
    }
    (failed,) = mapped(tool_span(TRACE, "00f067aa0ba902bd", "search", {}, None, error="TimeoutError"))
    assert failed["tool"]["status"] == "error"
    valid(ok), valid(failed)


def test_tenant_and_feature_span_first_then_resource_then_defaults() -> None:
    """tokentrail.tenant/feature on the span beat the resource; without either, the configured default tenant."""
    s = chat_current(TRACE, "00f067aa0ba902be", extra={"tokentrail.tenant": "acme", "tokentrail.feature": "refunds"})
    prompt, _ = mapped(s, {**RESOURCE, "tokentrail.feature": "from-resource"})
    assert (prompt["tenant"], prompt["feature"]) == ("acme", "refunds")
    prompt, _ = mapped(chat_current(TRACE, "00f067aa0ba902bf"), {**RESOURCE, "tokentrail.feature": "from-resource"})
    assert (prompt["tenant"], prompt["feature"]) == ("northwind", "from-resource")
    prompt, _ = mapped(chat_current(TRACE, "00f067aa0ba902c0"), {}, MappingSettings(default_tenant="unassigned"))
    assert (prompt["tenant"], prompt["service"], prompt["environment"]) == (
        "unassigned",
        "unknown_service",
        "production",
    )
    older_env = {"service.name": "svc", "deployment.environment": "qa"}
    prompt, _ = mapped(chat_current(TRACE, "00f067aa0ba902c1"), older_env)
    assert prompt["environment"] == "qa"


def test_agent_name_gives_feature_and_is_kept() -> None:
    """gen_ai.agent.name on the span (or on an invoke_agent parent in the same request) is the default feature."""
    s = chat_current(TRACE, "00f067aa0ba902c2", extra={"gen_ai.agent.name": "triage"})
    prompt, _ = mapped(s)
    assert prompt["feature"] == "triage" and prompt["attributes"]["gen_ai.agent.name"] == "triage"
    child = chat_current(TRACE, "00f067aa0ba902c3", parent="00f067aa0ba902c4")
    spans = decode_request(
        request(RESOURCE, [child, agent_span(TRACE, "00f067aa0ba902c4", "billing")]).SerializeToString()
    )
    assert map_span(spans[1], MappingSettings()) == Skipped("agent_context")
    events = map_span(spans[0], MappingSettings(), {"00f067aa0ba902c4": "billing"})
    assert isinstance(events, list)
    prompt = events[0]
    assert prompt["feature"] == "billing" and prompt["parent_span_id"] == "00f067aa0ba902c4"


def test_errors_and_session() -> None:
    """Span status ERROR with error.type -> output error; gen_ai.conversation.id -> session_id."""
    s = chat_current(
        TRACE, "00f067aa0ba902c5", extra={"error.type": "RateLimitError", "gen_ai.conversation.id": "conv-9"}
    )
    s.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="429 Too Many Requests"))
    prompt, output = mapped(s)
    assert output["error"] == {"type": "RateLimitError", "message": "429 Too Many Requests"}
    assert prompt["session_id"] == output["session_id"] == "conv-9"


def test_non_genai_span_is_skipped_not_dead() -> None:
    """An HTTP span is not ours: skipped, not a dead letter."""
    assert mapped(http_span(TRACE, "00f067aa0ba902c6")) == Skipped("not_genai")


CALL = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m"}
MISSING = "otlp_missing_attribute"


@pytest.mark.parametrize(
    ("attrs", "reason", "field"),
    [
        ({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}, MISSING, "gen_ai.provider.name"),
        ({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}, MISSING, "gen_ai.request.model"),
        ({"gen_ai.operation.name": "execute_tool"}, MISSING, "gen_ai.tool.name"),
        (
            {"gen_ai.operation.name": "summon", "gen_ai.provider.name": "x"},
            "otlp_unknown_operation",
            "gen_ai.operation.name",
        ),
        ({**CALL, "gen_ai.input.messages": "[oops"}, "otlp_invalid_attribute", "gen_ai.input.messages"),
        ({**CALL, "gen_ai.usage.input_tokens": "12"}, "otlp_invalid_attribute", "gen_ai.usage.input_tokens"),
    ],
)
def test_unmappable_genai_span_has_a_reason(attrs: dict[str, Any], reason: str, field: str) -> None:
    """A GenAI span that cannot become events says why, and which attribute."""
    result = mapped(span(TRACE, "00f067aa0ba902c7", name="x", attrs=attrs))
    assert isinstance(result, Unmappable)
    assert (result.reason, result.field) == (reason, field)


def test_event_ids_are_deterministic_per_span_and_kind() -> None:
    """A re-exported span maps to the same event ids; prompt and output differ."""
    first = mapped(chat_current(TRACE, "00f067aa0ba902c8"))
    again = mapped(chat_current(TRACE, "00f067aa0ba902c8"))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]
    assert first[0]["event_id"] != first[1]["event_id"]
    assert first[0]["event_id"] == event_id(TRACE, "00f067aa0ba902c8", "prompt")
    assert event_id(TRACE, "00f067aa0ba902c8", "prompt") == str(
        uuid.uuid5(EVENT_NAMESPACE, f"{TRACE}/00f067aa0ba902c8/prompt")
    )


def test_json_and_protobuf_decode_to_the_same_events() -> None:
    """The file exporter's OTLP/JSON (hex ids, int64 as strings, int enums) maps exactly like protobuf."""
    req = request(RESOURCE, [chat_current(TRACE, "00f067aa0ba902c9"), tool_span(TRACE, "00f067aa0ba902ca", "t", {}, 1)])
    line = json_line(req)
    doc = json.loads(line)
    first = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert first["traceId"] == TRACE and isinstance(first["startTimeUnixNano"], str)
    from_proto = [map_span(s, MappingSettings()) for s in decode_request(req.SerializeToString())]
    from_json = [map_span(s, MappingSettings()) for s in decode_request(line)]
    assert from_proto == from_json
