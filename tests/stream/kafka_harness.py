"""Helpers for the worker tests: produce to a topic, run the worker as a real process, wait for it.

The worker runs in its own process (as in production) so a test can SIGKILL it. chDB lets only
one process open a store, so the test reads the store after the worker has exited.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka_helpers import consume_all as consume_all  # re-exported: the worker tests import it from here

REPO = Path(__file__).resolve().parents[2]
# Every test worker stores content receipts under this key, as a deployed one must (docs/evidence.md).
EVIDENCE_KEY = "worker-test-evidence-key-0123456789"
STARTED: list[subprocess.Popen[bytes]] = []  # every worker a test started; conftest kills leftovers


def produce(bootstrap: str, topic: str, values: Iterable[bytes]) -> int:
    """Produce raw values keyed by trace_id when they have one (as the collector does)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    n = 0
    for value in values:
        try:
            key = str(json.loads(value).get("trace_id", "")).encode() or None
        except (ValueError, AttributeError):
            key = None
        producer.produce(topic, value, key)
        producer.poll(0)
        n += 1
    assert producer.flush(30) == 0
    return n


def group_id(topic: str, group: str) -> str:
    """The consumer group a test's worker joins: one per topic, so its loop-state changelog
    (`<group>-loop-state-changelog`) starts empty even on a broker that earlier runs used."""
    return f"{group}.{topic}"


def start_worker(
    bootstrap: str,
    topic: str,
    store: Path,
    *,
    group: str,
    batch_size: int = 2000,
    script: list[str] | None = None,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    command = script or [sys.executable, "-m", "tokentrail.stream.cli", "worker", "--loglevel", "info"]
    args = [
        "--kafka",
        bootstrap,
        "--clickhouse",
        f"chdb://{store}",
        "--events-topic",
        topic,
        "--deadletter-topic",
        f"{topic}.deadletter",
        "--group",
        group_id(topic, group),
        "--batch-size",
        str(batch_size),
        "--data-dir",
        str(store.parent / f"faust-{group}"),
        "--allow-ephemeral-key",
        *extra,
    ]
    log = open(store.parent / f"worker-{group}-{time.time_ns()}.log", "wb")
    worker = subprocess.Popen(
        [*command, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**with_evidence_key(os.environ), "PYTHONUNBUFFERED": "1"},
    )
    STARTED.append(worker)
    return worker


def with_evidence_key(env: Mapping[str, str]) -> dict[str, str]:
    """`env` plus the tests' evidence key, unless it configures one already."""
    if env.get("TOKENTRAIL_EVIDENCE_KEY") or env.get("TOKENTRAIL_EVIDENCE_KEY_FILE"):
        return dict(env)
    return {**env, "TOKENTRAIL_EVIDENCE_KEY": EVIDENCE_KEY}


def committed_and_end(bootstrap: str, topic: str, group: str, events_topic: str | None = None) -> tuple[int, int]:
    """(sum of the group's committed offsets, sum of end offsets) over the topic's partitions.

    `events_topic`: the worker's events topic, which names its group (`group_id`), when `topic` is
    another topic it reads (an OTLP or a tenant's topic); `topic` itself by default."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id(events_topic or topic, group),
            "enable.auto.commit": False,
        }
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions]
        committed = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
        end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
    finally:
        consumer.close()
    return committed, end


def kill_leftovers() -> None:
    """Kill every process `start_worker` (or a test) put in STARTED that still runs: the autouse
    fixtures of tests/stream, tests/otlp and tests/fuzz call it after each test."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_until(predicate: Any, timeout: float, what: str, worker: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker exited with {worker.returncode} while waiting for {what}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_caught_up(
    bootstrap: str,
    topic: str,
    group: str,
    worker: subprocess.Popen[bytes],
    timeout: float = 300,
    events_topic: str | None = None,
) -> None:
    """The worker's group has committed every offset of `topic` (`events_topic`: as in `committed_and_end`)."""

    def caught_up() -> bool:
        try:
            committed, end = committed_and_end(bootstrap, topic, group, events_topic)
        except KafkaException:  # NOT_COORDINATOR while a new broker elects the group's coordinator: ask again
            return False
        return end > 0 and committed >= end

    wait_until(caught_up, timeout, f"the worker to commit every offset of {topic}", worker)


def stop(worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> None:
    worker.send_signal(sig)
    try:
        worker.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def read_store(store: Path, queries: dict[str, str]) -> dict[str, Any]:
    """Open the embedded store (after the worker exited), run the queries, close it again."""
    from tokentrail.sinks import close_embedded, connect

    close_embedded()
    client = connect(f"chdb://{store}")
    try:
        return {name: client.query(sql).result_rows for name, sql in queries.items()}
    finally:
        close_embedded()


def output_event(i: int, **extra: Any) -> dict[str, Any]:
    """A valid output event (the contract: docs/events.md), five minutes old, one trace per `i`."""
    return {
        "schema_version": 1,
        "event_id": str(uuid.UUID(int=i)),
        "ts": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "trace_id": f"trace-{i}",
        "span_id": f"span-{i}",
        "service": "svc",
        "tenant": "acme",
        "feature": "chat",
        "type": "output",
        "provider": "openai",
        "model": "gpt-4o",
        "output": [{"role": "assistant", "content": f"answer {i}"}],
        "usage": {"input_tokens": 10, "output_tokens": 2},
    } | extra


def free_port() -> int:
    """A TCP port nothing listens on now (for a worker's --metrics-port)."""
    from kafka_admin import free_ports  # scripts/, on sys.path through tests/conftest.py

    return free_ports(1)[0]
