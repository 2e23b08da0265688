"""Tenant binding (stream/tenant_binding.py): an event from a tenant's own topic must name that tenant."""

from __future__ import annotations

import json
import uuid

import pytest
from test_stages import T0, prompt

from tokentrail.stream.faust_worker.config import parse_args
from tokentrail.stream.pricing import PriceBook
from tokentrail.stream.stages import Inbound, build_pipeline
from tokentrail.stream.tenant_binding import parse_tenant_topics, topic_of

BOUND = {"tenant.acme": "acme", "tenant.globex": "globex"}


def _event(tenant: str) -> bytes:
    return json.dumps({**prompt(str(uuid.uuid4())), "tenant": tenant}).encode()


def _run(messages: list[tuple[str, bytes]], bound=BOUND):
    pipeline = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True, tenant_topics=bound)
    return pipeline.process([Inbound(source, raw, T0) for source, raw in messages])


def test_an_event_claiming_another_tenant_on_a_bound_topic_is_a_dead_letter():
    """globex's event on acme's topic: dead letter `tenant_mismatch` (no row, no receipt); acme's own passes."""
    batch = _run([("tenant.acme/0@1", _event("acme")), ("tenant.acme/1@7", _event("globex"))])
    assert [a.event.tenant for a in batch.accepted] == ["acme"]
    assert [(d.invalid.reason, d.field, d.inbound.source) for d in batch.dead] == [
        ("tenant_mismatch", "tenant", "tenant.acme/1@7")
    ]
    assert "bound to tenant 'acme'" in batch.dead[0].detail and "'globex'" in batch.dead[0].detail
    assert [r["tenant"] for r in batch.rows["events"]] == ["acme"]
    assert [r["source"] for r in batch.receipts] == ["tenant.acme/0@1"]
    assert [r["reason"] for r in batch.rows["deadletter"]] == ["tenant_mismatch"]


def test_unbound_topics_and_files_keep_the_declared_tenant():
    """The shared topic and a replayed file are not bound: there `tenant` is self-declared, as documented."""
    batch = _run([("tokentrail.events/0@1", _event("globex")), ("data/tenant.acme/0@1.jsonl:3", _event("globex"))])
    assert [a.event.tenant for a in batch.accepted] == ["globex", "globex"] and batch.dead == []
    assert topic_of("tokentrail.events/3@12") == "tokentrail.events" and topic_of("events.jsonl:17") is None


def test_without_bindings_the_stage_is_not_in_the_pipeline():
    """No --tenant-topic: the standard stage list, unchanged."""
    names = [type(s).__name__ for s in build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True).stages]
    assert "BindTenants" not in names
    bound = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True, tenant_topics=BOUND).stages
    assert [type(s).__name__ for s in bound][:2] == ["Validate", "BindTenants"]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["tenant.acme"], "TOPIC=TENANT"),
        (["tenant.acme="], "TOPIC=TENANT"),
        (["bad topic=acme"], "TOPIC=TENANT"),
        (["t=acme", "t=globex"], "two tenants"),
    ],
)
def test_malformed_bindings_fail_at_startup(specs, message):
    """A binding that cannot be meant is refused when the worker's flags are read, naming the form."""
    with pytest.raises(ValueError, match=message):
        parse_tenant_topics(specs)
    with pytest.raises(ValueError, match=message):
        parse_args(["--kafka", "k:9092", *[f"--tenant-topic={s}" for s in specs]])


def test_the_worker_reads_bindings_from_flags_and_a_file(tmp_path):
    """--tenant-topic (repeatable) and --tenant-topics-file (one a line, # comments) add up."""
    path = tmp_path / "tenants.txt"
    path.write_text("# one topic per tenant\ntenant.globex=globex\n\n", encoding="utf-8")
    config = parse_args(["--kafka", "k:9092", "--tenant-topic", "tenant.acme=acme", "--tenant-topics-file", str(path)])
    assert parse_tenant_topics(config.tenant_topics) == BOUND
