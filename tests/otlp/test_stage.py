"""OtlpExpand in front of the standard stages: OTLP messages become validated, priced rows like v1 events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from otlp_builders import agent_span, chat_current, http_span, json_line, request, span, tool_span

from tokentrail.stream.otlp import OtlpExpand, OtlpSettings
from tokentrail.stream.pricing import PriceBook
from tokentrail.stream.stages import Inbound, Pipeline, build_pipeline

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
RESOURCE = {"service.name": "order-agent", "tokentrail.tenant": "northwind"}
NOW = datetime.now(UTC)


def pipeline(settings: OtlpSettings) -> tuple[Pipeline, OtlpExpand]:
    expand = OtlpExpand(settings)
    base = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True)
    return Pipeline([expand, *base.stages]), expand


def v1_event() -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": "0193a1c2-7d1e-7b3a-9c55-2f1e0b6c9a10",
            "type": "tool_call",
            "ts": "2026-11-20T09:01:00.100Z",
            "trace_id": "t1",
            "span_id": "s1",
            "service": "svc",
            "tenant": "t",
            "feature": "f",
            "tool": {"name": "resourceSpans"},  # mentions the word: still a v1 event
        }
    ).encode()


def test_mixed_batch_from_topic_and_lines() -> None:
    """Protobuf from the OTLP topic, an OTLP/JSON line and a v1 event in one batch; HTTP spans counted, not dead."""
    req = request(
        RESOURCE,
        [
            agent_span(TRACE, "a000000000000001", "triage"),
            chat_current(TRACE, "a000000000000002", parent="a000000000000001", usage=(1000, 100, 0)),
            tool_span(TRACE, "a000000000000003", "search", {"q": 1}, [1], parent="a000000000000001"),
            http_span(TRACE, "a000000000000004"),
        ],
    )
    other = request(RESOURCE, [chat_current("5bf92f3577b34da6a3ce929d0e0e4736", "b000000000000001")])
    p, expand = pipeline(OtlpSettings(topics=frozenset({"otlp_spans"})))
    batch = p.process(
        [
            Inbound("otlp_spans/0@0", req.SerializeToString(), NOW),
            Inbound("spans.jsonl:1", json_line(other), NOW),
            Inbound("events.jsonl:1", v1_event(), NOW),
        ]
    )
    assert [d.invalid.reason for d in batch.dead] == []
    assert len(batch.accepted) == 2 + 1 + 2 + 1
    calls = batch.rows["calls"]
    assert len(calls) == 2 and all(c["priced"] == 1 and c["cost_usd"] > 0 for c in calls)
    assert {c["feature"] for c in calls} == {"triage", "order-agent"}
    assert [t["tool_name"] for t in batch.rows["tool_calls"]] == ["search", "resourceSpans"]
    assert expand.counts.as_dict() == {
        "messages": 2,
        "spans": 5,
        "events": 5,
        "not_genai": 1,
        "agent_context": 1,
        "dead_letters": 0,
    }
    sources = {r["source"] for r in batch.receipts}
    assert "otlp_spans/0@0#a000000000000002/output" in sources


def test_reexported_span_is_a_duplicate() -> None:
    """The same span exported twice (a collector retry) is stored once: the event ids are derived."""
    raw = request(RESOURCE, [chat_current(TRACE, "a000000000000005")]).SerializeToString()
    p, _ = pipeline(OtlpSettings(topics=frozenset({"otlp_spans"})))
    first = p.process([Inbound("otlp_spans/0@1", raw, NOW)])
    again = p.process([Inbound("otlp_spans/1@7", raw, NOW)])
    assert len(first.accepted) == 2 and len(again.accepted) == 0 and again.duplicates == 2


def test_undecodable_and_unmappable_become_dead_letters_with_reasons() -> None:
    """Bytes on the OTLP topic that are not OTLP, and a GenAI span without a provider, are dead letters."""
    bad_span = span(TRACE, "a000000000000006", attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
    raw = request(RESOURCE, [bad_span, chat_current(TRACE, "a000000000000007")]).SerializeToString()
    p, expand = pipeline(OtlpSettings(topics=frozenset({"otlp_spans"})))
    batch = p.process(
        [
            Inbound("otlp_spans/0@2", b"\xff\xff\xff not protobuf", NOW),
            Inbound("otlp_spans/0@3", raw, NOW),
            Inbound("otlp_spans/0@4", b'{"resourceSpans": 5}', NOW),
        ]
    )
    reasons = sorted((d.invalid.reason, d.invalid.field) for d in batch.dead)
    assert reasons == [
        ("otlp_missing_attribute", "gen_ai.provider.name"),
        ("otlp_undecodable", ""),
        ("otlp_undecodable", ""),
    ]
    assert len(batch.accepted) == 2  # the good span in the same message still counts
    assert expand.counts.dead_letters == 3
    dead_span = next(d for d in batch.dead if d.invalid.reason == "otlp_missing_attribute")
    assert dead_span.inbound.source == "otlp_spans/0@3#a000000000000006"
    assert json.loads(dead_span.payload)["span_id"] == "a000000000000006"


def test_line_that_is_neither_is_a_v1_dead_letter() -> None:
    """A line mentioning resourceSpans that is not OTLP falls through to v1 validation and is dead there."""
    p, expand = pipeline(OtlpSettings())
    batch = p.process([Inbound("f.jsonl:1", b'{"resourceSpans": "nope"}', NOW)])
    assert [d.invalid.reason for d in batch.dead] == ["unsupported_schema_version"]
    assert expand.counts.messages == 0


def test_encoding_setting_forces_protobuf() -> None:
    """With encoding=proto, a JSON message on the OTLP topic is not guessed at: it is undecodable."""
    line = json_line(request(RESOURCE, [chat_current(TRACE, "a000000000000008")]))
    p, _ = pipeline(OtlpSettings(topics=frozenset({"otlp_spans"}), encoding="proto"))
    batch = p.process([Inbound("otlp_spans/0@5", line, NOW)])
    assert [d.invalid.reason for d in batch.dead] == ["otlp_undecodable"]
    p, _ = pipeline(OtlpSettings(topics=frozenset({"otlp_spans"}), encoding="json"))
    assert len(p.process([Inbound("otlp_spans/0@5", line, NOW)]).accepted) == 2
