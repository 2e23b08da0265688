"""The v1 event wire format (docs/events.md) as pydantic models, and its validator.

The models are the contract between every emitter and the processor. `decode_event` turns raw
bytes from Kafka or a JSON Lines file into a validated event or an `InvalidEvent` that carries a
machine-readable reason; it never raises for bad input. The bounds (sizes, ranges, the character
policy of labels, the `ts` window) live in `event_bounds`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .event_bounds import (
    DEFAULT_TS_WINDOW,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_TOOL_CALLS,
    MAX_TOOLS_OFFERED,
    Attributes,
    DurationMs,
    EventTime,
    Id,
    Label,
    Name,
    OptionalId,
    OptionalLabel,
    OptionalName,
    Role,
    TokenCount,
    TsWindow,
    UserId,
    forbidden_character,
    nfc,
)

SCHEMA_VERSION = 1
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


class _Model(BaseModel):
    # Unknown extra fields are ignored, never an error (docs/events.md, "Validity").
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Message(_Model):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None = None
    tool_call_id: OptionalId = None


class OutputMessage(_Model):
    role: Role
    content: str


class RequestedToolCall(_Model):
    id: Annotated[str, Field(max_length=MAX_ID_CHARS)]
    name: Name
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class Usage(_Model):
    input_tokens: TokenCount
    output_tokens: TokenCount
    cached_input_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0


class CallError(_Model):
    type: Name
    message: str


class Tool(_Model):
    name: Name
    call_id: OptionalId = None
    arguments: dict[str, Any] | str | None = None
    result: Any = None
    status: Literal["ok", "error"] = "ok"
    duration_ms: DurationMs | None = None


# A strict int pinned to 1: `true` (which equals 1 in Python) must not pass.
SchemaVersion = Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION, json_schema_extra={"const": 1})]


class _EventBase(_Model):
    schema_version: SchemaVersion
    event_id: UUID
    ts: EventTime
    trace_id: Id
    span_id: Id
    parent_span_id: OptionalId = None
    session_id: OptionalId = None
    service: Label
    environment: Label = "production"
    tenant: Label
    feature: Label
    user_id: UserId = None
    attributes: Attributes = Field(default_factory=dict)


class _ModelCallBase(_EventBase):
    provider: Label
    model: Name
    prompt_id: OptionalLabel = None
    prompt_version: OptionalLabel = None


class PromptEvent(_ModelCallBase):
    """Emitted when a model request is sent."""

    type: Literal["prompt"]
    messages: Annotated[list[Message], Field(min_length=1)]
    params: dict[str, Any] = Field(default_factory=dict)
    tools: Annotated[list[Name], Field(max_length=MAX_TOOLS_OFFERED)] = Field(default_factory=list)


class OutputEvent(_ModelCallBase):
    """Emitted when a model response (or error) comes back; shares `span_id` with its prompt."""

    type: Literal["output"]
    response_model: OptionalName = None
    output: list[OutputMessage] = Field(default_factory=list)
    tool_calls: Annotated[list[RequestedToolCall], Field(max_length=MAX_TOOL_CALLS)] = Field(default_factory=list)
    finish_reason: OptionalLabel = None
    usage: Usage
    latency_ms: DurationMs | None = None
    ttft_ms: DurationMs | None = None
    error: CallError | None = None


class ToolCallEvent(_EventBase):
    """One tool execution."""

    type: Literal["tool_call"]
    tool: Tool


Event = Annotated[PromptEvent | OutputEvent | ToolCallEvent, Field(discriminator="type")]
AnyEvent = PromptEvent | OutputEvent | ToolCallEvent
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)
EVENT_TYPES = ("prompt", "output", "tool_call")


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """Why a raw message is not a valid v1 event. `reason` is one of `REASONS`."""

    reason: str
    field: str
    detail: str
    raw: bytes


REASONS = (
    "not_json",  # the bytes do not parse as JSON (or are not UTF-8)
    "not_object",  # valid JSON, but not an object
    "too_large",  # over the size limit in bytes
    "too_deep",  # JSON nested deeper than the parser's limit
    "unsupported_schema_version",  # schema_version missing or not 1
    "unknown_type",  # `type` missing or not one of EVENT_TYPES
    "missing_field",  # a required field is absent or null
    "wrong_type",  # a field has the wrong JSON type
    "invalid_value",  # right type, value outside its domain (bad UUID, timestamp, negative count, empty id)
    "out_of_range",  # a number above its ceiling (token count > 10^9, duration > 1 day)
    "not_finite",  # NaN, Infinity or -Infinity (or a number beyond the double range) in a number field
    "too_long",  # a string over its maximum length, or a list / object with too many items
    "forbidden_character",  # a control, format (bidi, zero-width) or separator character in a label
    "blank",  # a required label that is empty or whitespace only
    "ts_out_of_range",  # ts outside 1970..2200, or outside the window around the receive time
)

_WRONG_TYPE_SUFFIXES = ("_type", "_parsing")
# pydantic error types -> reason, for the bounds (the rest is worked out in `_explain`).
_REASON_BY_ERROR = {
    "less_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "finite_number": "not_finite",
    "string_too_long": "too_long",
    "too_long": "too_long",
}


def decode_event(
    raw: bytes | str,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    *,
    received_at: datetime | None = None,
    ts_window: TsWindow | None = None,
) -> PromptEvent | OutputEvent | ToolCallEvent | InvalidEvent:
    """Validate one wire message. Returns the event, or an `InvalidEvent` saying why not.

    With `received_at` (an aware datetime: when the processor received the message), an event whose
    `ts` lies outside `ts_window` around it (default `DEFAULT_TS_WINDOW`: 400 days back, 1 day
    ahead) is invalid with reason `ts_out_of_range`. Without it only the fixed range 1970..2200 applies.
    Raises ValueError only for a wrong call (naive `received_at`, or a window without `received_at`).
    """
    if received_at is None:
        if ts_window is not None:
            raise ValueError("decode_event: ts_window needs received_at")
    elif received_at.utcoffset() is None:
        raise ValueError("decode_event: received_at must be timezone-aware")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        return InvalidEvent("too_large", "", f"{len(raw)} bytes > limit {max_bytes}", raw)
    try:
        event = EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        return _explain(exc, raw)
    # Labels are NFC-normalised; only a label with a non-ASCII character can need it.
    if not _labels_are_ascii(event):
        event = _nfc_labels(event)
    if received_at is not None:
        problem = (ts_window or DEFAULT_TS_WINDOW).problem(event.ts, received_at)
        if problem:
            return InvalidEvent("ts_out_of_range", "ts", problem, raw)
    return event


_TOP_LABELS = {
    "prompt": ("service", "environment", "tenant", "feature", "provider", "model", "prompt_id", "prompt_version"),
    "output": (
        "service", "environment", "tenant", "feature", "provider", "model", "prompt_id", "prompt_version",
        "response_model", "finish_reason",
    ),
    "tool_call": ("service", "environment", "tenant", "feature"),
}  # fmt: skip


def _labels_are_ascii(event: AnyEvent) -> bool:
    # One concatenation and one isascii: far cheaper than a check per label.
    text = event.service + event.environment + event.tenant + event.feature
    if isinstance(event, ToolCallEvent):
        return (text + event.tool.name).isascii()
    text += event.provider + event.model + (event.prompt_id or "") + (event.prompt_version or "")
    if isinstance(event, PromptEvent):
        return (text + "".join(event.tools)).isascii()
    text += (event.response_model or "") + (event.finish_reason or "")
    if event.tool_calls:
        text += "".join([call.name for call in event.tool_calls])
    return (text + (event.error.type if event.error else "")).isascii()


def _nfc_labels(event: AnyEvent) -> AnyEvent:
    """`event` with its labels in normal form C: itself when they already are, else a copy."""
    update: dict[str, Any] = {}
    for name in _TOP_LABELS[event.type]:
        value = getattr(event, name)
        if value and (normal := nfc(value)) != value:
            update[name] = normal
    if isinstance(event, PromptEvent):
        if any(nfc(tool) != tool for tool in event.tools):
            update["tools"] = [nfc(tool) for tool in event.tools]
    elif isinstance(event, OutputEvent):
        if any(nfc(call.name) != call.name for call in event.tool_calls):
            update["tool_calls"] = [call.model_copy(update={"name": nfc(call.name)}) for call in event.tool_calls]
        if event.error is not None and nfc(event.error.type) != event.error.type:
            update["error"] = event.error.model_copy(update={"type": nfc(event.error.type)})
    elif nfc(event.tool.name) != event.tool.name:
        update["tool"] = event.tool.model_copy(update={"name": nfc(event.tool.name)})
    return event.model_copy(update=update) if update else event


def _field_name(loc: list[int | str]) -> str:
    parts: list[str] = []
    for part in loc:
        if parts and parts[-1] == "arguments":
            break  # below `arguments` pydantic names the union member it tried (`str`, `dict[str,any]`)
        # A key of `attributes` is the sender's data (it may be an email): it never becomes a field name.
        parts.append("*" if parts[-1:] == ["attributes"] and part != "[key]" else str(part))
    return ".".join(parts)


def _explain(exc: ValidationError, raw: bytes) -> InvalidEvent:
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        message = first["msg"]
        if "recursion limit exceeded" in message:
            return InvalidEvent("too_deep", "", message, raw)
        if "number out of range" in message:
            return InvalidEvent("out_of_range", "", message, raw)
        return InvalidEvent("not_json", "", message, raw)
    if kind in ("model_attributes_type", "model_type", "dict_type") and not first["loc"]:
        return InvalidEvent("not_object", "", first["msg"], raw)
    # The union tag is the first element of every location below it; drop it.
    loc = list(first["loc"])
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        if kind == "union_tag_invalid" and not _json_object(raw):
            return InvalidEvent("not_object", "", first["msg"], raw)
        # schema_version is checked before the type: an event of an unsupported version
        # may legitimately have types we do not know.
        version_problem = _schema_version_problem(raw)
        if version_problem:
            return InvalidEvent("unsupported_schema_version", "schema_version", version_problem, raw)
        return InvalidEvent("unknown_type", "type", first["msg"], raw)
    if loc and loc[0] in EVENT_TYPES:
        loc = loc[1:]
    # Report a schema-version problem ahead of anything else in the same event.
    for err in errors:
        err_loc = [p for p in err["loc"] if p not in EVENT_TYPES]
        if err_loc == ["schema_version"]:
            return InvalidEvent("unsupported_schema_version", "schema_version", err["msg"], raw)
    field = _field_name(loc)
    if kind == "missing" or first.get("input", ...) is None:
        return InvalidEvent("missing_field", field, first["msg"], raw)
    if kind == "string_pattern_mismatch":  # only labels have a pattern
        problem = forbidden_character(first["input"])
        return (
            InvalidEvent("forbidden_character", field, problem, raw)
            if problem
            else InvalidEvent("blank", field, "a label must not be empty or whitespace only", raw)
        )
    if field == "ts" and kind in ("greater_than_equal", "less_than"):
        return InvalidEvent("ts_out_of_range", "ts", first["msg"], raw)
    bound = _REASON_BY_ERROR.get(kind)
    if bound is not None:
        return InvalidEvent(bound, field, first["msg"], raw)
    if kind.endswith(_WRONG_TYPE_SUFFIXES) and kind not in ("uuid_parsing", "datetime_parsing"):
        return InvalidEvent("wrong_type", field, first["msg"], raw)
    return InvalidEvent("invalid_value", field, first["msg"], raw)


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def _schema_version_problem(raw: bytes) -> str:
    doc = json.loads(raw)
    if "schema_version" not in doc or doc["schema_version"] is None:
        return "schema_version is missing"
    if doc["schema_version"] != SCHEMA_VERSION or isinstance(doc["schema_version"], bool):
        return f"schema_version {doc['schema_version']!r} is not supported (this processor reads 1)"
    return ""


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the v1 contract, for emitters in other languages."""
    schema = EVENT_ADAPTER.json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://tokentrail.dev/schemas/event-v1.json",
        "title": "tokentrail event, schema_version 1",
        **schema,
    }
