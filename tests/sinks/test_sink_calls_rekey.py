"""Migrations 0011 and 0012: `calls` and `events` rebuilt with the hour-led key, every row kept, resumable, locked.

A store is built at version 10 (the migrations before 0011 only), given calls over several hours
with re-delivered duplicates (their own batches, so their own parts, with another received_at),
then migrated. Merges are stopped while it runs so row counts compare exactly.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import tokentrail.sinks.migrations as migrations
from tokentrail.sinks import ClickHouseSink, apply
from tokentrail.sinks.migrations import available

OLD = [m for m in available() if m.version < 11]
NEW = [m.version for m in available() if m.version >= 11]
REKEY = next(m for m in available() if m.version == 11)
NOW = datetime.now(UTC).replace(microsecond=0)
COLUMNS = "event_id, ts, received_at, tenant, feature, model, trace_id, cost_usd, input_tokens, latency_ms, status"


@pytest.fixture
def old_store(clickhouse, monkeypatch, rows):
    """A database at schema version 10 holding calls (600 events, 60 of them stored twice)."""
    name = f"tt_{uuid.uuid4().hex[:12]}"
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "available", lambda: OLD)
        apply(clickhouse, database=name)
    sink = ClickHouseSink(clickhouse, database=name)
    call_row = rows["calls"]
    calls = [
        call_row(
            event_id=str(uuid.uuid4()),
            ts=NOW - timedelta(hours=30) + i * timedelta(minutes=3, seconds=1),
            received_at=NOW - timedelta(hours=30) + i * timedelta(minutes=3, seconds=2),
            tenant=["acme", "globex"][i % 2],
            feature=["chat", "search", "rank"][i % 3],
            model=["gpt-4o", "gpt-4o-mini"][i % 2],
            trace_id=f"t{i // 4}",
            cost_usd=Decimal(i % 9 + 1) / 1000,
            latency_ms=float(100 + i),
        )
        for i in range(600)
    ]
    clickhouse.command("SYSTEM STOP MERGES")
    sink.write_batch({"calls": calls[:300]}, "b1")
    sink.write_batch({"calls": calls[300:]}, "b2")
    # Re-delivered later: same events, received again (another received_at), their own part.
    sink.write_batch({"calls": [dict(r, received_at=NOW) for r in calls[100:160]]}, "b3")
    events = [
        rows["events"](
            event_id=c["event_id"],
            ts=c["ts"],
            received_at=c["received_at"],
            tenant=c["tenant"],
            type=["output", "tool_call", "input"][i % 3],
            trace_id=c["trace_id"],
        )
        for i, c in enumerate(calls)
    ]
    sink.write_batch({"events": events[:400]}, "e1")
    sink.write_batch({"events": events[400:]}, "e2")
    sink.write_batch({"events": [dict(e, received_at=NOW) for e in events[200:250]]}, "e3")
    yield clickhouse, name, sink, call_row, rows["events"]
    clickhouse.command("SYSTEM START MERGES")
    clickhouse.command(f"DROP DATABASE IF EXISTS {name}")


def state(client, db: str) -> tuple:
    """Rows stored, and every column of every deduplicated row."""
    rows = client.query(f"SELECT count() FROM {db}.calls").result_rows[0][0]
    final = client.query(f"SELECT {COLUMNS} FROM {db}.calls FINAL ORDER BY event_id").result_rows
    return rows, final


EVENT_COLUMNS = "event_id, type, ts, received_at, tenant, trace_id"


def event_state(client, db: str) -> tuple:
    rows = client.query(f"SELECT count() FROM {db}.events").result_rows[0][0]
    final = client.query(f"SELECT {EVENT_COLUMNS} FROM {db}.events FINAL ORDER BY event_id").result_rows
    return rows, final


def keys(client, db: str, table: str = "calls") -> tuple[str, str]:
    return client.query(
        f"SELECT sorting_key, primary_key FROM system.tables WHERE database = '{db}' AND name = '{table}'"
    ).result_rows[0]


def test_rekey_keeps_every_row_and_the_final_result(old_store):
    client, db, *_ = old_store
    before = state(client, db)
    assert before[0] == 660 and len(before[1]) == 600  # the duplicates are stored, FINAL collapses them
    assert keys(client, db)[0] == "tenant, feature, model, ts, event_id"
    assert apply(client, database=db) == NEW
    assert keys(client, db) == (
        "toStartOfHour(ts), tenant, feature, model, ts, event_id",
        "toStartOfHour(ts), tenant, feature, model, ts",
    )
    assert state(client, db) == before  # rows, duplicates included, and what FINAL keeps of each
    left = {r[0] for r in client.query(f"SHOW TABLES FROM {db}").result_rows}
    assert not {"calls_rekeyed", "events_rekeyed"} & left and not any(t.startswith("schema_lock") for t in left)
    assert apply(client, database=db) == []  # re-running is a no-op


def test_events_rekey_keeps_every_row_and_the_final_result(old_store):
    client, db, *_ = old_store
    before = event_state(client, db)
    assert before[0] == 650 and len(before[1]) == 600
    assert keys(client, db, "events")[0] == "tenant, type, ts, event_id"
    apply(client, database=db)
    assert keys(client, db, "events") == (
        "toStartOfHour(ts), tenant, type, ts, event_id",
        "toStartOfHour(ts), tenant, type, ts",
    )
    assert event_state(client, db) == before


def test_after_the_rekey_the_view_still_marks_buckets_and_rollups_are_rebuilt(old_store):
    client, db, sink, call_row, event_row = old_store
    apply(client, database=db)
    # The watermarks are gone: readers use FINAL alone until the next refresh rebuilds every rollup.
    assert client.query(f"SELECT count() FROM {db}.rollup_watermark").result_rows[0][0] == 0
    marked = f"SELECT count() FROM {db}.rollup_dirty WHERE rollup = 'calls_rollup' AND tenant = 'late'"
    assert client.query(marked).result_rows[0][0] == 0
    sink.write_batch({"calls": [call_row(event_id=str(uuid.uuid4()), tenant="late")]}, "after")
    assert client.query(marked).result_rows[0][0] == 1
    events_marked = marked.replace("'calls_rollup'", "'events_rollup'")
    assert client.query(events_marked).result_rows[0][0] == 0
    sink.write_batch({"events": [event_row(tenant="late")]}, "after-events")
    assert client.query(events_marked).result_rows[0][0] == 1


def test_a_rekey_that_died_during_the_copy_resumes(old_store):
    """Killed mid-copy: the half-filled copy is emptied and filled again; nothing is counted twice."""
    client, db, *_ = old_store
    before = state(client, db)
    statements = REKEY.statements(db, {"calls": 400})
    client.command(statements[0])  # the new table
    client.command(f"INSERT INTO {db}.calls_rekeyed SELECT * FROM {db}.calls LIMIT 250")  # ... and half a copy
    assert apply(client, database=db) == NEW
    assert state(client, db) == before


def test_a_rekey_that_died_after_the_exchange_finishes_without_copying_again(old_store):
    client, db, *_ = old_store
    before = state(client, db)
    statements = REKEY.statements(db, {"calls": 400})
    exchange = next(i for i, s in enumerate(statements) if "EXCHANGE TABLES" in s)
    for statement in statements[: exchange + 1]:
        client.command(statement)
    assert keys(client, db)[0].startswith("toStartOfHour(ts)")
    assert apply(client, database=db) == NEW
    assert state(client, db) == before
    assert "calls_rekeyed" not in {r[0] for r in client.query(f"SHOW TABLES FROM {db}").result_rows}


def test_a_lock_left_by_a_dead_apply_stops_the_next_one_with_what_to_do(old_store):
    client, db, *_ = old_store
    client.command(f"CREATE TABLE {db}.schema_lock_0011 (holder String) ENGINE = Log")
    with pytest.raises(RuntimeError, match=rf"DROP TABLE {db}\.schema_lock_0011 and apply again"):
        apply(client, database=db, lock_wait_seconds=0.5)
    assert keys(client, db)[0] == "tenant, feature, model, ts, event_id"  # nothing was done under its lock
    client.command(f"DROP TABLE {db}.schema_lock_0011")
    assert apply(client, database=db) == NEW


def test_the_copy_is_checked_before_the_exchange(old_store):
    """A copy missing events (a worker wrote during it) stops the migration before calls is replaced."""
    client, db, *_ = old_store
    statements = REKEY.statements(db, {"calls": 400})
    check = next(s for s in statements if "throwIf" in s)
    client.command(statements[0])
    client.command(f"INSERT INTO {db}.calls_rekeyed SELECT * FROM {db}.calls LIMIT 100")
    with pytest.raises(Exception, match="does not hold the same events"):
        client.command(check)
