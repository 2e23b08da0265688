"""One OpenTelemetry GenAI span -> v1 events (docs/otlp.md, the mapping).

Model calls (`gen_ai.operation.name` chat / text_completion / generate_content / embeddings)
become a `prompt` at the span's start and an `output` at its end; `execute_tool` spans become
one `tool_call`; `invoke_agent` (and other agent operations) only give context; spans without
GenAI attributes are not ours. Both the current attribute names and the older ones
(`gen_ai.system`, `gen_ai.usage.prompt_tokens`, `llm.request.type`, indexed content) are read.
The output is plain v1 dicts: the pipeline validates them like any event (validate_stage.Validate).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .content import ContentError, read_content
from .decode import STATUS_ERROR, Span

__all__ = ["EVENT_NAMESPACE", "MODEL_OPERATIONS", "MappingSettings", "Skipped", "Unmappable", "event_id", "map_span"]

# event_id = uuid5(EVENT_NAMESPACE, "<trace hex>/<span hex>/<kind>"): a re-exported span is a duplicate.
EVENT_NAMESPACE = uuid.UUID("3d0c6f9e-58a4-4b7e-9a1c-0e5f2d7b8a61")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes
MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
CONTEXT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
_OLDER_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
# gen_ai.provider.name values -> the provider names tokentrail prices by (docs/events.md).
_PROVIDERS = {
    "aws.bedrock": "bedrock",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}
_PARAMS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.choice.count": "n",
}
_KEPT = ("gen_ai.agent.name", "gen_ai.agent.id", "gen_ai.response.id", "gen_ai.data_source.id")


@dataclass(frozen=True)
class MappingSettings:
    """Defaults for what a span does not say (docs/otlp.md, identity)."""

    default_tenant: str = "default"
    default_environment: str = "production"
    default_service: str = "unknown_service"


@dataclass(frozen=True, slots=True)
class Skipped:
    """Not a span that makes events: `why` is "not_genai" or "agent_context"."""

    why: str


@dataclass(frozen=True, slots=True)
class Unmappable:
    """A GenAI span that cannot become events: a dead letter with this reason and field."""

    reason: str
    field: str
    detail: str


def event_id(trace_id: str, span_id: str, kind: str) -> str:
    """`str(uuid.uuid5(EVENT_NAMESPACE, name))`, computed directly (uuid5 builds a UUID object: 5x slower)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{trace_id}/{span_id}/{kind}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def operation_of(span: Span) -> str | None:
    """The GenAI operation, or None when the span has no GenAI attributes at all."""
    a = span.attributes
    op = a.get("gen_ai.operation.name")
    if op:
        return str(op)
    older = a.get("llm.request.type")
    if older:
        return _OLDER_REQUEST_TYPES.get(str(older), str(older))
    if "gen_ai.system" in a or "gen_ai.provider.name" in a or "gen_ai.request.model" in a:
        return ""  # GenAI, but no operation named
    return None


def map_span(
    span: Span, settings: MappingSettings, agents: dict[str, str] | None = None
) -> list[dict[str, Any]] | Skipped | Unmappable:
    """The span's v1 events. `agents`: agent name by span id of the `invoke_agent` spans seen beside it."""
    op = operation_of(span)
    if op is None:
        return Skipped("not_genai")
    if op in CONTEXT_OPERATIONS:
        return Skipped("agent_context")
    if not span.trace_id or not span.span_id:
        return Unmappable("otlp_invalid_span", "traceId" if not span.trace_id else "spanId", "the span has no id")
    if span.start_ns <= 0 or span.end_ns < span.start_ns:
        return Unmappable("otlp_invalid_span", "startTimeUnixNano", "the span has no valid start and end time")
    try:
        if op in MODEL_OPERATIONS:
            return _model_call(span, op, settings, agents)
        if op == "execute_tool":
            return _tool_call(span, settings, agents)
    except ContentError as exc:
        return Unmappable("otlp_invalid_attribute", exc.field, str(exc))
    return Unmappable(
        "otlp_unknown_operation", "gen_ai.operation.name", f"GenAI operation {op[:80]!r} has no tokentrail event"
    )


def _identity(span: Span, settings: MappingSettings, agents: dict[str, str] | None, kind: str) -> dict[str, Any]:
    a, r = span.attributes, span.resource
    service = str(r.get("service.name") or settings.default_service)
    agent = a.get("gen_ai.agent.name") or _agent_above(span, agents)
    attributes = {k: str(a[k]) for k in _KEPT if a.get(k) not in (None, "")}
    if agent and "gen_ai.agent.name" not in attributes:
        attributes["gen_ai.agent.name"] = str(agent)
    return {
        "schema_version": 1,
        "event_id": event_id(span.trace_id, span.span_id, kind),
        "type": kind,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "session_id": _opt(a.get("gen_ai.conversation.id") or a.get("session.id")),
        "service": service,
        "environment": str(
            r.get("deployment.environment.name") or r.get("deployment.environment") or settings.default_environment
        ),
        "tenant": str(a.get("tokentrail.tenant") or r.get("tokentrail.tenant") or settings.default_tenant),
        "feature": str(a.get("tokentrail.feature") or r.get("tokentrail.feature") or agent or service),
        "user_id": _opt(a.get("user.id") or a.get("enduser.id")),
        "attributes": attributes,
    }


def _agent_above(span: Span, agents: dict[str, str] | None) -> str | None:
    """The name of the nearest `invoke_agent` span above this one, when it came in the same request."""
    if not agents:
        return None
    return agents.get(span.parent_span_id)


def _model_call(
    span: Span, op: str, settings: MappingSettings, agents: dict[str, str] | None
) -> list[dict[str, Any]] | Unmappable:
    a = span.attributes
    provider = a.get("gen_ai.provider.name") or a.get("gen_ai.system")
    if not provider:
        return Unmappable("otlp_missing_attribute", "gen_ai.provider.name", "a model call without a provider")
    model = a.get("gen_ai.request.model") or a.get("gen_ai.response.model")
    if not model:
        return Unmappable("otlp_missing_attribute", "gen_ai.request.model", "a model call without a model")
    provider = _PROVIDERS.get(str(provider), str(provider))
    content = read_content(a, span.events)
    base = _identity(span, settings, agents, "prompt")
    if not content.found:
        base["attributes"]["tokentrail.content"] = "not_captured"
    call = {**base, "provider": provider, "model": str(model)}
    for key in ("prompt_id", "prompt_version"):
        if a.get(f"tokentrail.{key}"):
            call[key] = str(a[f"tokentrail.{key}"])
    prompt = {
        **call,
        "ts": _rfc3339(span.start_ns),
        "messages": content.messages or [{"role": "user", "content": ""}],
        "params": {name: a[key] for key, name in _PARAMS.items() if key in a},
        "tools": _tool_names(a.get("gen_ai.tool.definitions")),
    }
    errored = span.status_code == STATUS_ERROR or bool(a.get("error.type"))
    reasons = a.get("gen_ai.response.finish_reasons") or a.get("gen_ai.response.finish_reason")
    finish = (reasons[0] if isinstance(reasons, list) and reasons else reasons) or content.finish_reason
    duration_ms = (span.end_ns - span.start_ns) / 1e6
    ttft = a.get("gen_ai.server.time_to_first_token")
    output = {
        **call,
        "event_id": event_id(span.trace_id, span.span_id, "output"),
        "type": "output",
        "ts": _rfc3339(span.end_ns),
        "response_model": _opt(a.get("gen_ai.response.model")),
        "output": content.output,
        "tool_calls": [t for t in content.tool_calls if t["name"]],
        "finish_reason": str(finish) if finish else ("error" if errored else None),
        "usage": {
            "input_tokens": _count(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
            "output_tokens": _count(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
            "cached_input_tokens": _count(
                a, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"
            ),
            "reasoning_tokens": _count(a, "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
        },
        "latency_ms": duration_ms,
        "ttft_ms": float(ttft) * 1000 if isinstance(ttft, int | float) else None,
        "error": {"type": str(a.get("error.type") or "error"), "message": span.status_message} if errored else None,
    }
    if op == "embeddings":
        output["attributes"] = {**output["attributes"], "gen_ai.operation.name": op}
        prompt["attributes"] = output["attributes"]
    return [prompt, output]


def _tool_call(
    span: Span, settings: MappingSettings, agents: dict[str, str] | None
) -> list[dict[str, Any]] | Unmappable:
    a = span.attributes
    name = a.get("gen_ai.tool.name")
    if not name and span.name.startswith("execute_tool "):
        name = span.name.removeprefix("execute_tool ").strip()
    if not name:
        return Unmappable("otlp_missing_attribute", "gen_ai.tool.name", "an execute_tool span without a tool name")
    errored = span.status_code == STATUS_ERROR or bool(a.get("error.type"))
    event = _identity(span, settings, agents, "tool_call")
    event["ts"] = _rfc3339(span.end_ns)
    event["tool"] = {
        "name": str(name),
        "call_id": _opt(a.get("gen_ai.tool.call.id")),
        "arguments": _json_or_text(a.get("gen_ai.tool.call.arguments")),
        "result": _json_or_text(a.get("gen_ai.tool.call.result")),
        "status": "error" if errored else "ok",
        "duration_ms": (span.end_ns - span.start_ns) / 1e6,
    }
    return [event]


def _tool_names(definitions: Any) -> list[str]:
    """`gen_ai.tool.definitions`: a JSON list of `{type, name}` (or OpenAI's `{type, function: {name}}`)."""
    if isinstance(definitions, str):
        try:
            definitions = json.loads(definitions)
        except ValueError:
            return []
    if not isinstance(definitions, list):
        return []
    names = []
    for d in definitions:
        if isinstance(d, dict):
            name = d.get("name") or (d.get("function") or {}).get("name")
            if name:
                names.append(str(name))
    return names


def _count(a: dict[str, Any], current: str, older: str) -> int:
    name = current if current in a else older
    value = a.get(name)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # some SDKs record counts as doubles
    if not isinstance(value, int) or isinstance(value, bool):
        raise ContentError(name, f"{name} must be an integer")
    return value


def _json_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _rfc3339(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    t = time.gmtime(seconds)
    date = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    return f"{date}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{rest // 1000:06d}Z"
