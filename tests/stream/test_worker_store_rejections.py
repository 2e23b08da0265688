"""Through Kafka: an event the store refuses is a dead letter in the table and on the topic, and the worker
keeps running (issue 11 §2). The refusal is planted by planting_worker.py (see there why)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from kafka_harness import consume_all, produce, read_store, start_worker, stop, wait_caught_up
from test_store_rejections import EMAIL, event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_refused_event_is_dead_lettered_and_published(kafka_bootstrap, new_topic, tmp_path):
    """30 events, 3 of them refused by the store: 27 stored, 3 store_rejected dead letters stored and
    published (payload redacted), same worker process from start to end."""
    topic = new_topic(partitions=1)
    docs = [event(i) for i in range(1, 31)]
    for doc in docs[::10]:
        doc["trace_id"] = f"refuse-{doc['trace_id']}"
        doc["output"] = [{"role": "assistant", "content": f"write to {EMAIL}"}]
    produce(kafka_bootstrap, topic, [json.dumps(d).encode() for d in docs])
    store = tmp_path / "store"
    script = [sys.executable, str(Path(__file__).with_name("planting_worker.py"))]
    worker = start_worker(kafka_bootstrap, topic, store, group="refuse", batch_size=10, script=script)
    wait_caught_up(kafka_bootstrap, topic, "refuse", worker)
    assert worker.poll() is None, "the worker is still running"
    published = [json.loads(v) for _, v in consume_all(kafka_bootstrap, f"{topic}.deadletter", 3)]
    stop(worker)

    assert sorted((m["reason"], m["field"]) for m in published) == [("store_rejected", "calls.input_tokens")] * 3
    assert all(EMAIL not in m["payload"] and m["redaction_key_id"] for m in published)
    counts = read_store(
        store,
        {
            "events": "SELECT count() FROM tokentrail.events FINAL",
            "refused": "SELECT count() FROM tokentrail.events FINAL WHERE startsWith(trace_id, 'refuse-')",
            "dead": "SELECT reason, field, count() FROM tokentrail.deadletter FINAL GROUP BY reason, field",
        },
    )
    assert counts["events"] == [(27,)] and counts["refused"] == [(0,)]
    assert counts["dead"] == [("store_rejected", "calls.input_tokens", 3)]
