"""Rollups (0008, sinks.rollups.refresh) and the panels that read them: exactly what `calls FINAL` gives.

Real embedded ClickHouse, real sink, the dashboards' own panel SQL expanded as Grafana would. The
panel SQL names the `tokentrail` database, so this module migrates that database in its engine.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokentrail.dashboards.catalog import dashboard
from tokentrail.dashboards.queries import Selection, last, panel_sql
from tokentrail.sinks import ClickHouseSink, apply
from tokentrail.sinks.rollups import MAX_AGE_SECONDS, refresh

NOW = datetime.now(UTC).replace(second=17, microsecond=0) - timedelta(minutes=3)
RANGE = Selection(last(timedelta(days=7), NOW))  # 7 days: a 30-minute interval, so rollups may serve


@pytest.fixture
def store(clickhouse, rows):
    clickhouse.command("DROP DATABASE IF EXISTS tokentrail")
    apply(clickhouse, database="tokentrail")
    sink = ClickHouseSink(clickhouse, database="tokentrail")
    yield clickhouse, sink, rows["calls"]
    clickhouse.command("DROP DATABASE IF EXISTS tokentrail")


def calls_batch(make, n: int, *, start: datetime, step: timedelta) -> list[dict]:
    tenants = ["acme", "globex", "initech"]
    return [
        make(
            event_id=str(uuid.uuid4()),
            ts=start + i * step,
            tenant=tenants[i % 3],
            trace_id=f"t{i // 3}",
            cost_usd=Decimal(i % 7 + 1) / 1000,
            status="error" if i % 11 == 0 else "ok",
        )
        for i in range(n)
    ]


def age_marks(client) -> None:
    """Make every mark an hour old, as if the data had arrived well before the next refresh.

    Marks made within MARGIN_SECONDS before a refresh are distrusted by readers, so without this
    a test that writes and refreshes at once would never see the rollup used.
    """
    client.command(
        "INSERT INTO tokentrail.rollup_dirty SELECT rollup, tenant, bucket, marked_at - INTERVAL 1 HOUR "
        "FROM tokentrail.rollup_dirty"
    )
    client.command(
        "ALTER TABLE tokentrail.rollup_dirty DELETE WHERE marked_at > now64(3) - INTERVAL 30 MINUTE "
        "SETTINGS mutations_sync = 1"
    )


def panel(client, uid: str, title: str) -> list[tuple]:
    board = dashboard(uid)
    chosen = next(p for p in board.panels if p.title == title)
    return sorted(client.query(panel_sql(board, chosen, RANGE)).result_rows)


def truth(client) -> tuple:
    """Spend in range straight from deduplicated rows, with the time filter Grafana would send."""
    start, end = RANGE.time_range.start, RANGE.time_range.end
    return tuple(
        client.query(
            "SELECT sum(cost_usd), count() FROM tokentrail.calls FINAL "
            "WHERE ts >= toDateTime({s:DateTime}) AND ts <= toDateTime({e:DateTime})",
            parameters={"s": start.replace(microsecond=0), "e": end.replace(microsecond=0)},
        ).result_rows[0]
    )


def test_panels_equal_final_rows_through_duplicates_late_rows_and_partial_buckets(store):
    """Re-deliveries, a late call into an old bucket, range edges mid-bucket: the panel equals calls FINAL."""
    client, sink, make = store
    batch = calls_batch(make, 300, start=NOW - timedelta(days=7, minutes=10), step=timedelta(minutes=34))
    sink.write_batch({"calls": batch}, "b1")
    sink.write_batch({"calls": batch[:40]}, "b2")  # re-delivered in another batch: extra rows until merged
    age_marks(client)
    first = refresh(client, database="tokentrail")
    assert all(r.full for r in first)
    spend = panel(client, "tokentrail-spend", "Spend in range")
    assert spend == [truth(client)]
    assert truth(client)[1] < len(batch)  # the range starts mid-way: the first calls are outside it
    # Late and re-delivered rows in buckets the rollup already holds, before the next refresh:
    late = calls_batch(make, 5, start=NOW - timedelta(days=3, seconds=7), step=timedelta(seconds=1))
    sink.write_batch({"calls": late + batch[100:110]}, "b3")
    assert panel(client, "tokentrail-spend", "Spend in range") == [truth(client)]
    assert refresh(client, database="tokentrail")[0].buckets >= 2  # the marked buckets only
    assert panel(client, "tokentrail-spend", "Spend in range") == [truth(client)]
    series = panel(client, "tokentrail-reliability", "Calls by model")
    assert sum(row[2] for row in series) == truth(client)[1]


def test_the_rollup_is_what_the_panel_reads_for_clean_buckets(store):
    """Tampering with a clean bucket's rollup row changes the panel (it is read); a marked bucket's does not."""
    client, sink, make = store
    sink.write_batch({"calls": calls_batch(make, 50, start=NOW - timedelta(days=2), step=timedelta(hours=1))}, "b")
    age_marks(client)
    (calls_done, _events) = refresh(client, database="tokentrail")
    before = panel(client, "tokentrail-spend", "Spend in range")
    bucket = NOW - timedelta(days=1, minutes=NOW.minute % 5, seconds=NOW.second)
    client.command(
        "INSERT INTO tokentrail.calls_rollup (bucket, tenant, service, feature, provider, model, priced, status, "
        "finish_reason, error_type, calls, cost_usd, input_tokens, cached_input_tokens, output_tokens, last_ts, "
        "computed_at) VALUES ({b:DateTime}, 'acme', 's', 'f', 'p', 'm', 1, 'ok', '', '', 1, 1000, 0, 0, 0, "
        "{b:DateTime}, {w:DateTime64(3)})",
        parameters={"b": bucket.replace(tzinfo=None), "w": calls_done.watermark},
    )
    assert panel(client, "tokentrail-spend", "Spend in range")[0][0] == before[0][0] + 1000
    # A call into that bucket marks it for acme: the panel reads acme's rows of it from calls again.
    sink.write_batch({"calls": [make(ts=bucket + timedelta(seconds=1), tenant="acme", cost_usd=Decimal("0.5"))]}, "c")
    assert panel(client, "tokentrail-spend", "Spend in range") == [truth(client)]


def test_without_a_fresh_watermark_panels_read_calls_and_refresh_rebuilds(store):
    """No refresh yet, or none for longer than the marks are kept: raw rows (exact), and the next refresh is full."""
    client, sink, make = store
    sink.write_batch({"calls": calls_batch(make, 30, start=NOW - timedelta(days=1), step=timedelta(minutes=40))}, "b")
    assert panel(client, "tokentrail-spend", "Spend in range") == [truth(client)]  # never refreshed
    refresh(client, database="tokentrail")
    stale = NOW - timedelta(seconds=MAX_AGE_SECONDS + 60)
    client.command(
        "INSERT INTO tokentrail.rollup_watermark (name, refreshed_before, buckets) VALUES ('calls_rollup', "
        "{t:DateTime64(3)}, 0)",
        parameters={"t": stale},
    )
    client.command("OPTIMIZE TABLE tokentrail.rollup_watermark FINAL")
    client.command("ALTER TABLE tokentrail.rollup_watermark DELETE WHERE refreshed_before > {t:DateTime64(3)} "
                   "SETTINGS mutations_sync = 1", parameters={"t": stale})  # fmt: skip
    assert panel(client, "tokentrail-spend", "Spend in range") == [truth(client)]
    assert refresh(client, database="tokentrail")[0].full


def test_refresh_recomputes_distant_marked_buckets_by_separate_inserts():
    """A straggler bucket days before the others is its own run: no insert reads the days between."""
    from tokentrail.sinks.rollups import _BUCKETS_PER_INSERT, _runs

    start = datetime(2026, 1, 1, tzinfo=UTC)
    five = timedelta(minutes=5)
    recent = [start + timedelta(days=3) + i * five for i in range(4)]
    assert _runs([start, *recent]) == [[start], recent]
    contiguous = [start + i * five for i in range(_BUCKETS_PER_INSERT + 1)]
    assert [len(run) for run in _runs(contiguous)] == [_BUCKETS_PER_INSERT, 1]
    assert _runs([]) == []
