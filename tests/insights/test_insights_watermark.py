"""The job's watermark and state in the store: a restart continues where the last run stopped.

Restart = new objects (sink, publisher) and nothing in memory: all the job knows comes from the
store. No window repeated: alerts carry stable ids and are published once, stored changes and
breaches do not duplicate (counted without FINAL). None skipped: a call arriving within the
lateness margin after its window closed is counted by the next run (variance, spend and a new
value it carries). The first-seen state stands in for the history: a value whose calls are gone
from `calls` is still the baseline a new value changes from.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from tokentrail.sinks import ClickHouseSink
from tokentrail.stream.insights import BudgetConfig, closing_time, read_watermark, run_from_watermark, run_insights
from tokentrail.stream.insights.jobs import LATENESS, floor_time
from tokentrail.stream.synthetic import DEFAULT_START, GeneratorConfig

WINDOW = 300
BUDGETS = BudgetConfig.from_dict({"budgets": [{"scope": "tenant", "key": "*", "window": "hour", "warning": "0.5"}]})


@pytest.fixture(scope="module")
def anomalies(replayed):
    return replayed(GeneratorConfig(seed=11, events=6_000, duration=timedelta(hours=3)))


def copy_of(client, new_db, db: str) -> str:
    copy = new_db()
    client.command(f"INSERT INTO {copy}.calls SELECT * FROM {db}.calls")
    return copy


def ids(client, db: str, table: str, column: str) -> list[str]:
    return [r[0] for r in client.query(f"SELECT toString({column}) FROM {db}.{table}").result_rows]


def test_a_restart_reads_the_watermark_back_and_repeats_no_window(clickhouse, anomalies, new_db):
    """Ticks every 10 minutes through three hours, in two 'processes': the second starts from the first's
    watermark (minus the lateness margin), no alert id is published twice, and the stored changes and breaches
    equal one run over everything, without duplicate rows."""
    db = copy_of(clickhouse, new_db, anomalies[0])
    reference_db = copy_of(clickhouse, new_db, anomalies[0])
    reference = run_insights(
        clickhouse, database=reference_db, now=closing_time(clickhouse, database=reference_db), budgets=BUDGETS
    )
    assert reference.changes and reference.breaches

    ticks = [DEFAULT_START + timedelta(minutes=10 * k) for k in range(1, 20)]
    published: list[str] = []
    for process in (ticks[:9], ticks[9:]):  # each "process" has its own sink and knows nothing else
        sink = ClickHouseSink(clickhouse, database=db)
        for now in process:
            before = read_watermark(clickhouse, db)
            result = run_from_watermark(
                clickhouse,
                database=db,
                now=now,
                budgets=BUDGETS,
                sink=sink,
                publish=lambda alerts: published.extend(a["id"] for a in alerts),
            )
            assert result.covered_until == now == read_watermark(clickhouse, db)
            if before is not None:  # read back: the run covered the windows from the last one's now - lateness
                assert before == now - timedelta(minutes=10)
                windows = [r["window_start"] for r in result.variance_rows]
                assert windows and min(windows) >= floor_time(before - LATENESS, WINDOW)

    assert [i for i, n in Counter(published).items() if n > 1] == []
    expected_changes = {str(c.change_id) for c in reference.changes}
    expected_breaches = {str(b.breach_id) for b in reference.breaches}
    assert sorted(published) == sorted(expected_changes | expected_breaches)
    assert sorted(ids(clickhouse, db, "changes", "change_id")) == sorted(expected_changes)
    assert sorted(ids(clickhouse, db, "budget_breaches", "breach_id")) == sorted(expected_breaches)


def late_copy(client, db: str, ts, response_model: str) -> tuple[tuple, float]:
    """Insert a new call like a stored priced one but at `ts` with `response_model`; its variance group and cost.
    (The copy is read in a subquery: in the outer SELECT the REPLACE aliases would shadow the columns.)"""
    source, tenant, feature, version, model, cost = client.query(
        f"SELECT toString(event_id), tenant, feature, prompt_version, model, toFloat64(cost_usd) FROM {db}.calls"
        " WHERE status = 'ok' AND cost_usd > 0 AND response_model != '' ORDER BY event_id LIMIT 1"
    ).result_rows[0]
    client.command(
        f"""INSERT INTO {db}.calls SELECT * REPLACE (generateUUIDv4() AS event_id, {{ts:DateTime64(3, 'UTC')}} AS ts,
                {{rm:String}} AS response_model)
            FROM (SELECT * FROM {db}.calls WHERE toString(event_id) = {{source:String}} LIMIT 1)""",
        parameters={"ts": ts, "rm": response_model, "source": source},
    )
    return (tenant, feature, version, model), cost


def stored_calls(client, db: str, window_start, group: tuple) -> int:
    rows = client.query(
        f"""SELECT calls FROM {db}.variance FINAL WHERE window_seconds = {WINDOW}
              AND window_start = {{w:DateTime64(3, 'UTC')}} AND tenant = {{t:String}} AND feature = {{f:String}}
              AND prompt_version = {{v:String}} AND model = {{m:String}}""",
        parameters={"w": window_start, "t": group[0], "f": group[1], "v": group[2], "m": group[3]},
    ).result_rows
    return rows[0][0] if rows else 0


def stored_spend(client, db: str, bucket, tenant: str) -> float:
    return client.query(
        f"SELECT toFloat64(sum(spend)) FROM {db}.insights_spend FINAL WHERE bucket = {{b:DateTime64(3, 'UTC')}}"
        " AND tenant = {t:String}",
        parameters={"b": bucket, "t": tenant},
    ).result_rows[0][0]


def test_a_call_within_the_lateness_margin_is_counted_and_one_beyond_it_is_not(clickhouse, anomalies, new_db):
    """After a run at t1, a call stamped 3 minutes before t1 arrives: the next run counts it in its window's
    variance and spend and reports the new response_model it carries. A call stamped 25 minutes before t1
    (beyond the 10-minute margin) is left out, as the margin promises."""
    db = copy_of(clickhouse, new_db, anomalies[0])
    t1 = DEFAULT_START + timedelta(hours=1, minutes=2)
    run_from_watermark(clickhouse, database=db, now=t1, budgets=BUDGETS)
    late_ts, lost_ts = t1 - timedelta(minutes=3), t1 - timedelta(minutes=25)
    late_window, lost_window = floor_time(late_ts, WINDOW), floor_time(lost_ts, WINDOW)

    group, cost = late_copy(clickhouse, db, late_ts, "late-model-2026")
    lost_group, _ = late_copy(clickhouse, db, lost_ts, "lost-model-2026")
    calls_before = stored_calls(clickhouse, db, late_window, group)
    lost_before = stored_calls(clickhouse, db, lost_window, lost_group)
    spend_before = stored_spend(clickhouse, db, late_window, group[0])

    result = run_from_watermark(clickhouse, database=db, now=t1 + timedelta(minutes=1), budgets=BUDGETS)
    assert stored_calls(clickhouse, db, late_window, group) == calls_before + 1
    assert stored_spend(clickhouse, db, late_window, group[0]) == pytest.approx(spend_before + cost)
    assert [c.to_value for c in result.changes if c.kind == "response_model"] == ["late-model-2026"]
    assert stored_calls(clickhouse, db, lost_window, lost_group) == lost_before
    assert "lost-model-2026" not in ids(clickhouse, db, "changes", "to_value")


def test_the_first_seen_state_stands_in_for_history_no_longer_scanned(clickhouse, anomalies, new_db):
    """After a run, delete every stored call: a call with a new response_model is still a change from the value
    the group had (only the state remembers it), and the run reads no more than its window of calls."""
    db = copy_of(clickhouse, new_db, anomalies[0])
    end = closing_time(clickhouse, database=db)
    run_from_watermark(clickhouse, database=db, now=end)
    tenant, feature, model, previous = clickhouse.query(
        f"SELECT tenant, feature, model, argMax(response_model, ts) FROM {db}.calls WHERE response_model != ''"
        " GROUP BY tenant, feature, model ORDER BY count() DESC LIMIT 1"
    ).result_rows[0]
    clickhouse.command(
        f"""INSERT INTO {db}.calls SELECT * REPLACE (generateUUIDv4() AS event_id, {{ts:DateTime64(3, 'UTC')}} AS ts,
                'swapped-model-2026' AS response_model)
            FROM (SELECT * FROM {db}.calls WHERE tenant = {{t:String}} AND feature = {{f:String}}
                  AND model = {{m:String}} AND response_model != '' LIMIT 1)""",
        parameters={"ts": end + timedelta(seconds=30), "t": tenant, "f": feature, "m": model},
    )
    clickhouse.command(
        f"ALTER TABLE {db}.calls DELETE WHERE ts < {{end:DateTime64(3, 'UTC')}} SETTINGS mutations_sync = 1",
        parameters={"end": end},
    )
    result = run_from_watermark(clickhouse, database=db, now=end + timedelta(minutes=1))
    assert [(c.key.tenant, c.key.feature, c.key.model, c.from_value, c.to_value) for c in result.changes] == [
        (tenant, feature, model, previous, "swapped-model-2026")
    ]
