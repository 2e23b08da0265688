"""OTLP trace payloads (protobuf or OTLP/JSON) -> plain `Span` records the mapping reads.

Both encodings the OpenTelemetry Collector's kafka exporter writes (`otlp_proto`: a serialized
`ExportTraceServiceRequest`; `otlp_json`) and the `file` exporter's lines decode to the same
records, so the mapping (mapping.py) is written once. Protobuf is decoded by `opentelemetry-proto`
(the upb runtime, in C). OTLP/JSON is not protobuf's canonical JSON: trace and span ids are hex
strings, enums are integers and 64-bit integers are decimal strings (OTLP specification, "JSON
Protobuf Encoding"); the reader below follows that and also takes plain JSON numbers.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OtlpDecodeError", "Span", "SpanEvent", "decode_request", "is_json", "looks_like_otlp_json"]

STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


class OtlpDecodeError(ValueError):
    """The bytes are not an ExportTraceServiceRequest in the encoding they claim."""


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class Span:
    """One span with its resource's attributes; ids as lowercase hex ("" when absent)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[SpanEvent] = field(default_factory=list)


def is_json(raw: bytes) -> bool:
    """OTLP/JSON starts with `{`; a protobuf ExportTraceServiceRequest never does (0x7B would be
    field 15 as a deprecated group, which the message does not have)."""
    return raw.lstrip()[:1] == b"{"


def looks_like_otlp_json(raw: bytes) -> bool:
    """A cheap first look for mixed files: a JSON object naming `resourceSpans` somewhere."""
    return b'"resourceSpans"' in raw and is_json(raw)


def decode_request(raw: bytes, encoding: str = "auto") -> list[Span]:
    """Every span of one ExportTraceServiceRequest. `encoding`: "proto", "json" or "auto" (per message)."""
    if encoding == "json" or (encoding == "auto" and is_json(raw)):
        return _from_json(raw)
    return _from_proto(raw)


# -- protobuf ---------------------------------------------------------------------------------


def _from_proto(raw: bytes) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(raw)
    except DecodeError as exc:
        raise OtlpDecodeError(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    Span(
                        s.trace_id.hex(),
                        s.span_id.hex(),
                        s.parent_span_id.hex(),
                        s.name,
                        s.start_time_unix_nano,
                        s.end_time_unix_nano,
                        s.status.code,
                        s.status.message,
                        _proto_attributes(s.attributes),
                        resource,
                        [SpanEvent(e.name, e.time_unix_nano, _proto_attributes(e.attributes)) for e in s.events],
                    )
                )
    return spans


def _proto_attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _proto_value(kv.value) for kv in pairs}


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _proto_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


# -- OTLP/JSON --------------------------------------------------------------------------------


def _from_json(raw: bytes) -> list[Span]:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise OtlpDecodeError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        raise OtlpDecodeError("not an OTLP/JSON ExportTraceServiceRequest (no resourceSpans list)")
    spans: list[Span] = []
    try:
        for resource_spans in doc["resourceSpans"]:
            resource = _json_attributes((resource_spans.get("resource") or {}).get("attributes"))
            for scope_spans in resource_spans.get("scopeSpans") or ():
                for s in scope_spans.get("spans") or ():
                    status = s.get("status") or {}
                    spans.append(
                        Span(
                            _hex_id(s.get("traceId"), "traceId"),
                            _hex_id(s.get("spanId"), "spanId"),
                            _hex_id(s.get("parentSpanId"), "parentSpanId"),
                            str(s.get("name") or ""),
                            _int(s.get("startTimeUnixNano"), "startTimeUnixNano"),
                            _int(s.get("endTimeUnixNano"), "endTimeUnixNano"),
                            _int(status.get("code"), "status.code"),
                            str(status.get("message") or ""),
                            _json_attributes(s.get("attributes")),
                            resource,
                            [
                                SpanEvent(
                                    str(e.get("name") or ""),
                                    _int(e.get("timeUnixNano"), "events.timeUnixNano"),
                                    _json_attributes(e.get("attributes")),
                                )
                                for e in s.get("events") or ()
                            ],
                        )
                    )
    except (AttributeError, TypeError) as exc:  # a list where an object belongs, and the like
        raise OtlpDecodeError(f"malformed OTLP/JSON: {exc}") from None
    return spans


def _hex_id(value: Any, name: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise OtlpDecodeError(f"{name} must be a hex string, got {type(value).__name__}")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise OtlpDecodeError(f"{name} is not hex: {value[:40]!r}") from None
    return value.lower()


def _int(value: Any, name: str) -> int:
    """int64 fields arrive as decimal strings (or, leniently, JSON integers)."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OtlpDecodeError(f"{name} must be an integer or a decimal string")
    try:
        return int(value)
    except ValueError:
        raise OtlpDecodeError(f"{name} is not a decimal integer: {str(value)[:40]!r}") from None


def _json_attributes(pairs: Any) -> dict[str, Any]:
    if not pairs:
        return {}
    return {str(kv.get("key")): _json_value(kv.get("value")) for kv in pairs}


def _json_value(value: Any) -> Any:
    if not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return _int(value["intValue"], "intValue")
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])  # "NaN" / "Infinity" arrive as strings
    if "arrayValue" in value:
        return [_json_value(v) for v in (value["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in value:
        return _json_attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]  # base64, as in protobuf JSON
    return None
