"""OTLP trace requests built the way the OpenTelemetry Collector writes them.

`request(...)` is a real `ExportTraceServiceRequest` (opentelemetry-proto); its
`SerializeToString()` is byte for byte what the kafka exporter sends with `encoding: otlp_proto`.
`json_line(...)` is what the `file` exporter and `otlp_json` write: protobuf's JSON mapping with
the OTLP rules on top (trace and span ids as hex, not base64; enums as integers; int64 as
decimal strings; camelCase names).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

# A day ago, to the second: inside the validator's receive-time window (docs/events.md) whenever tests run.
T0 = (time.time_ns() // 1_000_000_000 - 86_400) * 1_000_000_000
MS = 1_000_000


def value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(value(x) for x in v)
        return out
    return AnyValue(string_value=str(v))


def attributes(pairs: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in pairs.items()]


def span(
    trace_id: str,
    span_id: str,
    *,
    parent: str = "",
    name: str = "chat gpt-4o",
    start_ms: int = 0,
    duration_ms: int = 1000,
    attrs: Mapping[str, Any] | None = None,
    events: Iterable[tuple[str, int, Mapping[str, Any]]] = (),
    error: str | None = None,
) -> Span:
    s = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0 + start_ms * MS,
        end_time_unix_nano=T0 + (start_ms + duration_ms) * MS,
        attributes=attributes(attrs or {}),
    )
    for event_name, at_ms, event_attrs in events:
        e = s.events.add()
        e.name, e.time_unix_nano = event_name, T0 + at_ms * MS
        e.attributes.extend(attributes(event_attrs))
    if error is not None:
        s.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return s


def request(resource: Mapping[str, Any], spans: Iterable[Span]) -> ExportTraceServiceRequest:
    scope = ScopeSpans(spans=list(spans))
    scope.scope.name = "tests.otlp"
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=Resource(attributes=attributes(resource)), scope_spans=[scope])]
    )


def json_line(req: ExportTraceServiceRequest) -> bytes:
    """One line as the collector's file exporter writes it."""
    doc = MessageToDict(req, use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64decode(s[key]).hex()
    return json.dumps(doc, separators=(",", ":")).encode()


# -- spans of both conventions -----------------------------------------------------------------


def chat_current(
    trace_id: str,
    span_id: str,
    *,
    model: str = "gpt-4o",
    provider: str = "openai",
    usage: tuple[int, int, int] = (1000, 100, 0),
    question: str = "where is order 7781?",
    answer: str = "It ships tomorrow.",
    tool_calls: Sequence[tuple[str, str, dict[str, Any]]] = (),
    start_ms: int = 0,
    parent: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Span:
    """A chat span in the current conventions (semconv >= 1.37): gen_ai.provider.name, JSON messages."""
    parts: list[dict[str, Any]] = [{"type": "text", "content": answer}] if answer else []
    parts += [{"type": "tool_call", "id": i, "name": n, "arguments": a} for i, n, a in tool_calls]
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": f"{model}-2024-08-06",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.input_tokens": usage[0],
        "gen_ai.usage.output_tokens": usage[1],
        "gen_ai.usage.cache_read.input_tokens": usage[2],
        "gen_ai.response.finish_reasons": ["tool_calls" if tool_calls else "stop"],
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are a support agent."}]),
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": parts, "finish_reason": "tool_calls" if tool_calls else "stop"}]
        ),
        **(extra or {}),
    }
    return span(trace_id, span_id, parent=parent, name=f"chat {model}", start_ms=start_ms, attrs=attrs)


def chat_older(
    trace_id: str,
    span_id: str,
    *,
    model: str = "gpt-4o",
    system: str = "openai",
    usage: tuple[int, int] = (1000, 100),
    question: str = "where is order 7781?",
    answer: str = "It ships tomorrow.",
    tool_calls: Sequence[tuple[str, str, str]] = (),
    start_ms: int = 0,
    parent: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Span:
    """A chat span in the older conventions (OpenLLMetry): gen_ai.system, prompt_tokens, indexed content."""
    attrs: dict[str, Any] = {
        "llm.request.type": "chat",
        "gen_ai.system": system,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.prompt_tokens": usage[0],
        "gen_ai.usage.completion_tokens": usage[1],
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "You are a support agent.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": question,
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": answer,
        "gen_ai.completion.0.finish_reason": "tool_calls" if tool_calls else "stop",
        **(extra or {}),
    }
    for i, (call_id, name, arguments) in enumerate(tool_calls):
        attrs[f"gen_ai.completion.0.tool_calls.{i}.id"] = call_id
        attrs[f"gen_ai.completion.0.tool_calls.{i}.name"] = name
        attrs[f"gen_ai.completion.0.tool_calls.{i}.arguments"] = arguments
    return span(trace_id, span_id, parent=parent, name="openai.chat", start_ms=start_ms, attrs=attrs)


def tool_span(
    trace_id: str,
    span_id: str,
    name: str,
    arguments: dict[str, Any],
    result: Any,
    *,
    call_id: str = "",
    start_ms: int = 0,
    parent: str = "",
    error: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Span:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.call.arguments": json.dumps(arguments),
        "gen_ai.tool.call.result": json.dumps(result),
    }
    if error:
        attrs["error.type"] = error
    attrs.update(extra or {})
    return span(
        trace_id,
        span_id,
        parent=parent,
        name=f"execute_tool {name}",
        start_ms=start_ms,
        duration_ms=40,
        attrs=attrs,
        error=error,
    )


def agent_span(trace_id: str, span_id: str, agent: str, *, duration_ms: int = 10_000) -> Span:
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent, "gen_ai.provider.name": "openai"}
    return span(trace_id, span_id, name=f"invoke_agent {agent}", duration_ms=duration_ms, attrs=attrs)


def http_span(trace_id: str, span_id: str, *, parent: str = "") -> Span:
    attrs = {"http.request.method": "GET", "url.full": "https://orders.internal/7781", "http.response.status_code": 200}
    return span(trace_id, span_id, parent=parent, name="GET", duration_ms=12, attrs=attrs)
