"""Binding a tenant to its writer: an event read from a tenant's own topic must name that tenant.

`tenant` is a field the emitter writes. On a topic every service shares, with no authentication
or with one principal for everyone, it is self-declared: any writer can claim any tenant, and
the row policies and per-tenant Grafana that keep readers apart (docs/security.md) then sort
rows by a claim. The Kafka way to make it a fact is one principal per tenant (or per service)
and ACLs that let each principal write only its own topic; the worker then maps each topic to
its tenant (`--tenant-topic TOPIC=TENANT`) and this stage dead-letters an event whose `tenant`
differs from its topic's (`tenant_mismatch`), so an event cannot claim another tenant.

Why the topic and not the principal: the producer's principal is known to the broker only; a
consumer (faust/aiokafka, confluent-kafka) receives records without it. The ACLs turn "who may
write this topic" into "which principal wrote this record", and the topic is on every record.
Events on a topic with no binding (the shared events topic) pass with their tenant as declared.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from tokentrail.collectors.events import InvalidEvent

from .batch import Batch, DeadLetter

__all__ = ["TENANT_MISMATCH", "BindTenants", "load_tenant_topics", "parse_tenant_topics", "topic_of"]

TENANT_MISMATCH = "tenant_mismatch"

# The worker names a message `topic/partition@offset` (stream/faust_worker/app.py); a Kafka topic
# name is [A-Za-z0-9._-]+, so a replayed file's `path/file.jsonl:17` never parses as one.
_KAFKA_SOURCE = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)/\d+@\d+$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def topic_of(source: str) -> str | None:
    """The Kafka topic a message was read from, or None for a source that is not a topic (a file)."""
    match = _KAFKA_SOURCE.match(source)
    return match.group("topic") if match else None


def parse_tenant_topics(specs: Iterable[str]) -> dict[str, str]:
    """`TOPIC=TENANT` specs -> {topic: tenant}. ValueError names a malformed spec or a topic bound twice."""
    bound: dict[str, str] = {}
    for spec in specs:
        topic, sep, tenant = spec.partition("=")
        topic, tenant = topic.strip(), unicodedata.normalize("NFC", tenant.strip())  # as the processor stores it
        if not sep or not tenant or not _TOPIC_NAME.match(topic):
            raise ValueError(f"--tenant-topic wants TOPIC=TENANT (a Kafka topic name, then the tenant), got {spec!r}")
        if bound.get(topic, tenant) != tenant:
            raise ValueError(f"--tenant-topic binds topic {topic!r} to two tenants: {bound[topic]!r} and {tenant!r}")
        bound[topic] = tenant
    return bound


def load_tenant_topics(path: str | Path) -> list[str]:
    """`TOPIC=TENANT` specs from a file, one a line; blank lines and `#` comments are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


class BindTenants:
    """A stage after Validate: events from a bound topic whose `tenant` is not the topic's become
    dead letters (`tenant_mismatch`); their delivery receipts go with them."""

    def __init__(self, tenant_by_topic: Mapping[str, str]) -> None:
        self.tenant_by_topic = dict(tenant_by_topic)

    def __call__(self, batch: Batch) -> None:
        if not self.tenant_by_topic:
            return
        kept, refused = [], set()
        for item in batch.accepted:
            topic = topic_of(item.inbound.source)
            bound = self.tenant_by_topic.get(topic) if topic is not None else None
            if bound is None or item.event.tenant == bound:
                kept.append(item)
                continue
            detail = f"topic {topic} is bound to tenant {bound!r}; the event names {item.event.tenant!r}"
            invalid = InvalidEvent(TENANT_MISMATCH, "tenant", detail, item.inbound.raw)
            batch.dead.append(DeadLetter(item.inbound, invalid, item.inbound.raw.decode("utf-8", "replace")))
            refused.add(item.inbound.source)
        if refused:
            batch.accepted = kept
            batch.receipts = [r for r in batch.receipts if r["source"] not in refused]
