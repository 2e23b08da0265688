"""Refresh the rollups from deduplicated rows: the 5- and 30-minute buckets the dashboards read at wide ranges.

Why the rollups are refreshed rather than fed by a materialized view, and why readers stay exact
whatever the refresh does, is in ``migrations/0008_rollups.sql`` (and 0010 for the 30-minute
levels and the latency histograms). In short: a view on ``calls`` marks each 5-minute bucket
that receives rows (``rollup_dirty``); :func:`refresh` recomputes the marked buckets of every
level of a rollup from ``calls FINAL`` (a 30-minute bucket when any of its 5-minute buckets is
marked) and then records when it started (``rollup_watermark``); a reader trusts a bucket only
if no mark for it is newer than that watermark minus :data:`MARGIN`.

Who calls it: whatever runs the store jobs, once a minute (the insights leader); or
``benchmarks/dashboards.py`` after seeding. Concurrent refreshes of the bucketed rollups are safe
(both compute the same rows from the same data; the newer computation wins), merely wasteful; the
trace totals (:func:`refresh_trace_totals`) want one refresh at a time (see there).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from .cluster import local_name
from .identifiers import check_identifier

__all__ = [
    "refresh",
    "refresh_one",
    "refresh_trace_totals",
    "TRACE_TOTALS",
    "Rollup",
    "Level",
    "ROLLUPS",
    "ROLLUP_BY_TABLE",
    "bucket_sql",
    "hours_sql",
    "HOUR_KEYED",
    "outside_hours_sql",
    "histogram_sql",
    "HISTOGRAM_BASE",
    "RefreshResult",
    "BUCKET_SECONDS",
    "MARGIN_SECONDS",
    "MAX_AGE_SECONDS",
]

log = logging.getLogger(__name__)

BUCKET_SECONDS = 300
# A mark is written (its marked_at taken) a little before its part is visible: a refresh that
# read marks up to T may have missed marks stamped just before T. Readers therefore distrust
# marks newer than watermark - MARGIN, and every refresh re-reads marks from there.
MARGIN_SECONDS = 300
# rollup_dirty keeps 3 days of marks (0008's retention); a watermark older than this cannot be
# trusted to have seen every mark since, so readers ignore the rollup and refresh rebuilds it.
MAX_AGE_SECONDS = 2 * 86_400
_BUCKETS_PER_INSERT = 2_000  # one INSERT ... SELECT per this many buckets: bounded memory and query size
# Marked buckets further apart than this are recomputed by separate inserts (see _runs).
_RUN_GAP_SECONDS = 3_600


# Latency histograms (migration 0010): bin b >= 1 holds (BASE^(b-1), BASE^b] ms, bin 0 up to 1 ms.
HISTOGRAM_BASE = 1.05


def bucket_sql(seconds: int, column: str = "ts") -> str:
    """The start of the `seconds`-long bucket holding `column`, as a DateTime (what a rollup's `bucket` holds)."""
    if seconds == BUCKET_SECONDS:
        return f"toStartOfFiveMinutes({column})"  # what the marking views of 0008 use
    return f"toDateTime(toStartOfInterval({column}, INTERVAL {seconds} SECOND))"


# Tables keyed by the hour of ts first (migrations 0011, 0012): a reader names the hours (hours_sql).
HOUR_KEYED = frozenset({"calls", "events"})


def hours_sql(lo: str, hi: str, column: str = "ts") -> str:
    """The hours of `calls` rows with `lo` <= `column` <= `hi` (or < `hi`): the condition the primary key
    of `calls` prunes on (it leads with ``toStartOfHour(ts)`` since migration 0011).

    Write it next to every time condition on `calls`: ClickHouse does not derive it from a
    condition on `ts` alone, and without it the hour-led key reads every granule of every hour.
    """
    return f"toStartOfHour({column}) >= toStartOfHour({lo}) AND toStartOfHour({column}) <= toStartOfHour({hi})"


def outside_hours_sql(lo: str, hi: str, column: str = "ts") -> str:
    """:func:`hours_sql` for rows with `column` < `lo` or >= `hi` (the partial buckets at both ends of a range)."""
    return f"(toStartOfHour({column}) <= toStartOfHour({lo}) OR toStartOfHour({column}) >= toStartOfHour({hi}))"


def histogram_sql(value: str, *, nullable: bool) -> str:
    """Aggregate: the count of calls per bin of `value` (ms) as a Map(UInt16, UInt64); NULL values are left out."""
    plain = f"assumeNotNull({value})" if nullable else f"toFloat64({value})"
    bin_ = f"toUInt16(if({plain} <= 1, 0, ceil(log({plain}) / log({HISTOGRAM_BASE}))))"
    if nullable:
        return f"sumMapIf(map({bin_}, toUInt64(1)), {value} IS NOT NULL)"
    return f"sumMap(map({bin_}, toUInt64(1)))"


@dataclass(frozen=True)
class Level:
    """One table of a rollup: its buckets are `seconds` long; `aggregates` / `columns` it alone holds."""

    table: str
    seconds: int
    aggregates: str = ""
    columns: str = ""


@dataclass(frozen=True)
class Rollup:
    """One rollup: the table it summarises (read FINAL), its dimensions, what one bucket's row holds, and its levels.

    Every level is recomputed by the same refresh under one watermark, named after the level
    tables (so adding a level makes the next refresh a full build). `marks` is the name the
    source's marking view writes into rollup_dirty (5-minute buckets, whatever the levels).
    """

    marks: str
    source: str
    dimensions: str
    aggregates: str
    columns: str
    levels: tuple[Level, ...]
    # Watermark names readers of an earlier release look up (one per table then): recorded too,
    # so dashboards provisioned by that release stay exact until they are replaced.
    legacy_names: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The watermark's name."""
        return "+".join(level.table for level in self.levels)


ROLLUPS = (
    Rollup(
        "calls_rollup",
        "calls",
        "tenant, service, feature, provider, model, priced, status, finish_reason, error_type",
        """count() AS calls, sum(cost_usd) AS cost_usd, sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens, sum(output_tokens) AS output_tokens, max(ts) AS last_ts""",
        "calls, cost_usd, input_tokens, cached_input_tokens, output_tokens, last_ts",
        (
            # Reservoir states no dashboard reads since 0010 (latency_rollup has histograms): still
            # written so dashboards provisioned by the previous release stay right during an upgrade.
            Level(
                "calls_rollup",
                BUCKET_SECONDS,
                "quantilesState(0.5, 0.95, 0.99)(latency_ms) AS latency, quantilesState(0.5, 0.95)(ttft_ms) AS ttft",
                "latency, ttft",
            ),
            Level("calls_rollup_30m", 1800),
        ),
        ("calls_rollup",),
    ),
    Rollup(
        "calls_rollup",
        "calls",
        "tenant, service, feature, model",
        f"""count() AS calls, countIf(status = 'error') AS errors,
    {histogram_sql("latency_ms", nullable=True)} AS latency, {histogram_sql("ttft_ms", nullable=True)} AS ttft,
    {histogram_sql("dateDiff('millisecond', ts, received_at)", nullable=False)} AS lag""",
        "calls, errors, latency, ttft, lag",
        (Level("latency_rollup", BUCKET_SECONDS), Level("latency_rollup_30m", 1800)),
    ),
    Rollup(
        "calls_rollup",
        "calls",
        "tenant, service, feature, model, trace_id",
        """cityHash64(trace_id, tenant, feature) AS trace_key, count() AS calls, sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd, min(ts) AS started, max(ts) AS ended""",
        "trace_key, calls, input_tokens, output_tokens, cost_usd, started, ended",
        (Level("trace_rollup", BUCKET_SECONDS), Level("trace_rollup_30m", 1800)),
    ),
    Rollup(
        "events_rollup",
        "events",
        "tenant, service, feature, model, type",
        "count() AS events",
        "events",
        (Level("events_rollup", BUCKET_SECONDS), Level("events_rollup_30m", 1800)),
        ("events_rollup",),
    ),
)
# Level table -> (its rollup, its level).
ROLLUP_BY_TABLE = {level.table: (rollup, level) for rollup in ROLLUPS for level in rollup.levels}


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh of one rollup did: buckets recomputed, the watermark it recorded, seconds taken."""

    rollup: str
    buckets: int
    watermark: datetime
    seconds: float
    full: bool


def refresh(client: Client, *, database: str = "tokentrail") -> list[RefreshResult]:
    """Refresh every rollup (see :func:`refresh_one`), then the trace totals (:func:`refresh_trace_totals`)."""
    done = [refresh_one(client, rollup, database=database) for rollup in ROLLUPS]
    return [*done, refresh_trace_totals(client, database=database)]


def refresh_one(client: Client, rollup: Rollup, *, database: str = "tokentrail") -> RefreshResult:
    """Recompute every bucket marked since the last watermark (minus the margin); then advance it.

    A first run, or one after more than ``MAX_AGE_SECONDS`` without a refresh, recomputes every
    bucket the source holds. Store errors propagate: the watermark advances only after every
    bucket was written, so a failed refresh is simply done again by the next one.
    """
    check_identifier(database, "database")
    started = time.perf_counter()
    now, watermark, refreshes = client.query(
        f"SELECT now64(3), max(refreshed_before), count() FROM {database}.rollup_watermark WHERE name = {{n:String}}",
        parameters={"n": rollup.name},
    ).result_rows[0]
    full = not refreshes or (now - watermark).total_seconds() > MAX_AGE_SECONDS
    if full:
        buckets_sql = f"SELECT DISTINCT {bucket_sql(BUCKET_SECONDS)} FROM {database}.{rollup.source}"
    else:
        buckets_sql = (
            f"SELECT DISTINCT bucket FROM {database}.rollup_dirty WHERE rollup = {{marks:String}} "
            f"AND marked_at > {{since:DateTime64(3)}} - INTERVAL {MARGIN_SECONDS} SECOND"
        )
    parameters = {"since": watermark, "marks": rollup.marks}
    buckets = sorted(row[0] for row in client.query(buckets_sql, parameters=parameters).result_rows)
    distributed = _is_distributed(client, database, rollup.levels[0].table)
    for level in rollup.levels:
        for run in _runs(sorted({_floor(bucket, level.seconds) for bucket in buckets})):
            _recompute(client, database, rollup, level, run, now, distributed)
    client.insert(
        f"{database}.rollup_watermark",
        [[name, now, len(buckets)] for name in (rollup.name, *rollup.legacy_names)],
        column_names=["name", "refreshed_before", "buckets"],
        settings=_FOREGROUND if distributed else None,
    )
    result = RefreshResult(rollup.name, len(buckets), now, time.perf_counter() - started, full)
    log.info(
        "rollup %s: %d bucket(s) in %.2fs%s", rollup.name, result.buckets, result.seconds, " (full)" if full else ""
    )
    return result


def _floor(bucket: datetime, seconds: int) -> datetime:
    """The start of the `seconds`-long bucket holding `bucket` (`seconds` divides a day, as in bucket_sql)."""
    into_day = bucket.hour * 3600 + bucket.minute * 60 + bucket.second
    return bucket - timedelta(seconds=into_day % seconds, microseconds=bucket.microsecond)


def _runs(buckets: list[datetime]) -> list[list[datetime]]:
    """Sorted ``buckets`` cut where they are more than :data:`_RUN_GAP_SECONDS` apart, and every
    :data:`_BUCKETS_PER_INSERT`: each run is one INSERT ... SELECT reading only its own time range
    (a straggler marking a bucket days ago must not make the refresh read every day since)."""
    runs: list[list[datetime]] = []
    for bucket in buckets:
        if runs and len(runs[-1]) < _BUCKETS_PER_INSERT and (bucket - runs[-1][-1]).total_seconds() <= _RUN_GAP_SECONDS:
            runs[-1].append(bucket)
        else:
            runs.append([bucket])
    return runs


# On a cluster the writes go through Distributed tables and must be on their shards when refresh returns.
_FOREGROUND = {"distributed_foreground_insert": 1}


def _recompute(
    client: Client,
    database: str,
    rollup: Rollup,
    level: Level,
    buckets: list[datetime],
    now: datetime,
    distributed: bool,
) -> None:
    """Write the rows of ``buckets`` of one level from the source read with FINAL (deduplicated).

    Every row of one refresh carries ``computed_at`` = that refresh's watermark, so a reader can
    take, per bucket, the newest computation no newer than the watermark, without FINAL.
    """
    # The range bound lets partition pruning and the minmax index skip months; IN picks the buckets.
    bucket = bucket_sql(level.seconds)
    hours = ""
    if rollup.source in HOUR_KEYED:  # keyed by the hour first (0011, 0012)
        hours = "\n  AND " + hours_sql("{lo:DateTime}", f"{{hi:DateTime}} + INTERVAL {level.seconds} SECOND")
    columns = f"{rollup.columns}, {level.columns}" if level.columns else rollup.columns
    aggregates = f"{rollup.aggregates}, {level.aggregates}" if level.aggregates else rollup.aggregates
    client.command(
        f"""INSERT INTO {database}.{level.table} (bucket, {rollup.dimensions}, {columns}, computed_at)
SELECT {bucket} AS bucket, {rollup.dimensions}, {aggregates}, {{now:DateTime64(3)}}
FROM {database}.{rollup.source} FINAL
WHERE ts >= {{lo:DateTime}} AND ts < {{hi:DateTime}} + INTERVAL {level.seconds} SECOND{hours}
  AND {bucket} IN {{buckets:Array(DateTime)}}
GROUP BY bucket, {rollup.dimensions}""",
        parameters={"lo": buckets[0], "hi": buckets[-1], "buckets": buckets, "now": now},
        settings=_FOREGROUND if distributed else None,
    )


def _is_distributed(client: Client, database: str, table: str) -> bool:
    engine = client.query(
        "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return bool(engine) and engine[0][0] == "Distributed"


# Whole-trace totals (migration 0013): the table, and the name its watermark is recorded under.
TRACE_TOTALS = "trace_totals"
_TOTALS_FULL_PARTS = 4  # a full build groups the traces of calls in this many slices (bounded memory)
_TRACES_PER_INSERT = 20_000  # traces recomputed (and their old rows deleted) per statement
# The traces named by the parameters `ids` (trace ids: the bloom filter index) and `keys` (tenant, feature, trace id).
_THOSE_TRACES = (
    "trace_id IN {ids:Array(String)} AND (tenant, feature, trace_id) IN {keys:Array(Tuple(String, String, String))}"
)


def refresh_trace_totals(client: Client, *, database: str = "tokentrail") -> RefreshResult:
    """Recompute the totals of every trace with a call in a bucket marked for its tenant since the last
    watermark (minus the margin); delete their previous rows; then advance the watermark.

    A trace is recomputed whole from ``calls FINAL`` (its previous rows give the hours to read,
    with the marked buckets). The reader (dashboards/dash_spend.py) reads the traces of buckets
    marked since its watermark from ``calls FINAL`` and only rows computed no later than it from
    here, so it never sees a trace twice or a stale one: before this refresh records its watermark,
    every trace it touched is one of those. A first run, or one after ``MAX_AGE_SECONDS``, rebuilds
    every trace and deletes every older row. Two overlapping refreshes could each keep their rows of
    a trace (each deletes only rows older than itself) until a merge collapses them: run one at a
    time, as the insights leader does. ``buckets`` in the result: the marked buckets (a full
    build: the 5-minute buckets of ``calls``).
    """
    check_identifier(database, "database")
    started = time.perf_counter()
    now, watermark, refreshes = client.query(
        f"SELECT now64(3), max(refreshed_before), count() FROM {database}.rollup_watermark WHERE name = {{n:String}}",
        parameters={"n": TRACE_TOTALS},
    ).result_rows[0]
    full = not refreshes or (now - watermark).total_seconds() > MAX_AGE_SECONDS
    distributed = _is_distributed(client, database, TRACE_TOTALS)
    if full:
        for part in range(_TOTALS_FULL_PARTS):
            _insert_totals(client, database, now, distributed, f"cityHash64(trace_id) % {_TOTALS_FULL_PARTS} = {part}")
        _delete_totals(client, database, now, distributed, None)
        all_buckets = f"SELECT uniqExact({bucket_sql(BUCKET_SECONDS)}) FROM {database}.calls"
        buckets = client.query(all_buckets).result_rows[0][0]
    else:
        marks = client.query(
            f"SELECT DISTINCT tenant, bucket FROM {database}.rollup_dirty WHERE rollup = {{marks:String}} "
            f"AND marked_at > {{since:DateTime64(3)}} - INTERVAL {MARGIN_SECONDS} SECOND",
            parameters={"since": watermark, "marks": ROLLUPS[0].marks},
        ).result_rows
        buckets = len({bucket for _, bucket in marks})
        for run in _runs(sorted({bucket for _, bucket in marks})):
            run_marks = [(tenant, bucket) for tenant, bucket in marks if run[0] <= bucket <= run[-1]]
            _refresh_traces_of(client, database, run, run_marks, now, distributed)
    client.insert(
        f"{database}.rollup_watermark",
        [[TRACE_TOTALS, now, buckets]],
        column_names=["name", "refreshed_before", "buckets"],
        settings=_FOREGROUND if distributed else None,
    )
    result = RefreshResult(TRACE_TOTALS, buckets, now, time.perf_counter() - started, full)
    log.info("rollup %s: %d bucket(s) in %.2fs%s", TRACE_TOTALS, buckets, result.seconds, " (full)" if full else "")
    return result


def _refresh_traces_of(
    client: Client,
    database: str,
    run: list[datetime],
    marks: list[tuple[str, datetime]],
    now: datetime,
    distributed: bool,
) -> None:
    """Recompute the traces with a call in the marked (tenant, bucket)s of one run of buckets."""
    hi = run[-1] + timedelta(seconds=BUCKET_SECONDS)
    # Without FINAL: any copy of a call names its trace.
    keys = client.query(
        f"""SELECT DISTINCT tenant, feature, trace_id FROM {database}.calls
WHERE ts >= {{lo:DateTime}} AND ts < {{hi:DateTime}} AND {hours_sql("{lo:DateTime}", "{hi:DateTime}")}
  AND (tenant, {bucket_sql(BUCKET_SECONDS)}) IN {{marks:Array(Tuple(String, DateTime))}}""",
        parameters={"lo": run[0], "hi": hi, "marks": marks},
    ).result_rows
    for first in range(0, len(keys), _TRACES_PER_INSERT):
        chunk = [tuple(key) for key in keys[first : first + _TRACES_PER_INSERT]]
        parameters = {"keys": chunk, "ids": sorted({key[2] for key in chunk})}
        # The hours to read: the marked buckets, and wherever the traces' calls were at their last refresh.
        old_lo, old_hi = client.query(
            f"SELECT minOrNull(started), maxOrNull(ended) FROM {database}.{TRACE_TOTALS} WHERE {_THOSE_TRACES}",
            parameters=parameters,
        ).result_rows[0]
        lo_ts = min(run[0], old_lo.replace(tzinfo=None)) if old_lo else run[0]
        hi_ts = max(hi, old_hi.replace(tzinfo=None)) if old_hi else hi
        lo_ts, hi_ts = lo_ts.replace(microsecond=0), hi_ts.replace(microsecond=0) + timedelta(seconds=1)
        where = (
            f"ts >= {{lo:DateTime}} AND ts < {{hi:DateTime}} AND {hours_sql('{lo:DateTime}', '{hi:DateTime}')}"
            f" AND {_THOSE_TRACES}"
        )
        _insert_totals(client, database, now, distributed, where, {**parameters, "lo": lo_ts, "hi": hi_ts})
        _delete_totals(client, database, now, distributed, parameters)


def _insert_totals(
    client: Client,
    database: str,
    now: datetime,
    distributed: bool,
    where: str,
    parameters: dict[str, Any] | None = None,
) -> None:
    """Write the totals of the traces of ``calls FINAL`` rows meeting `where`, computed at `now`."""
    client.command(
        f"""INSERT INTO {database}.{TRACE_TOTALS} (tenant, feature, trace_id, trace_key, service, model, combos, calls,
    input_tokens, output_tokens, cost_usd, started, ended, computed_at)
SELECT tenant, feature, trace_id, cityHash64(tenant, feature, trace_id), service, model,
    toUInt16(count() OVER (PARTITION BY tenant, feature, trace_id)),
    calls, input_tokens, output_tokens, cost_usd, started, ended, {{now:DateTime64(3)}}
FROM (
    SELECT tenant, feature, trace_id, service, model, count() AS calls, sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd, min(ts) AS started, max(ts) AS ended
    FROM {database}.calls FINAL
    WHERE {where}
    GROUP BY tenant, feature, trace_id, service, model
)""",
        parameters={**(parameters or {}), "now": now},
        settings=_FOREGROUND if distributed else None,
    )


def _delete_totals(
    client: Client, database: str, now: datetime, distributed: bool, parameters: dict[str, Any] | None
) -> None:
    """Delete the rows computed before `now` (of the traces `parameters` names; all of them without)."""
    target = f"{database}.{TRACE_TOTALS}"
    if distributed:  # lightweight deletes act on the local tables, on every replica of every shard
        target = f"{database}.{local_name(TRACE_TOTALS)} ON CLUSTER {_cluster_of(client, database, TRACE_TOTALS)}"
    traces = "" if parameters is None else f" AND {_THOSE_TRACES}"
    client.command(
        f"DELETE FROM {target} WHERE computed_at < {{now:DateTime64(3)}}{traces}",
        parameters={**(parameters or {}), "now": now},
        settings={"lightweight_deletes_sync": 2},
    )


def _cluster_of(client: Client, database: str, table: str) -> str:
    """The cluster a Distributed table spreads over (its engine's first argument)."""
    engine = client.query(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows[0][0]
    match = re.match(r"Distributed\('?([^',)]+)'?", engine)
    if not match:
        raise RuntimeError(f"{database}.{table}: not a Distributed table ({engine})")
    return check_identifier(match.group(1), "cluster")
