"""ClickHouseSink against a real embedded ClickHouse: storage, deduplication, retries."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokentrail.sinks import ClickHouseSink, SinkClosedError, SinkWriteError, StoreUnavailable

FAST = (0.001, 0.005)


def count(clickhouse, db, table, *, final=False) -> int:
    return int(clickhouse.command(f"SELECT count() FROM {db}.{table}{' FINAL' if final else ''}"))


def test_write_batch_stores_rows_of_every_table(clickhouse, db, rows):
    """One batch spanning every table lands every row, values intact."""
    sink = ClickHouseSink(clickhouse, database=db)
    batch = {table: [make() for _ in range(3)] for table, make in rows.items()}
    batch["deadletter"] = [rows["deadletter"](id=uuid.uuid4()) for _ in range(3)]
    sink.write_batch(batch, token="p0:0-11")
    for table in batch:
        assert count(clickhouse, db, table) == 3
    assert sink.stats["rows"] == 3 * len(batch) and sink.stats["batches"] == 1


def test_values_round_trip(clickhouse, db, rows):
    """Decimal cost stays exact, None stays NULL in Nullable columns, str and UUID ids mix."""
    sink = ClickHouseSink(clickhouse, database=db)
    first = rows["calls"](cost_usd=Decimal("0.000000000001"), latency_ms=None, ttft_ms=None)
    second = rows["calls"](event_id=uuid.uuid4(), cost_usd=Decimal("123.456789012345"), tool_names=[])
    sink.write_batch({"calls": [first, second]}, token="t")
    got = {
        str(r["event_id"]): r
        for r in clickhouse.query(
            f"SELECT event_id, cost_usd, latency_ms, ttft_ms, tool_names, ts FROM {db}.calls"
        ).named_results()
    }
    assert got[first["event_id"]]["cost_usd"] == Decimal("0.000000000001")
    assert got[first["event_id"]]["latency_ms"] is None
    assert got[str(second["event_id"])]["cost_usd"] == Decimal("123.456789012345")
    assert got[str(second["event_id"])]["tool_names"] == []
    total = clickhouse.command(f"SELECT toString(sum(cost_usd)) FROM {db}.calls")
    assert Decimal(total) == Decimal("123.456789012346")


def test_naive_datetime_is_utc(clickhouse, db, rows):
    """A naive datetime means UTC, whatever the process timezone."""
    sink = ClickHouseSink(clickhouse, database=db)
    sink.write_batch({"calls": [rows["calls"](ts=datetime(2026, 11, 20, 9, 1, 0, 100000))]}, token="t")
    stored = clickhouse.command(f"SELECT toString(ts) FROM {db}.calls")
    assert stored == "2026-11-20 09:01:00.100"


def test_same_batch_and_token_stored_once(clickhouse, db, rows):
    """A replayed batch with the same token is dropped as a block: exact even without FINAL."""
    sink = ClickHouseSink(clickhouse, database=db)
    batch = {"calls": [rows["calls"]() for _ in range(5)], "events": [rows["events"]() for _ in range(5)]}
    sink.write_batch(batch, token="p3:100-104")
    sink.write_batch(batch, token="p3:100-104")
    for table in batch:
        assert count(clickhouse, db, table) == 5
        assert count(clickhouse, db, table, final=True) == 5


def test_same_token_dedups_across_partitions(clickhouse, db, rows):
    """A batch whose rows fall in several monthly partitions is still deduplicated as a whole."""
    sink = ClickHouseSink(clickhouse, database=db)
    now = datetime.now(UTC)
    batch = {"calls": [rows["calls"](ts=now - timedelta(days=40 * i)) for i in range(4)]}
    sink.write_batch(batch, token="multi")
    sink.write_batch(batch, token="multi")
    assert count(clickhouse, db, "calls") == 4


def test_old_event_time_is_kept(clickhouse, db, rows):
    """Retention counts from ingest time, so replaying year-old events does not drop them on arrival."""
    sink = ClickHouseSink(clickhouse, database=db)
    old = datetime.now(UTC) - timedelta(days=800)
    sink.write_batch({"events": [rows["events"](ts=old, received_at=datetime.now(UTC))]}, token="t")
    clickhouse.command(f"OPTIMIZE TABLE {db}.events FINAL")
    assert count(clickhouse, db, "events") == 1


def test_other_token_same_ids_collapses_under_final(clickhouse, db, rows):
    """Re-batched rows (new token, same event_ids) are two rows on disk but one under FINAL."""
    sink = ClickHouseSink(clickhouse, database=db)
    batch = {"calls": [rows["calls"]() for _ in range(3)], "deadletter": [rows["deadletter"]()]}
    sink.write_batch(batch, token="first")
    redelivered = dict(batch, deadletter=[rows["deadletter"](received_at=datetime.now(UTC))])
    sink.write_batch(redelivered, token="second")
    assert count(clickhouse, db, "calls") == 6
    assert count(clickhouse, db, "calls", final=True) == 3
    assert count(clickhouse, db, "deadletter", final=True) == 1
    clickhouse.command(f"OPTIMIZE TABLE {db}.calls FINAL")
    assert count(clickhouse, db, "calls") == 3


def test_transient_failures_are_retried_and_stored_once(clickhouse, db, rows, flaky):
    """Inserts failing three times then succeeding store the batch exactly once."""
    wrapped = flaky(clickhouse, failures=3)
    sink = ClickHouseSink(wrapped, database=db, backoff=FAST)
    sink.write_batch({"calls": [rows["calls"]() for _ in range(4)]}, token="t")
    assert wrapped.insert_calls == 4
    assert sink.stats["retries"] == 3
    assert count(clickhouse, db, "calls") == 4


def test_retry_after_unacknowledged_write_is_deduplicated(clickhouse, db, rows, flaky):
    """When the server stored the block but the clickhouse saw an error, the retry is dropped by token."""
    wrapped = flaky(clickhouse, failures=2, after_write=True)
    sink = ClickHouseSink(wrapped, database=db, backoff=FAST)
    sink.write_batch({"calls": [rows["calls"]() for _ in range(4)]}, token="t")
    assert wrapped.insert_calls == 3
    assert count(clickhouse, db, "calls") == 4


def test_max_attempts_exhausted_raises(clickhouse, db, rows, flaky):
    """With max_attempts the sink gives up loudly, never reporting success for lost rows."""
    wrapped = flaky(clickhouse, failures=10)
    sink = ClickHouseSink(wrapped, database=db, max_attempts=3, backoff=FAST)
    with pytest.raises(SinkWriteError, match="failed 3 times") as info:
        sink.write_batch({"calls": [rows["calls"]()]}, token="t")
    assert isinstance(info.value, StoreUnavailable) and info.value.attempts == 3
    assert "injected" in str(info.value.__cause__)
    assert wrapped.insert_calls == 3
    assert count(clickhouse, db, "calls") == 0


def test_retries_are_logged_rate_limited(clickhouse, db, rows, flaky, caplog):
    """A burst of failures produces one warning, not one per attempt."""
    sink = ClickHouseSink(flaky(clickhouse, failures=5), database=db, backoff=FAST)
    with caplog.at_level(logging.DEBUG, logger="tokentrail.sinks.writer"):
        sink.write_batch({"calls": [rows["calls"]()]}, token="t")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert any("after 6 attempts" in r.getMessage() for r in caplog.records)


def test_unknown_column_raises_before_any_insert(clickhouse, db, rows, flaky):
    """A row naming a column the table lacks is the processor's bug: ValueError, nothing written, no retry."""
    wrapped = flaky(clickhouse, failures=0)
    sink = ClickHouseSink(wrapped, database=db, backoff=FAST)
    with pytest.raises(ValueError, match="no column"):
        sink.write_batch({"events": [rows["events"]()], "calls": [rows["calls"](surprise=1)]}, token="t")
    assert wrapped.insert_calls == 0 and sink.stats["retries"] == 0
    assert count(clickhouse, db, "events") == 0


def test_new_column_is_picked_up(clickhouse, db, rows):
    """A column added after the sink read the schema is found by re-reading it once."""
    sink = ClickHouseSink(clickhouse, database=db)
    sink.write_batch({"calls": [rows["calls"]()]}, token="a")
    clickhouse.command(f"ALTER TABLE {db}.calls ADD COLUMN region LowCardinality(String) DEFAULT ''")
    sink.write_batch({"calls": [rows["calls"](region="eu")]}, token="b")
    assert clickhouse.command(f"SELECT countIf(region = 'eu') FROM {db}.calls") == 1


def test_close_aborts_a_retry_loop(clickhouse, db, rows, flaky):
    """close() from another thread ends a retry-forever loop with SinkClosedError, not success."""
    sink = ClickHouseSink(flaky(clickhouse, failures=10**6), database=db, backoff=(0.01, 0.05))
    errors: list[BaseException] = []

    def run():
        try:
            sink.write_batch({"calls": [rows["calls"]()]}, token="t")
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.2)
    sink.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], SinkClosedError)
    with pytest.raises(SinkClosedError):
        sink.write_batch({"calls": [rows["calls"]()]}, token="u")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"database": "bad-name"},
        {"max_attempts": 0},
        {"backoff": (0, 1)},
        {"backoff": (2, 1)},
        {"backoff": "x"},
    ],
)
def test_bad_configuration_raises(clickhouse, kwargs):
    """Misconfiguration is a ValueError when the sink is built, not a surprise at write time."""
    with pytest.raises(ValueError):
        ClickHouseSink(clickhouse, **kwargs)


def test_bad_token_raises(clickhouse, db, rows):
    """An empty token would make every batch collide: refused."""
    with pytest.raises(ValueError, match="token"):
        ClickHouseSink(clickhouse, database=db).write_batch({"calls": [rows["calls"]()]}, token="")
