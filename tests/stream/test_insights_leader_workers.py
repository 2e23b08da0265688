"""Two real worker processes in one consumer group: every event stored, one insights leader, takeover when it stops.

Embedded chDB cannot be opened by two processes, so each worker writes its own store (the real
deployment shares one ClickHouse); what is under test here is the coordination over the real
broker: the events topic's partitions split between the two (together they store every event),
and exactly one worker runs the insights job (its
`tokentrail_worker_insights_runs_total` counts runs, the other's stays absent) until it stops,
when the other takes over. Exactness of the insights across a leader change on one store is
tests/stream/test_insights_leader.py.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from kafka_harness import free_port, output_event, produce, read_store, start_worker, stop, wait_caught_up, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 20_000


def metrics(port: int) -> str:
    """The worker's /metrics page, or "" while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, OSError):
        return ""


def insights_runs(port: int) -> float:
    """Insights runs this worker counted (ok and failed); 0 when it never ran one (or does not answer)."""
    found = re.findall(r"^tokentrail_worker_insights_runs_total\{[^}]*\} (\S+)$", metrics(port), re.M)
    return sum(float(v) for v in found)


def holds_partitions(port: int) -> bool:
    """The worker reports lag for at least one partition: it is in the group and was assigned some."""
    return re.search(r"^tokentrail_worker_consumer_lag\{", metrics(port), re.M) is not None


def test_two_workers_store_every_event_and_only_one_leads_the_insights(
    kafka_bootstrap, new_topic, tmp_path, monkeypatch
):
    """Two workers, one group, four partitions, a backlog, then more once both hold partitions:
    together they store every event and both store some; one worker runs the insights job every
    second and the other never does; after the leader stops, the other runs it."""
    topic = new_topic(partitions=4)
    monkeypatch.setenv("TOKENTRAIL_INSIGHTS_LEADER_TOPIC", f"leader.{uuid.uuid4().hex[:8]}")  # this test's only
    half = EVENTS // 2
    produce(kafka_bootstrap, topic, [json.dumps(output_event(i)).encode() for i in range(1, half + 1)])
    ports = [free_port(), free_port()]
    stores = [tmp_path / "a" / "store", tmp_path / "b" / "store"]
    workers = []

    def start(n: int) -> None:
        stores[n].parent.mkdir()
        extra = ["--metrics-port", str(ports[n]), "--insights-interval", "1", "--session-timeout", "6"]
        workers.append(start_worker(kafka_bootstrap, topic, stores[n], group="two", batch_size=50, extra=extra))

    try:
        start(0)
        start(1)
        # The second half only once both hold partitions: each then stores some, however fast the first
        # worker drained the first half before the second joined.
        wait_until(lambda: all(map(holds_partitions, ports)), 120, "both workers to hold partitions")
        produce(kafka_bootstrap, topic, [json.dumps(output_event(i)).encode() for i in range(half + 1, EVENTS + 1)])
        wait_caught_up(kafka_bootstrap, topic, "two", workers[1])
        wait_until(lambda: max(map(insights_runs, ports)) >= 3, 120, "the leader to run the insights 3 times")
        runs = [insights_runs(port) for port in ports]
        leader = runs.index(max(runs))
        assert runs[1 - leader] == 0, f"both workers ran the insights job: {runs}"

        stop(workers[leader])  # leaves the leader group on the way out
        follower = ports[1 - leader]
        wait_until(lambda: insights_runs(follower) >= 2, 120, "the other worker to take the insights over")
    finally:
        for worker in workers:
            stop(worker)

    # At-least-once across a rebalance: a batch stored but not acknowledged when its partition moved is
    # stored again by the other worker, so compare the union of ids (tests/stream/test_worker_kafka.py).
    queries = {
        "ids": "SELECT toString(event_id) FROM tokentrail.calls",
        "dead": "SELECT reason, count() FROM tokentrail.deadletter GROUP BY reason",
    }
    found = [read_store(store, queries) for store in stores]
    ids = [{r[0] for r in one["ids"]} for one in found]
    assert all(ids), "both workers stored events"
    missing = sorted({str(uuid.UUID(int=i)) for i in range(1, EVENTS + 1)} - ids[0] - ids[1])
    dead = [one["dead"] for one in found]
    assert not missing, f"{len(missing)} events stored by neither worker, e.g. {missing[:5]}; dead letters: {dead}"
