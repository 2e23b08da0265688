"""Rows the store refuses: a per-event dead letter (`store_rejected`), never a failed batch (issue 11 §2).

The contract keeps every value the store cannot hold out of valid events, so these tests plant one
after the standard stages (a stage that overwrites one call's token count with 2**40, beyond
UInt32), then write through the real sink into a real embedded ClickHouse.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka_harness import output_event

from tokentrail.dashboards.alert_rules import rule
from tokentrail.dashboards.evaluate import evaluate_rule
from tokentrail.sinks import close_embedded
from tokentrail.sinks.outcomes import Rejection, WriteResult
from tokentrail.stream.batch import Batch, Inbound, Pipeline, now_utc
from tokentrail.stream.embedded import EmbeddedRunner
from tokentrail.stream.runtime import make_pipeline, open_store
from tokentrail.stream.store_rejections import rejected_dead_letters

KEY = b"store-rejections-test-key-0123456789"
EMAIL = "jane.doe@corp.internal"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    close_embedded()
    yield open_store(f"chdb://{tmp_path / 'store'}")
    close_embedded()


def event(i: int, kind: str = "output", **extra: Any) -> dict[str, Any]:
    """kafka_harness.output_event, or the same event as another type (without the output's fields)."""
    if kind == "output":
        return output_event(i, **extra)
    doc = {k: v for k, v in output_event(i).items() if k not in ("output", "usage")}
    return doc | {"type": kind} | extra


class PlantOutOfRange:
    """Puts a token count no UInt32 holds on the call row of one event (what a contract gap would let through)."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id

    def __call__(self, batch: Batch) -> None:
        for row in batch.rows["calls"]:
            if str(row["event_id"]) == self.event_id:
                row["input_tokens"] = 2**40


def lines(docs: list[dict[str, Any]]) -> list[Inbound]:
    return [Inbound(f"test.jsonl:{n}", json.dumps(d).encode(), now_utc()) for n, d in enumerate(docs, 1)]


def test_a_refused_row_becomes_one_dead_letter_and_the_rest_is_stored(store):
    """One event's call row is refused: that event is a dead letter naming calls.input_tokens, none of its
    rows are stored, its payload is stored redacted; the other events are stored and every line counts once."""
    client, sink = store
    bad = str(uuid.UUID(int=2))
    docs = [
        event(1),
        event(2, output=[{"role": "assistant", "content": f"mail {EMAIL}"}], session_id=EMAIL),
        event(3),
        event(4, kind="prompt", messages=[{"role": "user", "content": "hi"}]),
        {"not": "an event"},
    ]
    standard = make_pipeline(prices=None, allow_ephemeral_key=False, redaction_key=KEY)
    pipeline = Pipeline([*standard.stages, PlantOutOfRange(bad)])

    stats = EmbeddedRunner(pipeline, sink).run(lines(docs))

    assert (stats.read, stats.accepted, stats.deadletter, stats.store_rejected, stats.duplicates) == (5, 3, 2, 1, 0)
    stored = {str(r[0]) for r in client.query("SELECT event_id FROM tokentrail.events FINAL").result_rows}
    assert stored == {str(uuid.UUID(int=i)) for i in (1, 3, 4)}
    for table in ("calls", "receipts"):
        ids = {str(r[0]) for r in client.query(f"SELECT event_id FROM tokentrail.{table}").result_rows}
        assert bad not in ids, f"{table} holds a row of the refused event"
    dead = client.query(
        "SELECT reason, field, detail, source, payload, redaction_key_id FROM tokentrail.deadletter FINAL "
        "WHERE reason = 'store_rejected'"
    ).result_rows
    assert len(dead) == 1
    reason, field, detail, source, payload, key_id = dead[0]
    assert (field, source) == ("calls.input_tokens", "test.jsonl:2")
    assert "input_tokens" in detail and key_id
    assert json.loads(payload)["event_id"] == bad and EMAIL not in payload
    reasons = dict(client.query("SELECT reason, count() FROM tokentrail.deadletter FINAL GROUP BY reason").result_rows)
    assert reasons == {"store_rejected": 1, "unsupported_schema_version": 1}
    firing = evaluate_rule(client, rule("tt-store-rejected"), now_utc() + timedelta(seconds=1))
    assert [alert.uid for alert in firing] == ["tt-store-rejected"], "the alert on store refusals fires"


def test_the_same_batch_again_adds_nothing(store):
    """Replaying the batch (same positions, same bytes) stores no second dead letter: ids are stable."""
    client, sink = store
    bad = str(uuid.UUID(int=7))
    standard = make_pipeline(prices=None, allow_ephemeral_key=False, redaction_key=KEY)
    docs = [event(6), event(7)]
    for _ in range(2):
        pipeline = Pipeline([*standard.stages, PlantOutOfRange(bad)])
        EmbeddedRunner(pipeline, sink).run(lines(docs))
    assert client.query("SELECT count() FROM tokentrail.deadletter FINAL").result_rows == [(1,)]


def test_rejections_of_dead_letters_and_detections_are_not_dead_lettered_again():
    """A refused dead-letter row or detection is not an event: it yields no dead letter (the sink logged it)."""
    rows = {"events": [], "receipts": []}
    result = WriteResult(
        rejected=[
            Rejection("00000000-0000-0000-0000-000000000009", "deadletter", "payload", "too big", 0),
            Rejection("d1", "loop_detections", "evidence", "refused", 0),
            Rejection("", "calls", "input_tokens", "no identity", 0),
        ]
    )
    assert rejected_dead_letters(rows, result) == []
    assert rejected_dead_letters(rows, None) == []


def test_two_rejections_of_one_event_make_one_dead_letter():
    """The first rejection names the column; the event is counted once."""
    event_id = str(uuid.UUID(int=11))
    received = now_utc()
    rows = {
        "events": [
            {"event_id": uuid.UUID(event_id), "received_at": received, "payload": "{}", "redaction_key_id": "k"}
        ],
        "receipts": [{"event_id": uuid.UUID(event_id), "source": "t:1", "received_at": received}],
    }
    result = WriteResult(
        rejected=[
            Rejection(event_id, "calls", "input_tokens", "too big", 0),
            Rejection(event_id, "calls", "output_tokens", "too big", 0),
        ]
    )
    (letter,) = rejected_dead_letters(rows, result)
    assert (letter["reason"], letter["field"], letter["source"], letter["received_at"]) == (
        "store_rejected",
        "calls.input_tokens",
        "t:1",
        received,
    )
