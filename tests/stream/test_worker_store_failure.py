"""A store that keeps failing stops the worker after its retry budget, and the next run knows (issue 11 §2).

The real worker on a real Kafka broker; its ClickHouse client fails every insert (faulty_worker.py,
the only stand-in: an unreachable server cannot be provoked on demand in an embedded engine).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from kafka_harness import committed_and_end, produce, read_store, start_worker, stop, wait_caught_up
from test_store_rejections import event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_budget_spent_exits_non_zero_then_a_healthy_run_catches_up(kafka_bootstrap, new_topic, tmp_path):
    """Every insert fails: after --store-max-attempts the worker exits non-zero with nothing committed and
    a failure record in its data directory; the next run (store healthy) says how long the store failed,
    stores everything and removes the record."""
    topic = new_topic(partitions=1)
    produce(kafka_bootstrap, topic, [json.dumps(event(i)).encode() for i in range(1, 21)])
    store = tmp_path / "store"
    script = [sys.executable, str(Path(__file__).with_name("faulty_worker.py")), "100000"]
    failing = start_worker(
        kafka_bootstrap, topic, store, group="down", batch_size=50, script=script, extra=["--store-max-attempts", "3"]
    )
    assert failing.wait(180) != 0, "a worker whose store keeps failing exits non-zero"
    assert committed_and_end(kafka_bootstrap, topic, "down") == (0, 20), "nothing was acknowledged"
    record_path = store.parent / "faust-down" / "store-health.json"
    record = json.loads(record_path.read_text())
    assert record["runs"] == 1 and record["consecutive_failures"] >= 3 and record["failing_since"] > 0
    log = max(tmp_path.glob("worker-down-*.log")).read_text()
    assert "the store kept failing" in log

    healthy = start_worker(kafka_bootstrap, topic, store, group="down", batch_size=50)
    wait_caught_up(kafka_bootstrap, topic, "down", healthy)
    stop(healthy)
    log = max(tmp_path.glob("worker-down-*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "the store has been failing since" in log and "across 1 worker run(s)" in log
    assert not record_path.exists(), "the first stored batch clears the record"
    counts = read_store(store, {"events": "SELECT count() FROM tokentrail.events FINAL"})
    assert counts["events"] == [(20,)]
