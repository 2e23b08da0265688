"""Every read of `calls` or `events` with a time condition also names its hours, so the hour-led keys prune.

Migrations 0011 and 0012 key both tables by ``toStartOfHour(ts)`` first.

ClickHouse does not derive ``toStartOfHour(ts)`` bounds from a condition on ``ts``: a query that
filters ``ts`` alone reads every granule of every hour of the parts it touches. This asks
ClickHouse itself (``EXPLAIN indexes = 1``) which key columns each read of ``calls`` uses, for every
panel, variable and alert query at the default ranges and at 7 days: wherever ``ts`` is a key
condition, ``toStartOfHour(ts)`` must be one too. Dropping an hour condition anywhere turns it red.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.build import variable_query
from tokentrail.dashboards.catalog import DASHBOARDS
from tokentrail.dashboards.macros import TimeRange, expand_macros, render
from tokentrail.dashboards.queries import Selection, last, panel_sql
from tokentrail.sinks import apply, close_embedded, connect
from tokentrail.sinks.rollups import refresh
from tokentrail.stream.evidence.changes import changes_around
from tokentrail.stream.insights.jobs import run_insights
from tokentrail.stream.insights.spend import spend_from_calls

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    close_embedded()
    ch = connect(f"chdb://{tmp_path_factory.mktemp('hours')}")
    apply(ch, database="tokentrail")
    # Three days of calls, one a minute, in a few groups: every hour has rows, so every read has parts to analyse.
    ch.command(
        "INSERT INTO tokentrail.calls (event_id, ts, trace_id, tenant, service, feature, provider, model, latency_ms) "
        "SELECT generateUUIDv4(), now64(3) - toIntervalSecond(number * 60), toString(number % 50), "
        "['acme', 'globex'][number % 2 + 1], 'svc', ['chat', 'search', 'rank'][number % 3 + 1], 'openai', "
        "['gpt-4o', 'gpt-4o-mini'][number % 2 + 1], 100 FROM numbers(3 * 24 * 60)"
    )
    ch.command(
        "INSERT INTO tokentrail.events (event_id, type, ts, trace_id, tenant, service, feature, model) "
        "SELECT event_id, ['output', 'tool_call'][rand() % 2 + 1], ts, trace_id, tenant, service, feature, model "
        "FROM tokentrail.calls"
    )
    refresh(ch, database="tokentrail")  # a fresh watermark: the rollup branches and their range-end reads are live
    yield ch
    close_embedded()


def calls_reads(client, sql: str, parameters: dict | None = None) -> list[list[str]]:
    """Per read of `tokentrail.calls` or `tokentrail.events` in the plan: the primary-key columns its condition uses."""
    lines = [row[0] for row in client.query("EXPLAIN indexes = 1 " + sql, parameters=parameters).result_rows]
    reads: list[list[str]] = []
    keys: list[str] | None = None
    in_calls = in_primary = False
    for line in lines:
        text = line.strip(" │└─├")
        if "ReadFromMergeTree" in text:
            in_calls, in_primary = text.endswith(("(tokentrail.calls)", "(tokentrail.events)")), False
            keys = None
            if in_calls:
                reads.append([])
        elif in_calls and text == "PrimaryKey":
            in_primary = True
        elif in_calls and in_primary and text == "Keys:":
            keys = reads[-1]
        elif keys is not None and in_primary and re.fullmatch(r"[\w(), ]+", text) and ":" not in text:
            keys.append(text)
        elif text.startswith("Condition:"):
            keys, in_primary = None, False
    return reads


def queries(ranges: str) -> list[tuple[str, str]]:
    out = []
    for board in DASHBOARDS:
        span = timedelta(days=7) if ranges == "7d" else None
        if span is None:
            number, unit = int(board.time_from[4:-1]), board.time_from[-1]
            span = timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: number})
        time_range = last(span, NOW)
        for name in board.variables:
            out.append((f"{board.uid} / variable {name}", render(variable_query(name), time_range, 60_000)))
        for panel in board.panels:
            out.append((f"{board.uid} / {panel.title}", panel_sql(board, panel, Selection(time_range))))
    for rule in RULES:
        window = TimeRange(NOW - timedelta(seconds=rule.window_seconds), NOW)
        for ref, sql in (("A", rule.sql), *rule.extras):
            out.append((f"alert {rule.uid} [{ref}]", expand_macros(sql, window, rule.interval_ms)))
    return out


@pytest.mark.parametrize("ranges", ["default", "7d"])
def test_every_timed_read_of_calls_uses_the_hour_key(client, ranges):
    checked = 0
    for name, sql in queries(ranges):
        for keys in calls_reads(client, sql):
            if "ts" in keys:
                assert "toStartOfHour(ts)" in keys, f"{name}: reads calls by ts without its hours ({keys})"
                checked += 1
    assert checked >= 20  # the rollup panels' range ends and raw branches, the alerts, the variables


class Recording:
    """The real client, remembering every query (and its parameters) it was asked to run."""

    def __init__(self, real):
        self._real = real
        self.queries: list[tuple[str, dict | None]] = []

    def query(self, sql, parameters=None, **kwargs):
        self.queries.append((sql, parameters))
        return self._real.query(sql, parameters=parameters, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_the_insights_job_reads_calls_by_its_hours_too(client):
    """The store job (variance, changes, spend) reads one window of calls each run: by its hours (stream/insights)."""
    recording = Recording(client)
    run_insights(recording, database="tokentrail", now=NOW, since=NOW - timedelta(minutes=30), window_seconds=300)
    spend_from_calls(recording, "tokentrail", 3600, NOW - timedelta(hours=2), NOW)
    checked = 0
    for sql, parameters in recording.queries:
        if "tokentrail.calls" not in sql or not sql.lstrip().startswith(("SELECT", "WITH")):
            continue
        for keys in calls_reads(client, sql, parameters):
            if "ts" in keys:
                assert "toStartOfHour(ts)" in keys, f"reads calls by ts without its hours ({keys}): {sql[:300]}"
                checked += 1
    assert checked >= 4


def test_the_evidence_changes_read_calls_by_their_hours_too(client):
    """`tokentrail changes` / evidence: the provenance reads of calls (a day's lookback) by their hours."""
    recording = Recording(client)
    changes_around(recording, NOW - timedelta(hours=3), timedelta(minutes=30), database="tokentrail")
    checked = 0
    for sql, parameters in recording.queries:
        if "tokentrail.calls" not in sql:
            continue
        for keys in calls_reads(client, sql, parameters):
            assert "toStartOfHour(ts)" in keys, f"reads calls by ts without its hours ({keys}): {sql[:300]}"
            checked += 1
    assert checked == 2  # price table and redaction config


def test_the_check_sees_a_missing_hour_condition(client):
    """The parser above is not blind: a bare ts condition is reported without the hour column."""
    bare = "SELECT count() FROM tokentrail.calls FINAL WHERE ts >= now() - INTERVAL 2 HOUR"
    assert calls_reads(client, bare) == [["ts"]]
    hours = bare + " AND toStartOfHour(ts) >= toStartOfHour(now() - INTERVAL 2 HOUR)"
    assert calls_reads(client, hours) == [["toStartOfHour(ts)", "ts"]]
