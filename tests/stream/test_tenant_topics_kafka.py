"""Tenant binding through a real broker: the worker reads a tenant's own topic beside the shared one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from kafka_harness import produce, read_store, start_worker, stop, wait_caught_up
from test_stages import prompt

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _event(tenant: str) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({**prompt(str(uuid.uuid4())), "ts": now, "tenant": tenant}).encode()


def test_a_tenant_topic_admits_only_its_tenant(kafka_bootstrap, new_topic, tmp_path):
    """--tenant-topic ACME=acme: acme's event on it is stored, globex's is a dead letter
    `tenant_mismatch`; on the shared topic globex's event is stored as declared."""
    shared = new_topic(partitions=2)
    acme_topic = new_topic(partitions=2, prefix="acme")
    produce(kafka_bootstrap, shared, [_event("globex")])
    produce(kafka_bootstrap, acme_topic, [_event("acme"), _event("globex")])
    store = tmp_path / "store"
    worker = start_worker(kafka_bootstrap, shared, store, group="bound", extra=["--tenant-topic", f"{acme_topic}=acme"])
    wait_caught_up(kafka_bootstrap, shared, "bound", worker)
    wait_caught_up(kafka_bootstrap, acme_topic, "bound", worker, events_topic=shared)
    stop(worker)
    got = read_store(
        store,
        {
            "events": "SELECT tenant, count() FROM tokentrail.events FINAL GROUP BY tenant ORDER BY tenant",
            "dead": "SELECT reason, field, source FROM tokentrail.deadletter FINAL",
        },
    )
    assert got["events"] == [("acme", 1), ("globex", 1)]
    [(reason, field, source)] = got["dead"]
    assert (reason, field) == ("tenant_mismatch", "tenant") and source.startswith(f"{acme_topic}/")


def test_a_tenant_topic_with_other_partitions_is_refused_at_start(kafka_bootstrap, new_topic, tmp_path):
    """The loop-state table is co-partitioned with every topic read: a mismatch fails the start, named."""
    shared = new_topic(partitions=2)
    odd = new_topic(partitions=3, prefix="acme")
    worker = start_worker(
        kafka_bootstrap, shared, tmp_path / "store", group="odd", extra=["--tenant-topic", f"{odd}=acme"]
    )
    assert worker.wait(120) != 0
    log = b"".join(p.read_bytes() for p in tmp_path.glob("worker-odd-*.log")).decode()
    assert f"--tenant-topic {odd} needs 2 partitions" in log
