"""Waiting for the worker on a second topic: its consumer group is named after its events topic."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, TopicPartition
from kafka_harness import wait_until


def wait_committed(bootstrap: str, topic: str, group: str, worker: Any, timeout: float = 300) -> None:
    """The worker's group (named after its events topic) has committed every offset of `topic`."""

    def caught_up() -> bool:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            parts = [TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions]
            committed = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
            end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
        finally:
            consumer.close()
        return end > 0 and committed >= end

    wait_until(caught_up, timeout, f"the worker to commit every offset of {topic}", worker)
