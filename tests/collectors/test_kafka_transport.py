"""The collector against a real Kafka broker: everything arrives once, and a dead broker loses nothing."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from kafka_helpers import consume_events

import tokentrail.collectors as tt
from tokentrail.collectors.kafka import KafkaTransport

pytestmark = pytest.mark.kafka

MESSAGES = [
    {"role": "system", "content": "You answer order questions. " * 10},
    {"role": "user", "content": "Where is 7781?"},
]
# The documented bound (docs/collector.md): a call never waits on I/O or on the exporter thread. Its
# median is microseconds and its p99 well under 5 ms; its maximum is what the OS scheduler allows
# on a busy host (stalls of ~0.25 s were seen with 2 cores under load), so the hard bound is
# 0.5 s: far below anything that waits on the broker (a probe takes 1 s, delivery timeouts 3 s).
CALLER_P99_S = 0.005
CALLER_BOUND_S = 0.5


def emit_calls(collector: tt.Collector, n_calls: int) -> list[float]:
    """Emit n model calls (2 events each) across traces of 5 calls; return each call's caller time, sorted."""
    times = []
    for i in range(n_calls):
        if i % 5 == 0:
            scope = collector.trace(feature="order-support", tenant=f"tenant-{i % 3}")
            scope.__enter__()
        t0 = time.perf_counter()
        with collector.model_call(provider="openai", model="gpt-4o", messages=MESSAGES) as call:
            call.finish(
                response_model="gpt-4o-2024-08-06", output=f"answer {i}", usage={"input_tokens": 90, "output_tokens": 4}
            )
        times.append(time.perf_counter() - t0)
        if i % 5 == 4:
            scope.__exit__(None, None, None)
    return sorted(times)


def make_collector(bootstrap: str, topic: str, spool_dir, **settings: Any) -> tt.Collector:
    kafka = tt.KafkaSettings(bootstrap_servers=bootstrap, topic=topic, spool_dir=spool_dir, **settings)
    return tt.Collector(
        service="order-agent",
        transport=KafkaTransport(kafka),
        register_atexit=False,
        settings=tt.CollectorSettings(max_queue=50_000),
    )


def test_10k_events_arrive_once_keyed_by_trace(kafka_bootstrap, new_topic, tmp_path):
    """10,000 events through the Kafka transport are all consumed back, each event_id once, keyed by trace_id."""
    topic = new_topic(partitions=3)
    collector = make_collector(kafka_bootstrap, topic, tmp_path / "spool")
    emit_calls(collector, 5_000)
    assert collector.flush(30)
    stats = collector.stats()
    assert stats["delivered"] == 10_000 and stats["dropped"] == {} and stats.get("spooled", 0) == 0
    collector.close()

    records = consume_events(kafka_bootstrap, topic, 10_000)
    ids = Counter(event["event_id"] for _, event in records)
    assert len(ids) == 10_000 and max(ids.values()) == 1
    assert all(key == event["trace_id"] for key, event in records)
    assert len({event["trace_id"] for _, event in records}) == 1_000


def test_broker_down_spools_and_replays_without_blocking(kafka_broker, new_topic, tmp_path):
    """Stop the broker, emit 5,000 events, restart it: every event reaches Kafka; no call blocked."""
    topic = new_topic(kafka_broker.bootstrap, partitions=2)
    collector = make_collector(
        kafka_broker.bootstrap, topic, tmp_path / "spool", message_timeout_ms=3_000, probe_interval=0.5
    )
    emit_calls(collector, 50)
    assert collector.flush(20)

    kafka_broker.stop()
    times = emit_calls(collector, 2_500)  # 5,000 events while the broker is down
    deadline = time.monotonic() + 30
    while collector.stats().get("spooled", 0) < 5_000 and time.monotonic() < deadline:
        time.sleep(0.2)
    during = collector.stats()
    assert during["spooled"] >= 5_000 and during["broker_up"] is False

    kafka_broker.start()
    deadline = time.monotonic() + 60
    while not collector.flush(2) and time.monotonic() < deadline:
        pass
    after = collector.stats()
    collector.close()
    assert after["dropped"] == {} and after["replayed"] >= 5_000 and after["spool_bytes"] == 0
    p99, worst = times[int(len(times) * 0.99)], times[-1]
    assert p99 < CALLER_P99_S and worst < CALLER_BOUND_S, (
        f"caller time while the broker was down: p99 {p99 * 1e3:.2f} ms, max {worst * 1e3:.1f} ms"
    )

    records = consume_events(kafka_broker.bootstrap, topic, 5_100)
    ids = {event["event_id"] for _, event in records}
    assert len(ids) == 5_100  # nothing lost (a replay may duplicate; the processor dedupes by event_id)


def test_events_still_queued_at_exit_are_replayed_by_the_next_process(kafka_broker, new_topic, tmp_path):
    """Closing while the broker is down keeps events on disk; the next collector delivers them."""
    topic = new_topic(kafka_broker.bootstrap)
    spool_dir = tmp_path / "spool"
    first = make_collector(kafka_broker.bootstrap, topic, spool_dir, message_timeout_ms=60_000)
    emit_calls(first, 10)
    assert first.flush(20)
    kafka_broker.stop()
    emit_calls(first, 100)
    first.close(timeout=1)  # broker down: the 200 events stay in the spool
    assert first.stats()["spool_bytes"] > 0

    kafka_broker.start()
    second = make_collector(kafka_broker.bootstrap, topic, spool_dir)
    deadline = time.monotonic() + 60
    while not second.flush(2) and time.monotonic() < deadline:
        pass
    assert second.stats()["replayed"] == 200
    second.close()
    ids = {event["event_id"] for _, event in consume_events(kafka_broker.bootstrap, topic, 220)}
    assert len(ids) == 220


def test_bad_producer_setting_fails_at_startup(tmp_path):
    """An invalid librdkafka setting is a ValueError when the transport is built."""
    with pytest.raises(ValueError, match="invalid Kafka producer configuration"):
        KafkaTransport(
            tt.KafkaSettings(
                bootstrap_servers="127.0.0.1:1", spool_dir=tmp_path, producer_config={"no.such.setting": 1}
            )
        )
