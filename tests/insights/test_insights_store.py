"""The insight job against embedded ClickHouse, on generator traffic replayed through the real pipeline.

The generator's ground truth says what must be found: the silent response_model swap, the
system-prompt edit without a version bump (and the announced bump, recorded as such), the
spend spike. Clean traffic must give no change at all. Running the job again stores nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tokentrail.collectors.events import OutputEvent, decode_event
from tokentrail.stream.insights import BudgetConfig, CallSample, closing_time, run_insights, variance_stats
from tokentrail.stream.insights.jobs import VARIANCE_KEY, VARIANCE_METRICS
from tokentrail.stream.insights.report import change_entries, variance_entries
from tokentrail.stream.pricing import PriceBook
from tokentrail.stream.synthetic import DEFAULT_START, GeneratorConfig

WINDOW = 300
TABLES = ("variance", "changes", "budget_breaches")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def anomalies(replayed):
    """Three hours of traffic with every scenario: the spike sits in the third hour."""
    return replayed(GeneratorConfig(seed=11, events=6_000, duration=timedelta(hours=3)))


@pytest.fixture(scope="module")
def clean(replayed):
    return replayed(GeneratorConfig(seed=12, events=3_000, with_anomalies=False))


def rolling_hour_spend(lines: list[str], start: datetime, hours: int) -> dict[str, list[tuple[datetime, Decimal]]]:
    """Ground truth from the wire lines, not the store: each tenant's spend in the hour ending at every 5-minute
    mark."""
    book, seen, costs = PriceBook(), set(), defaultdict(list)
    for line in lines:
        event = decode_event(line)
        if isinstance(event, OutputEvent) and event.event_id not in seen:
            seen.add(event.event_id)
            u = event.usage
            costs[event.tenant].append(
                (
                    event.ts,
                    book.price(
                        event.provider, event.model, u.input_tokens, u.cached_input_tokens, u.output_tokens, event.ts
                    ).cost_usd,
                )
            )
    ends = [start + timedelta(minutes=5 * k) for k in range(1, hours * 12 + 2)]
    return {
        tenant: [(end, sum((c for ts, c in items if end - timedelta(hours=1) <= ts < end), Decimal(0))) for end in ends]
        for tenant, items in costs.items()
    }


def spike_budget(traffic) -> tuple[BudgetConfig, str, datetime, datetime]:
    """An hourly tenant budget whose warning sits between every tenant's normal spend and the spiked spend."""
    spike = traffic.truth.spend_spike
    start, end = when(spike["start"]), when(spike["end"])
    rolling = rolling_hour_spend(traffic.lines, DEFAULT_START, 3)
    spiked = max(s for _, s in rolling[spike["tenant"]])
    normal = max(
        max(s for e, s in series if e <= start or tenant != spike["tenant"]) for tenant, series in rolling.items()
    )
    assert spiked > Decimal("1.5") * normal, "the generated spike must stand out for this test to mean anything"
    warning = (normal + spiked) / 2
    rules = [
        {"scope": "tenant", "key": "*", "window": "hour", "warning": str(warning), "critical": str(spiked * 2)},
        {"scope": "tenant", "key": "*", "window": "day", "critical": str(spiked * 10)},
    ]
    return BudgetConfig.from_dict({"budgets": rules}), spike["tenant"], start, end


def copy_of(client, new_db, db: str) -> str:
    """A fresh database holding the same calls, so a test sees an empty insight history whatever ran before."""
    copy = new_db()
    client.command(f"INSERT INTO {copy}.calls SELECT * FROM {db}.calls")
    return copy


def counts(client, db: str) -> dict[str, int]:
    return {t: client.query(f"SELECT count() FROM {db}.{t}").result_rows[0][0] for t in TABLES}


def test_swap_and_prompt_edit_are_found_exactly_and_the_spike_breaches(clickhouse, anomalies, new_db):
    """One response_model change (from/to as injected), one system_prompt change, one announced prompt_version
    change; the spike tenant breaches."""
    db, traffic = anomalies
    db = copy_of(clickhouse, new_db, db)
    budgets, spike_tenant, spike_start, spike_end = spike_budget(traffic)
    now = closing_time(clickhouse, database=db, window_seconds=WINDOW)
    result = run_insights(clickhouse, database=db, now=now, budgets=budgets, window_seconds=WINDOW)

    by_kind = defaultdict(list)
    for change in result.changes:
        by_kind[change.kind].append(change)
    assert {k: len(v) for k, v in by_kind.items()} == {"response_model": 1, "system_prompt": 1, "prompt_version": 1}

    swap, truth = by_kind["response_model"][0], traffic.truth.model_swap
    assert (swap.key.tenant, swap.key.feature, swap.key.model) == (truth["tenant"], truth["feature"], truth["model"])
    assert (swap.from_value, swap.to_value) == (truth["from"], truth["to"])
    assert when(truth["ts"]) <= swap.first_seen < when(truth["ts"]) + timedelta(minutes=5)

    edit, truth = by_kind["system_prompt"][0], traffic.truth.prompt_change
    assert (edit.key.feature, edit.key.prompt_id, edit.key.prompt_version) == (
        truth["feature"],
        truth["prompt_id"],
        truth["prompt_version"],
    )
    assert edit.from_value != edit.to_value and edit.silent
    assert when(truth["ts"]) <= edit.first_seen < when(truth["ts"]) + timedelta(minutes=5)
    stored_hashes = clickhouse.query(
        f"SELECT groupUniqArray(system_prompt_hash) FROM {db}.calls"
        " WHERE feature = %(f)s AND prompt_version = %(v)s AND system_prompt_hash != ''",
        parameters={"f": truth["feature"], "v": truth["prompt_version"]},
    ).result_rows[0][0]
    assert sorted(stored_hashes) == sorted([edit.from_value, edit.to_value])

    bump, truth = by_kind["prompt_version"][0], traffic.truth.prompt_bump
    assert (bump.key.feature, bump.from_value, bump.to_value, bump.silent) == (
        truth["feature"],
        truth["from_version"],
        truth["to_version"],
        False,
    )

    assert result.breaches, "the spike must breach the hourly budget"
    assert {(b.scope, b.key, b.window, b.level) for b in result.breaches} == {
        ("tenant", spike_tenant, "hour", "warning")
    }
    (breach,) = result.breaches
    assert spike_start < breach.window_end <= spike_end + timedelta(hours=1)
    assert breach.spend >= breach.threshold

    alerts = result.alerts()
    assert [a["type"] for a in alerts] == ["change"] * 3 + ["budget_breach"]
    assert counts(clickhouse, db)["changes"] == 3 and counts(clickhouse, db)["budget_breaches"] == 1


def test_running_the_job_again_stores_and_reports_nothing_new(clickhouse, anomalies):
    """Same store, same now: no new changes or breaches, no rows inserted, table counts unchanged (no FINAL)."""
    db, traffic = anomalies
    budgets = spike_budget(traffic)[0]
    now = closing_time(clickhouse, database=db, window_seconds=WINDOW)
    run_insights(clickhouse, database=db, now=now, budgets=budgets, window_seconds=WINDOW)
    before = counts(clickhouse, db)
    again = run_insights(clickhouse, database=db, now=now, budgets=budgets, window_seconds=WINDOW)
    assert again.changes == [] and again.breaches == []
    assert again.written == {"variance": 0, "changes": 0, "insights_first_seen": 0, "budget_breaches": 0}
    assert counts(clickhouse, db) == before and before["variance"] == len(again.variance_rows) > 0


def test_clean_traffic_has_no_changes_and_no_breaches(clickhouse, clean, new_db):
    """Ordinary traffic without injected anomalies: zero changes of any kind, and no breach of a budget above its
    spend."""
    db = copy_of(clickhouse, new_db, clean[0])
    budgets = BudgetConfig.from_dict({"budgets": [{"scope": "tenant", "key": "*", "window": "hour", "warning": 1000}]})
    result = run_insights(clickhouse, database=db, now=closing_time(clickhouse, database=db), budgets=budgets)
    assert result.changes == [] and result.breaches == []
    assert change_entries(clickhouse, db) == []
    assert result.variance_rows


def test_only_closed_windows_are_computed_and_since_makes_runs_incremental(clickhouse, clean, new_db):
    """Run at mid-traffic, then again from a little before there: the stored variance equals one run over everything."""
    db, _ = clean
    end = closing_time(clickhouse, database=db, window_seconds=WINDOW)
    whole = run_insights(clickhouse, database=db, now=end, window_seconds=WINDOW).variance_rows
    copy = copy_of(clickhouse, new_db, db)
    mid = end - timedelta(minutes=30, seconds=17)
    early = run_insights(clickhouse, database=copy, now=mid, window_seconds=WINDOW)
    assert early.variance_rows and all(
        r["window_start"] + timedelta(seconds=WINDOW) <= mid for r in early.variance_rows
    )
    late = run_insights(clickhouse, database=copy, now=end, since=mid - timedelta(minutes=10), window_seconds=WINDOW)
    assert late.variance_rows and min(r["window_start"] for r in late.variance_rows) >= mid - timedelta(minutes=15)
    assert len(early.variance_rows) + late.written["variance"] >= len(whole) > len(early.variance_rows)
    columns = ", ".join(VARIANCE_KEY + VARIANCE_METRICS)
    stored = clickhouse.query(
        f"SELECT {columns} FROM {copy}.variance FINAL ORDER BY {', '.join(VARIANCE_KEY)}"
    ).result_rows
    assert [(r[0].replace(tzinfo=None), *r[1:]) for r in stored] == [
        (r["window_start"].replace(tzinfo=None), *(r[k] for k in VARIANCE_KEY[1:] + VARIANCE_METRICS)) for r in whole
    ]


def test_sql_aggregates_equal_the_pure_function_on_the_same_calls(clickhouse, anomalies):
    """For busy group-windows, the stored row equals variance_stats over the same calls read back in Python."""
    db, _ = anomalies
    now = closing_time(clickhouse, database=db, window_seconds=WINDOW)
    rows = run_insights(clickhouse, database=db, now=now, window_seconds=WINDOW).variance_rows
    busiest = sorted(rows, key=lambda r: -r["calls"])[:3] + [r for r in rows if r["calls"] == 1][:1]
    for row in busiest:
        calls = clickhouse.query(
            f"""SELECT toString(event_id), output_tokens, latency_ms, output_hash, output_text, tool_names
                FROM {db}.calls FINAL
                WHERE status = 'ok' AND tenant = %(tenant)s AND feature = %(feature)s
                  AND prompt_version = %(prompt_version)s
                  AND model = %(model)s AND toStartOfInterval(ts, INTERVAL {WINDOW} SECOND) = %(w)s""",
            parameters={
                **{k: row[k] for k in ("tenant", "feature", "prompt_version", "model")},
                "w": row["window_start"],
            },
        ).result_rows
        samples = [CallSample(e, t, lat, h, text, tuple(tools)) for e, t, lat, h, text, tools in calls]
        expected = variance_stats(samples)
        assert {k: row[k] for k in expected} == pytest.approx(expected)


def test_report_lists_come_from_the_store(clickhouse, anomalies):
    """`changes` entries carry the contract fields; `variance` has one entry per group with the contract fields,
    stable across calls."""
    db, traffic = anomalies
    run_insights(clickhouse, database=db, now=closing_time(clickhouse, database=db))
    changes = change_entries(clickhouse, db)
    assert [c["kind"] for c in changes] == [
        "system_prompt",
        "prompt_version",
        "response_model",
    ]  # first-seen order, as injected
    swap = changes[-1]
    assert {k: swap[k] for k in ("tenant", "feature", "model", "from", "to")} == {
        k: traffic.truth.model_swap[k] for k in ("tenant", "feature", "model", "from", "to")
    }
    assert set(swap) >= {"kind", "tenant", "feature", "model", "prompt_id", "prompt_version", "from", "to", "ts"}
    variance = variance_entries(clickhouse, db)
    contract = {
        "tenant",
        "feature",
        "prompt_version",
        "model",
        "calls",
        "distinct_output_ratio",
        "similarity",
        "output_tokens_cv",
    }
    assert variance and all(set(v) >= contract for v in variance)
    groups = [(v["tenant"], v["feature"], v["prompt_version"], v["model"]) for v in variance]
    assert len(groups) == len(set(groups)) and groups == sorted(groups)
    total = clickhouse.query(f"SELECT count() FROM {db}.calls FINAL WHERE status = 'ok'").result_rows[0][0]
    assert sum(v["calls"] for v in variance) == total
    assert variance_entries(clickhouse, db) == variance


def test_an_empty_store_is_no_error(clickhouse, new_db, tmp_path):
    """No calls yet: nothing computed, nothing written, and a budget file is read and applied."""
    db = new_db()
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {scope: feature, key: '*', window: day, warning: 1}\n")
    assert closing_time(clickhouse, database=db) is None
    result = run_insights(clickhouse, database=db, budgets=budgets)
    assert (result.variance_rows, result.changes, result.breaches, result.alerts()) == ([], [], [], [])
    assert counts(clickhouse, db) == dict.fromkeys(TABLES, 0)
    assert variance_entries(clickhouse, db) == [] and change_entries(clickhouse, db) == []


def test_alerts_are_published_before_storing_so_a_failed_publish_is_retried(clickhouse, anomalies, new_db):
    """publish raising leaves the changes unstored; the next run publishes them again, then stores them; a third
    run publishes nothing."""
    db = copy_of(clickhouse, new_db, anomalies[0])
    now = closing_time(clickhouse, database=db)
    sent: list[dict] = []

    def broken(alerts):
        raise ConnectionError("alerts topic unreachable")

    with pytest.raises(ConnectionError):
        run_insights(clickhouse, database=db, now=now, publish=broken)
    assert counts(clickhouse, db)["changes"] == 0
    run_insights(clickhouse, database=db, now=now, publish=sent.extend)
    assert sorted(a["kind"] for a in sent) == ["prompt_version", "response_model", "system_prompt"]
    assert counts(clickhouse, db)["changes"] == 3
    run_insights(clickhouse, database=db, now=now, publish=sent.extend)
    assert len(sent) == 3
