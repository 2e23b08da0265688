"""The faust worker on a real Kafka broker into a real (embedded) ClickHouse: exact counts, always.

Each test runs `tokentrail worker` as its own process, waits until the consumer group has
committed every offset, stops it, and then reads the store.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest
from child_processes import child_pids
from expected import per_call_cost
from kafka_harness import (
    committed_and_end,
    consume_all,
    produce,
    read_store,
    start_worker,
    stop,
    wait_caught_up,
    wait_until,
)

import tokentrail.collectors as tt
from tokentrail.collectors.events import InvalidEvent, decode_event
from tokentrail.collectors.kafka import KafkaTransport
from tokentrail.stream.synthetic import GeneratorConfig, generate

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MODELS = [
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-0"),
    ("openai", "gpt-4o-mini"),
    ("vllm", "acme-llama-70b-ft"),
]
MALFORMED = [
    (b"{truncated", "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (b'{"schema_version": 2, "type": "prompt"}', "unsupported_schema_version"),
    (b'{"schema_version": 1, "type": "span"}', "unknown_type"),
]

COUNTS = {
    "stored": "SELECT count() FROM tokentrail.events FINAL",
    "distinct": "SELECT uniqExact(event_id) FROM tokentrail.events",
    "calls": "SELECT count(), sum(cost_usd) FROM tokentrail.calls FINAL",
    "dead": "SELECT reason, count() FROM tokentrail.deadletter FINAL GROUP BY reason",
    "deliveries": "SELECT count() FROM (SELECT DISTINCT event_id, source FROM tokentrail.receipts)",
}


def emit_with_collector(bootstrap: str, topic: str, spool: Path, calls: int) -> None:
    collector = tt.Collector(
        service="e2e",
        transport=KafkaTransport(tt.KafkaSettings(bootstrap_servers=bootstrap, topic=topic, spool_dir=spool)),
        register_atexit=False,
        settings=tt.CollectorSettings(max_queue=100_000),
    )
    for i in range(calls):
        provider, model = MODELS[i % len(MODELS)]
        with collector.trace(feature=f"feature-{i % 5}", tenant=f"tenant-{i % 3}"):
            with collector.model_call(
                provider=provider, model=model, messages=[{"role": "user", "content": f"question {i}"}]
            ) as call:
                call.finish(
                    response_model=model,
                    output=f"answer {i}",
                    finish_reason="stop",
                    usage={
                        "input_tokens": 500 + i % 700,
                        "output_tokens": 20 + i % 90,
                        "cached_input_tokens": (i % 4) * 100,
                    },
                )
    assert collector.flush(60)
    assert collector.stats()["delivered"] == 2 * calls
    collector.close()


def test_end_to_end_exact_counts(kafka_bootstrap, new_topic, tmp_path):
    """20,000 collector events + 1% malformed + 1% exact re-deliveries: stored exactly once, dead letters
    with reasons, costs add up."""
    topic = new_topic(partitions=3)
    emit_with_collector(kafka_bootstrap, topic, tmp_path / "spool", 10_000)
    sent = consume_all(kafka_bootstrap, topic, 20_000)
    assert len(sent) == 20_000
    malformed = [MALFORMED[i % len(MALFORMED)] for i in range(200)]
    produce(kafka_bootstrap, topic, [raw for raw, _ in malformed])
    produce(kafka_bootstrap, topic, [value for _, value in sent[::100]])  # 200 exact re-deliveries

    store = tmp_path / "store"
    worker = start_worker(kafka_bootstrap, topic, store, group="e2e")
    wait_caught_up(kafka_bootstrap, topic, "e2e", worker)
    stop(worker)
    counts = read_store(store, COUNTS)

    assert counts["stored"] == [(20_000,)] and counts["distinct"] == [(20_000,)]
    assert dict(counts["dead"]) == Counter(reason for _, reason in malformed)
    assert counts["deliveries"][0][0] - 20_000 == 200  # the re-deliveries, seen as duplicates
    n_calls, cost = counts["calls"][0]
    assert n_calls == 10_000 and cost == per_call_cost([v for _, v in sent])
    dead_topic = consume_all(kafka_bootstrap, f"{topic}.deadletter", 200)
    assert Counter(json.loads(v)["reason"] for _, v in dead_topic) == Counter(reason for _, reason in malformed)


@pytest.fixture(scope="module")
def traffic():
    return generate(GeneratorConfig(seed=5, events=20_000))


def expected_from(traffic) -> dict:
    truth = traffic.truth
    return {
        "stored": [(truth.valid_events,)],
        "distinct": [(truth.valid_events,)],
        "dead": truth.malformed,
        "duplicates": truth.redeliveries,
    }


def check_store(store: Path, traffic) -> None:
    counts = read_store(store, COUNTS)
    expected = expected_from(traffic)
    assert counts["stored"] == expected["stored"] and counts["distinct"] == expected["distinct"]
    assert dict(counts["dead"]) == expected["dead"]
    assert counts["deliveries"][0][0] - counts["distinct"][0][0] == expected["duplicates"]
    values = [line.encode() for line in traffic.lines]
    assert counts["calls"][0][1] == per_call_cost([v for v in values if not isinstance(decode_event(v), InvalidEvent)])


def test_sigkill_mid_stream_keeps_counts_exact(kafka_bootstrap, new_topic, tmp_path, traffic):
    """SIGKILL the worker mid-stream and start it again: the store still holds every event exactly once."""
    topic = new_topic(partitions=2)
    produce(kafka_bootstrap, topic, [line.encode() for line in traffic.lines])
    store = tmp_path / "store"
    worker = start_worker(kafka_bootstrap, topic, store, group="kill", batch_size=500)

    def partway() -> bool:
        committed, end = committed_and_end(kafka_bootstrap, topic, "kill")
        return committed >= end * 0.2

    wait_until(partway, 120, "the worker to get partway", worker)
    committed, end = committed_and_end(kafka_bootstrap, topic, "kill")
    assert committed < end, "the worker finished before it could be killed; make the topic bigger"
    stop(worker, signal.SIGKILL)

    worker = start_worker(kafka_bootstrap, topic, store, group="kill", batch_size=500)
    wait_caught_up(kafka_bootstrap, topic, "kill", worker)
    stop(worker)
    check_store(store, traffic)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_killed_pipeline_process_stops_the_worker_and_a_restart_stores_exactly(
    kafka_bootstrap, new_topic, tmp_path, traffic, processes
):
    """The worker's pipeline process dies (OOM killer): the worker exits non-zero, so that its supervisor
    restarts it, instead of idling with a dead pipeline; after the restart every count is exact. With two
    pipeline processes (each for half the partitions) the same, and the counts show the split loses
    and duplicates nothing (the traffic re-delivers events, which each child must catch for its partitions)."""
    topic = new_topic(partitions=4)
    produce(kafka_bootstrap, topic, [line.encode() for line in traffic.lines])
    store = tmp_path / "store"
    extra = ["--pipeline-processes", str(processes)]
    group = f"child{processes}"
    worker = start_worker(kafka_bootstrap, topic, store, group=group, batch_size=500, extra=extra)
    wait_until(lambda: committed_and_end(kafka_bootstrap, topic, group)[0] >= 500, 120, "the first batches", worker)
    pipeline_processes = [
        pid for pid in child_pids(worker.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(pipeline_processes) == processes, f"the worker runs its pipeline in {processes} child process(es)"
    os.kill(pipeline_processes[-1], signal.SIGKILL)
    assert worker.wait(60) != 0
    worker = start_worker(kafka_bootstrap, topic, store, group=group, batch_size=500, extra=extra)
    wait_caught_up(kafka_bootstrap, topic, group, worker)
    stop(worker)
    check_store(store, traffic)


def test_a_second_worker_takes_half_the_partitions_and_nothing_is_lost(kafka_bootstrap, new_topic, tmp_path, traffic):
    """One consumer group, a second worker joining mid-stream (a rebalance: partitions move, with
    their loop state, and both workers' pipeline processes are told to forget theirs). Embedded
    chDB is one process per store, so each worker writes its own; together they hold every event."""
    topic = new_topic(partitions=4)
    produce(kafka_bootstrap, topic, [line.encode() for line in traffic.lines])
    first, second = tmp_path / "a" / "store", tmp_path / "b" / "store"
    first.parent.mkdir()
    second.parent.mkdir()
    # Small batches slow the first worker down, so the second joins with most of the backlog left.
    workers = [start_worker(kafka_bootstrap, topic, first, group="pair", batch_size=100)]
    wait_until(
        lambda: committed_and_end(kafka_bootstrap, topic, "pair")[0] >= 2000,
        120,
        "the first worker to get going",
        workers[0],
    )
    workers.append(start_worker(kafka_bootstrap, topic, second, group="pair", batch_size=100))
    wait_caught_up(kafka_bootstrap, topic, "pair", workers[1])
    for worker in workers:
        stop(worker)
    # A batch stored but not yet acknowledged when its partition moved is stored again by the
    # other worker (at-least-once), so compare the union of ids: dead-letter ids are derived from
    # the message's topic/partition@offset and content, the same in both stores.
    query = {
        "events": "SELECT DISTINCT toString(event_id) FROM tokentrail.events",
        "dead": "SELECT DISTINCT toString(id) FROM tokentrail.deadletter",
    }
    a, b = read_store(first, query), read_store(second, query)
    assert a["events"] and b["events"], "both workers stored events"
    assert len({r[0] for r in a["events"]} | {r[0] for r in b["events"]}) == traffic.truth.valid_events
    assert len({r[0] for r in a["dead"]} | {r[0] for r in b["dead"]}) == sum(traffic.truth.malformed.values())


def test_failing_inserts_lose_and_duplicate_nothing(kafka_bootstrap, new_topic, tmp_path, traffic):
    """Inserts fail for a while (some after the block landed): after recovery nothing is lost or doubled."""
    topic = new_topic(partitions=2)
    produce(kafka_bootstrap, topic, [line.encode() for line in traffic.lines])
    store = tmp_path / "store"
    script = [sys.executable, str(Path(__file__).with_name("faulty_worker.py")), "3"]
    worker = start_worker(
        kafka_bootstrap,
        topic,
        store,
        group="faults",
        batch_size=1000,
        script=script,
        extra=["--store-max-attempts", "0"],
    )
    wait_caught_up(kafka_bootstrap, topic, "faults", worker)
    stop(worker)
    log = max(tmp_path.glob("worker-faults-*.log")).read_text()
    injected = int(re.search(r"injected_failures=(\d+)", log).group(1))
    assert injected >= 2, log
    check_store(store, traffic)
