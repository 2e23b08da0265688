"""OTLP on Kafka through the real worker into a real (embedded) ClickHouse: exact counts and costs.

Messages are produced exactly as the OpenTelemetry Collector's kafka exporter writes them with
`partition_traces_by_id: true`: one serialized `ExportTraceServiceRequest` per trace (`otlp_proto`)
or its OTLP/JSON form (`otlp_json`), keyed by the trace id in hex. v1 events go to the events
topic in the same run, and both must come out through the same stages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from kafka_harness import produce, read_store, start_worker, stop, wait_caught_up
from otlp_builders import MS, T0, chat_current, chat_older, http_span, json_line, request, span, tool_span

from tokentrail.stream.pricing import PriceBook

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

QUERIES = {
    "events": "SELECT type, count() FROM tokentrail.events FINAL GROUP BY type ORDER BY type",
    "calls": "SELECT count(), sum(cost_usd), countIf(priced = 0) FROM tokentrail.calls FINAL",
    "by_tenant": "SELECT tenant, count() FROM tokentrail.calls FINAL GROUP BY tenant ORDER BY tenant",
    "tools": "SELECT tool_name, status, count() FROM tokentrail.tool_calls FINAL GROUP BY ALL ORDER BY ALL",
    "dead": "SELECT reason, count() FROM tokentrail.deadletter FINAL GROUP BY reason ORDER BY reason",
    "pii": "SELECT count() FROM tokentrail.events FINAL WHERE payload LIKE '%jane.doe@example.com%'",
}


def cost(calls: list[tuple[str, str, int, int, int, int]]) -> Decimal:
    """Expected total, priced call by call from the price book (provider, model, in, cached, out, end ms)."""
    book = PriceBook()
    total = Decimal(0)
    for provider, model, inp, cached, out, end_ms in calls:
        ts = datetime.fromtimestamp((T0 + end_ms * MS) / 1e9, UTC)
        total += book.price(provider, model, inp, cached, out, ts).cost_usd
    return total


def exporter_messages(traces: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[str, str, int, int, int, int]]]:
    """(key, value) pairs as the exporter writes them, and the priced calls they hold."""
    messages, calls = [], []
    for i in range(traces):
        trace = f"{i + 1:032x}"
        tenant = f"tenant-{i % 3}"
        resource = {"service.name": "order-agent", "tokentrail.tenant": tenant}
        if i % 2 == 0:
            usage = (900 + i, 50 + i, 100)
            first = chat_current(
                trace,
                f"{i + 1:08x}00000001",
                usage=usage,
                tool_calls=[("call_1", "search", {"q": i})],
                question=f"write to jane.doe@example.com about order {i}",
            )
            calls.append(("openai", "gpt-4o", usage[0], usage[2], usage[1], 1000))
        else:
            first = chat_older(trace, f"{i + 1:08x}00000001", model="gpt-4o-mini", usage=(700 + i, 40))
            calls.append(("openai", "gpt-4o-mini", 700 + i, 0, 40, 1000))
        spans = [
            first,
            tool_span(trace, f"{i + 1:08x}00000002", "search", {"q": i}, [i], call_id="call_1", start_ms=1100),
            http_span(trace, f"{i + 1:08x}00000003"),
        ]
        req = request(resource, spans)
        value = json_line(req) if i % 5 == 4 else req.SerializeToString()  # some otlp_json on the same topic
        messages.append((trace.encode(), value))
    return messages, calls


def test_otlp_topic_beside_events_topic(kafka_bootstrap: str, new_topic: Any, tmp_path: Path) -> None:
    """Protobuf and JSON OTLP messages and v1 events, with a re-export, garbage and an unmappable span."""
    events_topic = new_topic(partitions=2, prefix="events")
    otlp_topic = new_topic(partitions=2, prefix="otlp")
    messages, calls = exporter_messages(20)
    unmappable = request(
        {"service.name": "order-agent"},
        [span("f" * 32, "f" * 16, attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})],
    ).SerializeToString()
    messages += [messages[0], (b"", b"\x08\x96\x01 not OTLP at all"), (b"f" * 32, unmappable)]  # re-export, garbage
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for key, value in messages:
        producer.produce(otlp_topic, value, key or None)
    assert producer.flush(30) == 0
    v1 = [
        json.dumps(
            {
                "schema_version": 1,
                "event_id": f"0193a1c2-7d1e-7b3a-9c55-{n:012x}",
                "type": "tool_call",
                "ts": "2026-11-20T09:01:00.100Z",
                "trace_id": f"v1-{n}",
                "span_id": "s",
                "service": "svc",
                "tenant": "v1-tenant",
                "feature": "f",
                "tool": {"name": "lookup"},
            }
        ).encode()
        for n in range(5)
    ]
    produce(kafka_bootstrap, events_topic, v1)

    store = tmp_path / "store"
    worker = start_worker(kafka_bootstrap, events_topic, store, group="otlp", extra=["--otlp-topic", otlp_topic])
    try:
        wait_caught_up(kafka_bootstrap, events_topic, "otlp", worker)
        wait_caught_up(kafka_bootstrap, otlp_topic, "otlp", worker, events_topic=events_topic)
    finally:
        stop(worker)
    got = read_store(store, QUERIES)
    assert got["events"] == [("output", 20), ("prompt", 20), ("tool_call", 25)]
    count, total, unpriced = got["calls"][0]
    assert (count, unpriced) == (20, 0)
    assert Decimal(total) == cost(calls)
    assert got["by_tenant"] == [("tenant-0", 7), ("tenant-1", 7), ("tenant-2", 6)]
    assert got["tools"] == [("lookup", "ok", 5), ("search", "ok", 20)]
    assert got["dead"] == [("otlp_missing_attribute", 1), ("otlp_undecodable", 1)]
    assert got["pii"] == [(0,)]  # redacted like any v1 event
