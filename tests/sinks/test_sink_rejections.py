"""Nothing the store can refuse fails a batch: per-row rejections, partition-bounded inserts,
and store failures told apart from data failures. All against the real embedded ClickHouse."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from tokentrail.sinks import ClickHouseSink, Rejection, StoreUnavailable, connect
from tokentrail.sinks.outcomes import Failure, classify

FAST = (0.001, 0.005)


def count(clickhouse, db, table) -> int:
    return int(clickhouse.command(f"SELECT count() FROM {db}.{table}"))


def stored_ids(clickhouse, db, table) -> set[str]:
    return {str(r[0]) for r in clickhouse.query(f"SELECT event_id FROM {db}.{table}").result_rows}


def test_out_of_range_values_are_rejected_and_good_rows_stored(clickhouse, db, rows):
    """A UInt32 overflow and DateTimes outside 1900-2299 become rejections naming the column; the rest is stored."""
    sink = ClickHouseSink(clickhouse, database=db)
    good = [rows["calls"]() for _ in range(4)]
    too_many_tokens = rows["calls"](input_tokens=5_000_000_000_000)
    year_one = rows["calls"](ts="0001-01-01T00:00:00+00:00")
    year_9999 = rows["calls"](ts=datetime(9999, 12, 31, tzinfo=UTC))
    batch = [good[0], too_many_tokens, good[1], year_one, good[2], year_9999, good[3]]
    result = sink.write_batch({"calls": batch}, token="p0:0-6")
    assert stored_ids(clickhouse, db, "calls") == {str(r["event_id"]) for r in good}
    by_id = {r.event_id: r for r in result.rejected}
    assert set(by_id) == {str(too_many_tokens["event_id"]), str(year_one["event_id"]), str(year_9999["event_id"])}
    assert by_id[str(too_many_tokens["event_id"])] == Rejection(
        str(too_many_tokens["event_id"]),
        "calls",
        "input_tokens",
        by_id[str(too_many_tokens["event_id"])].reason,
        1,
    )
    assert "out of range" in by_id[str(too_many_tokens["event_id"])].reason
    assert (by_id[str(year_one["event_id"])].column, by_id[str(year_one["event_id"])].index) == ("ts", 3)
    assert "DateTime64 range" in by_id[str(year_9999["event_id"])].reason
    assert result.stored == {"calls": 4} and sink.stats["rejected"] == 3


def test_rejected_event_is_withheld_from_every_table(clickhouse, db, rows):
    """An event whose calls row is rejected leaves no row in events or receipts either: stored whole or not at all."""
    sink = ClickHouseSink(clickhouse, database=db)
    bad_id, good_id = uuid.uuid4(), uuid.uuid4()
    batch = {
        "events": [rows["events"](event_id=bad_id), rows["events"](event_id=good_id)],
        "calls": [rows["calls"](event_id=str(bad_id), output_tokens=-1), rows["calls"](event_id=str(good_id))],
        "receipts": [rows["receipts"](event_id=bad_id), rows["receipts"](event_id=good_id)],
    }
    result = sink.write_batch(batch, token="t")
    assert [(r.table, r.column, r.event_id) for r in result.rejected] == [("calls", "output_tokens", str(bad_id))]
    assert result.withheld == {"events": 1, "receipts": 1}
    for table in batch:
        assert stored_ids(clickhouse, db, table) == {str(good_id)}


def test_store_refusal_is_bisected_to_the_bad_rows(clickhouse, db, rows):
    """A row only the server refuses (a CHECK constraint, code 469) is isolated by splitting; every other row lands."""
    clickhouse.command(f"ALTER TABLE {db}.calls ADD CONSTRAINT sane_output CHECK output_tokens < 1000000")
    sink = ClickHouseSink(clickhouse, database=db)
    batch = [rows["calls"]() for _ in range(9)]
    batch[2]["output_tokens"] = 2_000_000
    batch[7]["output_tokens"] = 3_000_000
    result = sink.write_batch({"calls": batch}, token="p1:0-8")
    assert sorted(r.index for r in result.rejected) == [2, 7]
    assert {r.event_id for r in result.rejected} == {str(batch[2]["event_id"]), str(batch[7]["event_id"])}
    assert all("469" in r.reason or "constraint" in r.reason.lower() for r in result.rejected)
    assert count(clickhouse, db, "calls") == 7 and sink.stats["splits"] >= 2
    # The same batch again (a retry after a crash) is refused and split the same way: nothing twice.
    again = sink.write_batch({"calls": batch}, token="p1:0-8")
    assert sorted(r.index for r in again.rejected) == [2, 7]
    assert count(clickhouse, db, "calls") == 7


def test_backfill_across_130_months_inserts_and_retry_stores_nothing_twice(clickhouse, db, rows):
    """130 rows in 130 monthly partitions (ClickHouse allows 100 per insert) store in one batch; a retry adds none."""
    sink = ClickHouseSink(clickhouse, database=db)
    months = [datetime(2010 + i // 12, i % 12 + 1, 15, tzinfo=UTC) for i in range(130)]
    batch = {"calls": [rows["calls"](ts=ts) for ts in months], "events": [rows["events"](ts=ts) for ts in months]}
    first = sink.write_batch(batch, token="backfill:0-129")
    assert first.rejected == [] and first.stored == {"calls": 130, "events": 130}
    assert sink.stats["splits"] == 0 and sink.stats["inserts"] == 260  # one insert per partition, none refused
    assert count(clickhouse, db, "calls") == 130 and count(clickhouse, db, "events") == 130
    partitions = clickhouse.command(
        f"SELECT uniqExact(partition) FROM system.parts WHERE database = '{db}' AND table = 'calls' AND active"
    )
    assert int(partitions) == 130
    sink.write_batch(batch, token="backfill:0-129")
    assert count(clickhouse, db, "calls") == 130 and count(clickhouse, db, "events") == 130


def test_one_insert_over_100_partitions_is_what_the_grouping_avoids(clickhouse, db, rows):
    """The limit is real here: the same 130 months in one raw insert fail with TOO_MANY_PARTS (split-worthy)."""
    months = [datetime(2010 + i // 12, i % 12 + 1, 15, tzinfo=UTC) for i in range(130)]
    ids = [uuid.uuid4() for _ in months]
    with pytest.raises(DatabaseError) as info:
        clickhouse.insert(
            "calls",
            [ids, months, ["t"] * 130, ["s"] * 130, ["f"] * 130, ["p"] * 130, ["m"] * 130],
            column_names=["event_id", "ts", "tenant", "service", "feature", "provider", "model"],
            database=db,
            column_oriented=True,
        )
    assert "252" in str(info.value) and classify(info.value) is Failure.SPLIT


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UnreachableStore:
    """The real client for reads, while every insert goes to a ClickHouse server that is not there.

    Each insert really opens an HTTP connection to a closed port (the driver's own error, not
    a fabricated one), as when the server goes away after the worker started.
    """

    def __init__(self, real):
        self._real = real
        self.dsn = f"http://default:@127.0.0.1:{_closed_port()}/default"
        self.insert_calls = 0

    def insert(self, *args, **kwargs):
        self.insert_calls += 1
        clickhouse_connect.get_client(dsn=self.dsn, connect_timeout=1).insert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_unreachable_server_is_a_store_failure_not_a_rejection(clickhouse, db, rows):
    """Connection refused is retried, then StoreUnavailable with the counts; no row is rejected, none stored."""
    store = UnreachableStore(clickhouse)
    sink = ClickHouseSink(store, database=db, max_attempts=3, backoff=FAST)
    with pytest.raises(StoreUnavailable) as info:
        sink.write_batch({"calls": [rows["calls"]() for _ in range(3)]}, token="t")
    assert isinstance(info.value.__cause__, OperationalError)
    assert (info.value.attempts, info.value.consecutive_failures, info.value.table) == (3, 3, "calls")
    assert store.insert_calls == 3 and sink.stats["rejected"] == 0
    assert sink.stats["consecutive_failures"] == 3 and sink.stats["failing_since"] > 0
    assert count(clickhouse, db, "calls") == 0
    # Back to a healthy store: the same batch lands and the failure count resets.
    healthy = ClickHouseSink(clickhouse, database=db)
    healthy.stats = sink.stats
    healthy.write_batch({"calls": [rows["calls"]()]}, token="u")
    assert healthy.stats["consecutive_failures"] == 0 and healthy.stats["failing_since"] == 0.0


def test_unreachable_dsn_raises_an_operational_error_classified_as_store(clickhouse):
    """connect() to a server that is not there raises the driver's OperationalError, which is a store failure."""
    with pytest.raises(OperationalError) as info:
        connect(f"http://default:@127.0.0.1:{_closed_port()}/default")
    assert classify(info.value) is Failure.STORE


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OperationalError("connection reset by peer"), Failure.STORE),
        (DatabaseError("Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)"), Failure.STORE),
        (DatabaseError("Code: 252. DB::Exception: Too many parts (300) in partition. Merges are slow"), Failure.STORE),
        (
            DatabaseError("Code: 321. DB::Exception: Value out of range. (VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE)"),
            Failure.ROW,
        ),
        (DataError("Unable to create native array for column `n`"), Failure.ROW),
        (ValueError("bad"), Failure.ROW),
    ],
)
def test_failures_are_classified_by_code_and_class(exc, kind):
    """Error codes about values are row failures; connection errors, memory and merge pressure are the store's."""
    assert classify(exc) is kind
