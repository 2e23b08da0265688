"""The pipeline's first stage: OTLP messages in a batch become the v1 events of their GenAI spans.

Runs before `Validate` (stages.py) and rewrites `batch.inbound`: a v1 message passes through
untouched; an OTLP message (from a configured OTLP topic, protobuf or JSON, or any line that is an
OTLP/JSON `ExportTraceServiceRequest`) is replaced by one inbound v1 message per event of its
mapped spans, which every later stage (validation, dedupe, redaction, pricing, rows, loops)
treats like any other. Undecodable messages and unmappable GenAI spans become dead letters here;
spans that are not GenAI are counted and dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tokentrail.collectors.events import InvalidEvent

from ..batch import Batch, DeadLetter, Inbound
from .decode import OtlpDecodeError, Span, decode_request, looks_like_otlp_json
from .mapping import CONTEXT_OPERATIONS, MappingSettings, Unmappable, map_span

__all__ = ["ENCODINGS", "OtlpCounts", "OtlpExpand", "OtlpSettings"]

ENCODINGS = ("auto", "proto", "json")
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


@dataclass(frozen=True)
class OtlpSettings:
    """`topics`: Kafka topics whose messages are OTLP (sources `topic/partition@offset`); OTLP/JSON
    lines are recognised anywhere. `encoding`: of those topics' messages, "auto" detects per message."""

    topics: frozenset[str] = frozenset()
    encoding: str = "auto"
    mapping: MappingSettings = field(default_factory=MappingSettings)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"OTLP encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")


@dataclass
class OtlpCounts:
    """Running totals since the stage was built."""

    messages: int = 0  # OTLP messages or lines
    spans: int = 0
    events: int = 0  # v1 events produced
    not_genai: int = 0  # spans skipped: no GenAI attributes (HTTP, DB, ...)
    agent_context: int = 0  # invoke_agent and the like: context for their children, no event
    dead_letters: int = 0  # undecodable messages + unmappable GenAI spans

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class OtlpExpand:
    """OTLP messages -> inbound v1 events (see the module docstring)."""

    def __init__(self, settings: OtlpSettings | None = None) -> None:
        self.settings = settings or OtlpSettings()
        self.counts = OtlpCounts()

    def __call__(self, batch: Batch) -> None:
        topics = self.settings.topics
        if not topics and not any(looks_like_otlp_json(item.raw) for item in batch.inbound):
            return  # the common case: a batch of v1 events, looked at once
        out: list[Inbound] = []
        for item in batch.inbound:
            from_topic = bool(topics) and item.source.rpartition("/")[0] in topics
            if from_topic or looks_like_otlp_json(item.raw):
                self._expand(item, from_topic, out, batch)
            else:
                out.append(item)
        batch.inbound = out

    def _expand(self, item: Inbound, from_topic: bool, out: list[Inbound], batch: Batch) -> None:
        encoding = self.settings.encoding if from_topic else "json"
        try:
            spans = decode_request(item.raw, encoding)
        except OtlpDecodeError as exc:
            if not from_topic:
                out.append(item)  # a line that merely mentions resourceSpans: v1 validation decides
                return
            self.counts.messages += 1
            self.counts.dead_letters += 1
            invalid = InvalidEvent("otlp_undecodable", "", str(exc), item.raw)
            batch.dead.append(DeadLetter(item, invalid, item.raw.decode("utf-8", "replace")))
            return
        counts = self.counts
        counts.messages += 1
        counts.spans += len(spans)
        agents = _agent_names(spans)
        for span in spans:
            mapped = map_span(span, self.settings.mapping, agents)
            if isinstance(mapped, list):
                counts.events += len(mapped)
                for event in mapped:
                    source = f"{item.source}#{span.span_id}/{event['type']}"
                    out.append(Inbound(source, _COMPACT(event).encode(), item.received_at))
            elif isinstance(mapped, Unmappable):
                counts.dead_letters += 1
                at = Inbound(f"{item.source}#{span.span_id}", _span_json(span), item.received_at)
                invalid = InvalidEvent(mapped.reason, mapped.field, mapped.detail, at.raw)
                batch.dead.append(DeadLetter(at, invalid, at.raw.decode()))
            elif mapped.why == "not_genai":
                counts.not_genai += 1
            else:
                counts.agent_context += 1


def _agent_names(spans: list[Span]) -> dict[str, str]:
    """Agent name by span id of the agent spans in one request, for their children's `feature`."""
    out = {}
    for span in spans:
        a = span.attributes
        if a.get("gen_ai.operation.name") in CONTEXT_OPERATIONS and a.get("gen_ai.agent.name"):
            out[span.span_id] = str(a["gen_ai.agent.name"])
    return out


def _span_json(span: Span) -> bytes:
    """What a dead letter keeps of an unmappable span: the span as JSON (redacted like any payload)."""
    doc: dict[str, Any] = asdict(span)
    return _COMPACT(doc).encode()
