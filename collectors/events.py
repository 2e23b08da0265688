"""The v1 event wire format (../shared/EVENTS.md) as pydantic models, and its validator.

The models are the contract between every emitter and the processor. `decode_event` turns raw
bytes from Kafka or a JSON Lines file into a validated event or an `InvalidEvent` that carries a
machine-readable reason; it never raises for bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    TypeAdapter,
    ValidationError,
)

SCHEMA_VERSION = 1
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024

Id = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    # Unknown extra fields are ignored, never an error (EVENTS.md "Validity").
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Message(_Model):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None
    tool_call_id: str | None = None


class OutputMessage(_Model):
    role: str
    content: str


class RequestedToolCall(_Model):
    id: str
    name: Text
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class Usage(_Model):
    input_tokens: NonNegativeInt
    output_tokens: NonNegativeInt
    cached_input_tokens: NonNegativeInt = 0
    reasoning_tokens: NonNegativeInt = 0


class CallError(_Model):
    type: str
    message: str


class Tool(_Model):
    name: Text
    call_id: str | None = None
    arguments: dict[str, Any] | str | None = None
    result: Any = None
    status: Literal["ok", "error"] = "ok"
    duration_ms: NonNegativeFloat | None = None


# A strict int pinned to 1: `true` (which equals 1 in Python) must not pass.
SchemaVersion = Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION, json_schema_extra={"const": 1})]


class _EventBase(_Model):
    schema_version: SchemaVersion
    event_id: UUID
    ts: AwareDatetime
    trace_id: Id
    span_id: Id
    parent_span_id: str | None = None
    session_id: str | None = None
    service: Text
    environment: str = "production"
    tenant: Text
    feature: Text
    user_id: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class _ModelCallBase(_EventBase):
    provider: Text
    model: Text
    prompt_id: str | None = None
    prompt_version: str | None = None


class PromptEvent(_ModelCallBase):
    """Emitted when a model request is sent."""

    type: Literal["prompt"]
    messages: Annotated[list[Message], Field(min_length=1)]
    params: dict[str, Any] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list)


class OutputEvent(_ModelCallBase):
    """Emitted when a model response (or error) comes back; shares `span_id` with its prompt."""

    type: Literal["output"]
    response_model: str | None = None
    output: list[OutputMessage] = Field(default_factory=list)
    tool_calls: list[RequestedToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage
    latency_ms: NonNegativeFloat | None = None
    ttft_ms: NonNegativeFloat | None = None
    error: CallError | None = None


class ToolCallEvent(_EventBase):
    """One tool execution."""

    type: Literal["tool_call"]
    tool: Tool


Event = Annotated[PromptEvent | OutputEvent | ToolCallEvent, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[PromptEvent | OutputEvent | ToolCallEvent] = TypeAdapter(Event)
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
    "too_large",  # over the size limit
    "unsupported_schema_version",  # schema_version missing or not 1
    "unknown_type",  # `type` missing or not one of EVENT_TYPES
    "missing_field",  # a required field is absent or null
    "wrong_type",  # a field has the wrong JSON type
    "invalid_value",  # right type, value outside its domain (bad UUID, timestamp, negative count)
)

_WRONG_TYPE_SUFFIXES = ("_type", "_parsing")


def decode_event(
    raw: bytes | str, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> PromptEvent | OutputEvent | ToolCallEvent | InvalidEvent:
    """Validate one wire message. Returns the event, or an `InvalidEvent` saying why not."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        return InvalidEvent("too_large", "", f"{len(raw)} bytes > limit {max_bytes}", raw)
    try:
        return EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        return _explain(exc, raw)


def _explain(exc: ValidationError, raw: bytes) -> InvalidEvent:
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return InvalidEvent("not_json", "", first["msg"], raw)
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
    field = ".".join(str(p) for p in loc)
    if kind == "missing" or first.get("input", ...) is None:
        return InvalidEvent("missing_field", field, first["msg"], raw)
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
