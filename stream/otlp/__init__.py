"""OpenTelemetry GenAI spans (OTLP, as the OpenTelemetry Collector's kafka and file exporters write
them) -> v1 events through the same pipeline stages (docs/otlp.md).

`decode` reads OTLP protobuf and OTLP/JSON into plain span records, `content` reads a span's
messages in every convention, `mapping` turns one span into v1 events, and `stage.OtlpExpand`
is the pipeline stage that puts them in a batch before validation.
"""

from .decode import OtlpDecodeError, Span, SpanEvent, decode_request
from .mapping import MappingSettings, Skipped, Unmappable, event_id, map_span
from .stage import OtlpCounts, OtlpExpand, OtlpSettings

__all__ = [
    "MappingSettings",
    "OtlpCounts",
    "OtlpDecodeError",
    "OtlpExpand",
    "OtlpSettings",
    "Skipped",
    "Span",
    "SpanEvent",
    "Unmappable",
    "decode_request",
    "event_id",
    "map_span",
]
