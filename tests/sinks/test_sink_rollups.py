"""Rollups (0008, 0010, sinks.rollups.refresh) and the panels that read them: exactly what `calls FINAL` gives.

Real embedded ClickHouse, real sink, the dashboards' own panel SQL expanded as Grafana would. The
panel SQL names the `tokentrail` database, so this module migrates that database in its engine.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokentrail.dashboards.catalog import dashboard
from tokentrail.dashboards.queries import Selection, last, panel_sql
from tokentrail.sinks import ClickHouseSink, apply
from tokentrail.sinks.rollups import MAX_AGE_SECONDS, ROLLUPS, refresh

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
            received_at=start + i * step + timedelta(milliseconds=40 + 97 * (i % 13)),
            tenant=tenants[i % 3],
            model=["gpt-4o", "gpt-4o-mini"][i % 2],
            trace_id=f"t{i // 3}",
            cost_usd=Decimal(i % 7 + 1) / 1000,
            status="error" if i % 11 == 0 else "ok",
            error_type="timeout" if i % 11 == 0 else "",
            priced=i % 5 != 0,
            latency_ms=float(100 + (i * 7919) % 5000),
            ttft_ms=None if i % 4 == 0 else float(20 + (i * 613) % 900),
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
    # Re-delivered copies that differ (re-priced), in the partial buckets at both ends of the range:
    # FINAL keeps the later insert, and so must the panel.
    edges = [
        make(event_id=str(uuid.uuid4()), ts=RANGE.time_range.start + timedelta(seconds=30), cost_usd=Decimal("0.25")),
        make(event_id=str(uuid.uuid4()), ts=NOW - timedelta(seconds=20), cost_usd=Decimal("0.5")),
    ]
    sink.write_batch({"calls": edges}, "e1")
    cost_before = truth(client)[0]
    sink.write_batch({"calls": [dict(c, cost_usd=c["cost_usd"] * 3) for c in edges]}, "e2")
    assert truth(client)[0] - cost_before == Decimal("1.5")  # the later copies count, once each
    assert panel(client, "tokentrail-spend", "Spend in range") == [truth(client)]
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
    calls_done = refresh(client, database="tokentrail")[0]
    before = panel(client, "tokentrail-spend", "Spend in range")
    bucket = NOW - timedelta(days=1, minutes=NOW.minute % 30, seconds=NOW.second)  # a whole 30-minute bucket
    insert = (
        "INSERT INTO tokentrail.{table} (bucket, tenant, service, feature, provider, model, priced, status, "
        "finish_reason, error_type, calls, cost_usd, input_tokens, cached_input_tokens, output_tokens, last_ts, "
        "computed_at) VALUES ({{b:DateTime}}, 'acme', 's', 'f', 'p', 'm', 1, 'ok', '', '', 1, {cost}, 0, 0, 0, "
        "{{b:DateTime}}, {{w:DateTime64(3)}})"
    )
    parameters = {"b": bucket.replace(tzinfo=None), "w": calls_done.watermark}
    # At 7 days a clean whole 30-minute bucket is read from calls_rollup_30m, and its 5-minute rows are not.
    client.command(insert.format(table="calls_rollup", cost=7), parameters=parameters)
    assert panel(client, "tokentrail-spend", "Spend in range") == before
    client.command(insert.format(table="calls_rollup_30m", cost=1000), parameters=parameters)
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
        "INSERT INTO tokentrail.rollup_watermark (name, refreshed_before, buckets) VALUES ({n:String}, "
        "{t:DateTime64(3)}, 0)",
        parameters={"t": stale, "n": ROLLUPS[0].name},
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


# Every panel that reads a rollup (any level): they must show what their raw-rows branch alone shows.
ROLLUP_PANELS = [
    (board.uid, p.title)
    for board in (dashboard("tokentrail-spend"), dashboard("tokentrail-reliability"), dashboard("tokentrail-pipeline"))
    for p in board.panels
    if "_rollup" in p.sql
]


def comparable(rows: list[tuple]) -> list[tuple]:
    """Rows with floats rounded (sums of the same numbers in another order) and NaN as None (NaN != NaN)."""
    return [
        tuple(
            None if isinstance(v, float) and math.isnan(v) else round(v, 9) if isinstance(v, float) else v for v in row
        )
        for row in rows
    ]


def test_every_rollup_panel_equals_its_final_rows_at_7_days_24_hours_and_6_hours(store, rows):
    """Each converted panel (sums, counts, histogram percentiles) shows the same rows with rollups as without.

    Without a watermark every branch but `FINAL` is constant-false, so the second reading is the
    panel over `calls FINAL` / `events FINAL` alone; late and re-delivered rows are marked but not
    yet refreshed, so the first reading mixes 30-minute, 5-minute and raw branches.
    """
    client, sink, make = store
    assert len(ROLLUP_PANELS) >= 23
    batch = calls_batch(make, 700, start=NOW - timedelta(days=7, minutes=13), step=timedelta(minutes=15, seconds=7))
    events = [
        rows["events"](ts=c["ts"], tenant=c["tenant"], type=["output", "tool_call", "input"][i % 3])
        for i, c in enumerate(batch)
    ]
    sink.write_batch({"calls": batch, "events": events}, "b1")
    sink.write_batch({"calls": batch[:60], "events": events[:30]}, "b2")  # re-delivered
    age_marks(client)
    refresh(client, database="tokentrail")
    for level in ("calls_rollup", "calls_rollup_30m", "events_rollup", "events_rollup_30m", "latency_rollup"):
        # the first reading has rollup rows to take (else both readings are FINAL alone)
        assert client.query(f"SELECT count() FROM tokentrail.{level}").result_rows[0][0] > 0, level
    late = calls_batch(make, 9, start=NOW - timedelta(hours=20, seconds=3), step=timedelta(minutes=2))
    sink.write_batch({"calls": late + batch[650:660]}, "b3")  # marked, not refreshed: raw rows for those buckets
    # 7 days: 30-minute rows; 24 hours: 5-minute rows; 6 hours (a default range): FINAL alone either way.
    for span in (timedelta(days=7), timedelta(hours=24), timedelta(hours=6)):
        selection = Selection(last(span, NOW))
        with_rollups = {}
        for uid, title in ROLLUP_PANELS:
            board = dashboard(uid)
            sql = panel_sql(board, next(p for p in board.panels if p.title == title), selection)
            with_rollups[uid, title] = (sql, comparable(sorted(client.query(sql).result_rows)))
        client.command("TRUNCATE TABLE tokentrail.rollup_watermark")
        for (uid, title), (sql, shown) in with_rollups.items():
            assert comparable(sorted(client.query(sql).result_rows)) == shown, f"{uid} / {title} at {span}"
            assert shown, f"{uid} / {title} at {span}: no rows, nothing compared"
        refresh(client, database="tokentrail")  # a full build again, for the next span


def test_percentiles_are_the_upper_bound_of_the_bin_holding_the_exact_percentile(store):
    """Latency p95 in 'Calls in range' is >= the exact nearest-rank p95 and < 1.05 times it."""
    client, sink, make = store
    batch = calls_batch(make, 400, start=NOW - timedelta(days=6), step=timedelta(minutes=19))
    sink.write_batch({"calls": batch}, "b")
    age_marks(client)
    refresh(client, database="tokentrail")
    shown = panel(client, "tokentrail-reliability", "Calls in range")[0][3]
    latencies = sorted(c["latency_ms"] for c in batch)
    exact = latencies[math.ceil(0.95 * len(latencies)) - 1]
    assert exact <= shown < exact * 1.05


def test_refresh_also_records_the_watermark_names_the_previous_release_reads(store):
    """Dashboards provisioned before 0010 look up 'calls_rollup' / 'events_rollup': they get the same watermark."""
    client, sink, make = store
    sink.write_batch({"calls": calls_batch(make, 5, start=NOW - timedelta(days=1), step=timedelta(minutes=7))}, "b")
    done = {r.rollup: r.watermark for r in refresh(client, database="tokentrail")}
    recorded = dict(
        client.query("SELECT name, max(refreshed_before) FROM tokentrail.rollup_watermark GROUP BY name").result_rows
    )
    assert recorded["calls_rollup"] == done[ROLLUPS[0].name]
    assert recorded["events_rollup"] == done[ROLLUPS[-1].name]
    assert set(recorded) == {*done, "calls_rollup", "events_rollup"}


def test_top_traces_equal_the_per_trace_sums_over_final_rows(store):
    """'Top traces by cost' (hash pass, then exact sums of 25 traces) is what grouping `calls FINAL` by trace gives."""
    client, sink, make = store
    batch = calls_batch(make, 600, start=NOW - timedelta(days=7, minutes=20), step=timedelta(minutes=17))
    sink.write_batch({"calls": batch}, "b1")
    sink.write_batch({"calls": [dict(c, cost_usd=c["cost_usd"] * 5) for c in batch[590:]]}, "b2")  # re-priced
    age_marks(client)
    refresh(client, database="tokentrail")
    start, end = (t.replace(microsecond=0) for t in (RANGE.time_range.start, RANGE.time_range.end))
    truth_rows = client.query(
        "SELECT trace_id, tenant, feature, count(), sum(input_tokens), sum(output_tokens), sum(cost_usd), min(ts), "
        "max(ts) FROM tokentrail.calls FINAL WHERE ts >= toDateTime({s:DateTime}) AND ts <= toDateTime({e:DateTime}) "
        "GROUP BY trace_id, tenant, feature ORDER BY sum(cost_usd) DESC, trace_id LIMIT 25",
        parameters={"s": start, "e": end},
    ).result_rows
    shown = panel(client, "tokentrail-spend", "Top traces by cost")
    assert len(shown) == 25
    # Ties in cost may order differently; the set of (trace, figures) rows above the 25th cost must match.
    cutoff = truth_rows[-1][6]
    assert {r for r in shown if r[6] > cutoff} == {r for r in truth_rows if r[6] > cutoff}
    assert sorted(r[6] for r in shown) == sorted(r[6] for r in truth_rows)


def top_traces_truth(client, selection: Selection, model: str | None = None) -> list[tuple]:
    """The 25 costliest traces in range, grouped from `calls FINAL` (optionally one model's calls)."""
    start, end = (t.replace(microsecond=0) for t in (selection.time_range.start, selection.time_range.end))
    only = " AND model = {m:String}" if model else ""
    return client.query(
        "SELECT trace_id, tenant, feature, count(), sum(input_tokens), sum(output_tokens), sum(cost_usd), min(ts), "
        "max(ts) FROM tokentrail.calls FINAL WHERE ts >= toDateTime({s:DateTime}) AND ts <= toDateTime({e:DateTime})"
        f"{only} GROUP BY trace_id, tenant, feature ORDER BY sum(cost_usd) DESC, trace_id LIMIT 25",
        parameters={"s": start, "e": end, "m": model or ""},
    ).result_rows


def assert_same_top(shown: list[tuple], truth: list[tuple]) -> None:
    """The same rows above the 25th cost, and the same 25 costs (a tie at the cut may pick another trace)."""
    assert len(shown) == len(truth) == 25
    cutoff = truth[-1][6]
    assert {r for r in shown if r[6] > cutoff} == {r for r in truth if r[6] > cutoff}
    assert sorted(r[6] for r in shown) == sorted(r[6] for r in truth)


def test_top_traces_from_trace_totals_equal_final_rows_with_crossing_marked_and_multi_model_traces(store):
    """'Top traces by cost' reads trace_totals (0013) for clean traces inside the range and `calls FINAL` for
    the rest: traces crossing either end of the range, traces with late or re-priced calls since the last
    refresh, traces over several models; always what grouping `calls FINAL` by trace gives."""
    client, sink, make = store
    start, end = RANGE.time_range.start, RANGE.time_range.end
    tenants, features = ["acme", "globex"], ["chat", "search"]
    calls: list[dict] = []
    mid: dict[str, list[dict]] = {}  # trace id -> its calls

    def trace(name: str, times: list[datetime], cost: int, models=("gpt-4o",)) -> None:
        rows = [
            make(
                event_id=str(uuid.uuid4()),
                ts=t,
                trace_id=name,
                tenant=tenants[len(mid) % 2],
                feature=features[len(mid) // 2 % 2],
                model=models[i % len(models)],
                service=f"svc-{models[i % len(models)]}",
                input_tokens=100 + i,
                output_tokens=10 + i,
                cost_usd=Decimal(cost + i) / 10**6,
            )
            for i, t in enumerate(times)
        ]
        mid[name] = rows
        calls.extend(rows)

    for n in range(60):  # wholly inside, one model: read from the totals as they are
        first = start + timedelta(hours=2 + n * 2, seconds=n)
        trace(f"in{n}", [first, first + timedelta(minutes=1), first + timedelta(minutes=2)], 1000 + 37 * n)
    for n in range(8):  # wholly inside, two models: grouped
        first = start + timedelta(days=1, hours=n * 3, seconds=n)
        trace(f"multi{n}", [first + timedelta(minutes=k) for k in range(4)], 2500 + 11 * n, ("gpt-4o", "o3-mini"))
    for n in range(5):  # across the start of the range, and across its end (calls after it)
        trace(f"early{n}", [start - timedelta(minutes=9), start + timedelta(minutes=3 + n)], 4000 + n * 300)
        trace(f"late{n}", [end - timedelta(minutes=4 + n), end + timedelta(minutes=7)], 4100 + n * 300)
    trace("spans", [start - timedelta(hours=1), start + timedelta(days=3), end + timedelta(hours=1)], 3000)
    sink.write_batch({"calls": calls}, "b1")
    sink.write_batch({"calls": [dict(c, cost_usd=c["cost_usd"] * 7) for c in mid["in3"]]}, "b2")  # re-priced
    age_marks(client)
    refresh(client, database="tokentrail")
    assert client.query("SELECT count() FROM tokentrail.trace_totals WHERE combos > 1").result_rows[0][0] == 16
    assert_same_top(panel(client, "tokentrail-spend", "Top traces by cost"), top_traces_truth(client, RANGE))

    # Since the refresh: a late call into a clean trace's old bucket, a re-priced copy of another's call,
    # a new trace, a second model in a one-model trace. Marked, not refreshed: read from calls FINAL.
    late = [
        make(trace_id="in5", tenant=mid["in5"][0]["tenant"], feature=mid["in5"][0]["feature"],
             ts=mid["in5"][0]["ts"] - timedelta(hours=5), cost_usd=Decimal("0.05")),
        dict(mid["in40"][1], cost_usd=Decimal("0.04")),
        make(trace_id="fresh", ts=end - timedelta(minutes=30), cost_usd=Decimal("0.045")),
        dict(mid["in7"][0], event_id=str(uuid.uuid4()), model="o3-mini", service="svc-o3-mini",
             cost_usd=Decimal("0.035")),
    ]  # fmt: skip
    sink.write_batch({"calls": late}, "b3")
    truth = top_traces_truth(client, RANGE)
    assert {"in5", "in40", "fresh", "in7"} <= {r[0] for r in truth}
    assert_same_top(panel(client, "tokentrail-spend", "Top traces by cost"), truth)
    assert refresh(client, database="tokentrail")[-1].buckets >= 3  # the marked buckets (marks stay for readers)
    # Each recomputed trace's previous rows are gone: one row per (trace, service, model).
    count, distinct = client.query(
        "SELECT count(), uniqExact(tenant, feature, trace_id, service, model) FROM tokentrail.trace_totals"
    ).result_rows[0]
    assert count == distinct
    assert_same_top(panel(client, "tokentrail-spend", "Top traces by cost"), top_traces_truth(client, RANGE))
    # A model selected: that model's calls of each trace.
    board = dashboard("tokentrail-spend")
    chosen = next(p for p in board.panels if p.title == "Top traces by cost")
    one_model = Selection(RANGE.time_range, values={"model": ("o3-mini",)})
    shown = sorted(client.query(panel_sql(board, chosen, one_model)).result_rows)
    truth = top_traces_truth(client, one_model, "o3-mini")
    assert sorted(truth) == shown  # fewer than 25 traces: all of them
    # The clean traces inside the range are read from the totals: a changed row shows.
    client.command(
        "ALTER TABLE tokentrail.trace_totals UPDATE cost_usd = 1000 WHERE trace_id = 'in11' SETTINGS mutations_sync = 1"
    )
    top = panel(client, "tokentrail-spend", "Top traces by cost")
    assert [r[6] for r in top if r[0] == "in11"] == [Decimal(1000)]
