"""Panel SQL that reads the 30- and 5-minute rollups where they are exact and `calls FINAL` elsewhere.

The rollups (sinks/migrations/0008_rollups.sql and 0010_rollup_levels.sql, refreshed by
tokentrail.sinks.rollups) hold per-bucket sums computed from deduplicated rows. A panel built with
:func:`rollup_source` reads the union of branches that partition the rows in its range, so every
count, sum and histogram equals what the same query over `calls FINAL` gives:

- the 30-minute level, for the buckets that are (a) entirely inside the range, (b) not marked for
  that tenant in `rollup_dirty` (any of their 5-minute buckets) since the last refresh (minus the
  margin), when (c) the rollup was refreshed in the last 2 days, (d) the range is at least
  :data:`RAW_BELOW_SECONDS` (12 h) long and (e) for time series, the panel's interval is a
  multiple of 30 minutes (7 days asks for 30 minutes);
- the 5-minute level, for the clean whole 5-minute buckets the 30-minute level did not serve:
  outside its whole buckets, inside a marked 30-minute bucket, or all of them when (e) fails
  with an interval that is a multiple of 5 minutes (24 hours asks for 5 minutes);
- `FINAL` rows for every other row in range: the partial buckets at both ends, the marked
  ones, or all of them when the rollup may not be used (the default ranges of 1-6 h: shorter
  than 12 h, and they ask for 1 minute).

(c)-(e) are constants once Grafana has expanded its macros (the watermark is one scalar per
branch), so a branch that cannot contribute folds away with the sets it would read; every
subquery carries the same condition. Every raw branch also names the hours it reads
(:func:`tokentrail.sinks.rollups.hours_sql`): `calls` and `events` are keyed by the hour first
(migrations 0011, 0012) and ClickHouse does not derive the hours from a condition on `ts`.

Both levels are recomputed by one refresh under one watermark, and a 30-minute bucket is marked
exactly when one of its 5-minute buckets is, so the branches never overlap and never miss a row.

Every branch pre-aggregates to the same columns (the panel's dimensions and the partial metrics
below, named `p_<name>`); the panel's outer query combines them (`sum(p_calls)`, `sumMap(p_latency)`
and :func:`histogram_quantile`). The prefix keeps the outer aliases (`calls`) from shadowing them.
Percentiles come from histograms of 5%-wide bins: the shown value is the upper bound of the bin
holding the exact percentile (exact <= shown < exact * 1.05), the same from rollup rows as from
raw rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokentrail.sinks.rollups import (
    BUCKET_SECONDS,
    HISTOGRAM_BASE,
    HOUR_KEYED,
    MARGIN_SECONDS,
    MAX_AGE_SECONDS,
    ROLLUP_BY_TABLE,
    TRACE_TOTALS,
    Level,
    bucket_sql,
    histogram_sql,
    hours_sql,
    outside_hours_sql,
)

from .spec import table

__all__ = [
    "TRACE_COLUMNS",
    "top_traces_sql",
    "calls_source",
    "latency_source",
    "rollup_source",
    "histogram_quantile",
    "PARTIALS",
    "EVENT_PARTIALS",
    "LATENCY_PARTIALS",
    "BUCKET_SECONDS",
]

# The refresh's own bounds (tokentrail.sinks.rollups): a reader must distrust exactly what it does.
ROLLUP_MAX_AGE = f"INTERVAL {MAX_AGE_SECONDS} SECOND"
MARGIN = f"INTERVAL {MARGIN_SECONDS} SECOND"

# name -> (partial from rollup rows, the same partial from raw rows). The outer query combines a
# partial with sum() (counts, sums), max() or sumMap (histograms).
PARTIALS: dict[str, tuple[str, str]] = {
    "calls": ("sum(r.calls)", "count()"),
    "errors": ("sumIf(r.calls, r.status = 'error')", "countIf(status = 'error')"),
    "cost_usd": ("sum(r.cost_usd)", "sum(cost_usd)"),
    "input_tokens": ("sum(r.input_tokens)", "sum(toUInt64(input_tokens))"),
    "cached_input_tokens": ("sum(r.cached_input_tokens)", "sum(toUInt64(cached_input_tokens))"),
    "output_tokens": ("sum(r.output_tokens)", "sum(toUInt64(output_tokens))"),
    "last_ts": ("max(r.last_ts)", "max(ts)"),
}
# The rollup's columns are read qualified (r.calls): each partial's alias is also a column name,
# and ClickHouse would otherwise resolve `calls` inside `sumIf(calls, ...)` to the alias `sum(calls)`.

# Calls, failed calls, and calls per latency / time-to-first-token / end-to-end-lag bin (latency_rollup: tenant,
# service, feature, model).
LATENCY_PARTIALS: dict[str, tuple[str, str]] = {
    "calls": ("sum(r.calls)", "count()"),
    "errors": ("sum(r.errors)", "countIf(status = 'error')"),  # since migration 0014
    "latency": ("sumMap(r.latency)", histogram_sql("latency_ms", nullable=True)),
    "ttft": ("sumMap(r.ttft)", histogram_sql("ttft_ms", nullable=True)),
    "lag": ("sumMap(r.lag)", histogram_sql("dateDiff('millisecond', ts, received_at)", nullable=False)),
}

# Every partial of the events rollup (events_rollup: tenant, service, feature, model, type).
EVENT_PARTIALS: dict[str, tuple[str, str]] = {
    "events": ("sum(r.events)", "count()"),
    "outputs": ("sumIf(r.events, r.type = 'output')", "countIf(type = 'output')"),
    "tool_calls": ("sumIf(r.events, r.type = 'tool_call')", "countIf(type = 'tool_call')"),
}
# Per trace (trace_rollup), row by row: each branch passes its rows through un-aggregated (see
# rollup_source's `grouped`), since grouping two million trace ids in every branch is the cost to avoid.
TRACE_COLUMNS: dict[str, tuple[str, str]] = {
    "trace_key": ("r.trace_key", "cityHash64(trace_id, tenant, feature)"),
    "calls": ("r.calls", "toUInt64(1)"),
    "input_tokens": ("r.input_tokens", "toUInt64(input_tokens)"),
    "output_tokens": ("r.output_tokens", "toUInt64(output_tokens)"),
    "cost_usd": ("r.cost_usd", "toDecimal128(cost_usd, 12)"),
    "started": ("r.started", "ts"),
    "ended": ("r.ended", "ts"),
}
_PARTIALS = {
    "calls_rollup": PARTIALS,
    "latency_rollup": LATENCY_PARTIALS,
    "events_rollup": EVENT_PARTIALS,
    "trace_rollup": TRACE_COLUMNS,
}


def histogram_quantile(histogram: str, q: float) -> str:
    """SQL: the `q` percentile (ms) of a merged latency histogram (`sumMap(p_latency)`); NaN when it is empty.

    The first bin whose running count reaches q * total holds the nearest-rank percentile; its
    upper bound is shown (sinks/migrations/0010_rollup_levels.sql).
    """
    counts = f"mapValues({histogram})"
    first = f"arrayFirstIndex(c -> c >= {q} * arraySum({counts}), arrayCumSum({counts}))"
    bin_ = f"arrayElement(mapKeys({histogram}), {first})"
    return f"if(empty({histogram}), nan, pow({HISTOGRAM_BASE}, {bin_}))"


def _watermark(name: str) -> str:
    return f"(SELECT max(refreshed_before) FROM {table('rollup_watermark')} WHERE name = '{name}')"


def _dirty(marks: str, watermark: str, seconds: int, when: str) -> str:
    """(tenant, bucket of `seconds` as `b`) marked since the watermark minus the margin (marks are 5-minute).

    `when`: the condition of every branch that uses the set; when it is false (a constant once
    Grafana's macros are expanded), the set reads nothing.
    """
    bucket = "bucket" if seconds == BUCKET_SECONDS else bucket_sql(seconds, "bucket")
    return (
        f"(SELECT DISTINCT tenant, {bucket} AS b FROM {table('rollup_dirty')} "
        f"WHERE {when} AND rollup = '{marks}' AND marked_at > {watermark} - {MARGIN})"
    )


# Ranges shorter than this read `calls FINAL` alone: with the hour-led keys (0011, 0012) a few hours of raw
# rows cost less than the rollup branches' sets and the range ends (docs/performance.md).
RAW_BELOW_SECONDS = 12 * 3600


def _span_at_least(seconds: int) -> str:
    """SQL: the panel's range is at least `seconds` long (a constant once Grafana's macros are expanded)."""
    return f"dateDiff('second', $__fromTime, $__toTime) >= {seconds}"


def _whole(seconds: int) -> tuple[str, str]:
    """[lo, hi): the buckets of `seconds` lying wholly inside the range."""
    lo = bucket_sql(seconds, f"(($__fromTime) + INTERVAL {seconds - 1} SECOND)")  # first bucket starting in range
    hi = bucket_sql(seconds, "($__toTime)")  # buckets before it end inside the range
    return lo, hi


def calls_source(dims: Sequence[str], partials: Sequence[str], *, where: str, timeseries: bool, extra: str = "") -> str:
    """A parenthesised subquery: per (`time`,) `dims`, the named partial metrics (`p_<name>`) over the calls in range.

    `where` holds the dashboard's variable filters (no time filter: each branch has its own);
    `extra` a further condition on rollup dimensions (e.g. `status = 'error'`, `NOT priced`).
    """
    return rollup_source("calls_rollup", dims, partials, where=where, timeseries=timeseries, extra=extra)


def latency_source(dims: Sequence[str], partials: Sequence[str], *, where: str, timeseries: bool) -> str:
    """:func:`calls_source` for latency, time-to-first-token and lag histograms (dims among tenant, service,
    feature, model)."""
    return rollup_source("latency_rollup", dims, partials, where=where, timeseries=timeseries)


def rollup_source(
    rollup_table: str,
    dims: Sequence[str],
    partials: Sequence[str],
    *,
    where: str,
    timeseries: bool,
    extra: str = "",
    grouped: bool = True,
) -> str:
    """:func:`calls_source` for any rollup, named by its 5-minute table (``events_rollup`` for events).

    `grouped=False`: every branch passes its rows through (rollup rows as they are, raw rows one per
    call) for the outer query to group; only with row-wise partials (``trace_rollup``).
    """
    rollup, _ = ROLLUP_BY_TABLE[rollup_table]
    known = _PARTIALS[rollup_table]
    unknown = [p for p in partials if p not in known]
    if unknown:
        raise ValueError(f"unknown partial(s) {unknown}; known: {sorted(known)}")
    fine, coarse = rollup.levels
    # The watermark and the spans of the marked buckets, read once per panel source (a WITH around the
    # union, which every branch and its subqueries see), not once per use or per branch: planning
    # every scalar subquery costs more than reading the rows of a short range.
    watermark = "tt_watermark"
    # Constants first (the range and interval, once the macros are expanded): a false one folds the
    # branch, and the sets it reads, away before the watermark matters.
    usable = f"{_span_at_least(RAW_BELOW_SECONDS)} AND {watermark} > now64(3) - {ROLLUP_MAX_AGE}"
    usable_coarse = usable
    if timeseries:
        usable = f"($__interval_s) % {fine.seconds} = 0 AND {usable}"
        usable_coarse = f"($__interval_s) % {coarse.seconds} = 0 AND {usable}"
    dirty_fine = _dirty(rollup.marks, watermark, fine.seconds, usable)
    dirty_coarse = _dirty(rollup.marks, watermark, coarse.seconds, usable_coarse)
    # Every raw branch also names its hours (the keys of `calls` and `events` lead with them, 0011/0012).
    hourly = rollup.source in HOUR_KEYED

    def hours(lo: str, hi: str) -> str:
        return f" AND {hours_sql(lo, hi)}" if hourly else ""

    condition = f"{where} AND {extra}" if extra and where else (extra or where or "1")
    keys = ["time", *dims] if timeseries else list(dims)

    def branch(time_column: str, index: int, table_sql: str, where_time: str) -> str:
        columns = [f"$__timeInterval({time_column}) AS time"] if timeseries else []
        columns += list(dims) + [f"{known[p][index]} AS p_{p}" for p in partials]
        group = f"\n    GROUP BY {', '.join(keys)}" if keys and grouped else ""
        select = f"    SELECT {', '.join(columns)}\n    FROM {table_sql}\n"
        return f"{select}    WHERE {where_time}\n      AND {condition}{group}"

    def from_level(level: Level, buckets: str, dirty: str, also: str = "") -> str:
        """Rows of `level` in its whole buckets in range that meet `buckets` (a condition on `bucket` and
        constants, also applied when finding each bucket's newest computation) and `also`."""
        # Rollup rows without FINAL: per bucket, the newest computation no newer than the watermark.
        # A refresh writes every row of a bucket with computed_at = its watermark, so that computation
        # is complete, and a refresh that died before recording its watermark is not read.
        lo, hi = _whole(level.seconds)
        in_range = f"{buckets} AND bucket >= {lo} AND bucket < {hi}"
        newest = (
            f"(SELECT bucket, max(computed_at) FROM {table(level.table)} WHERE {in_range}"
            f" AND computed_at <= {watermark} GROUP BY bucket)"
        )
        return branch(
            "bucket",
            0,
            f"{table(level.table)} AS r",
            f"{in_range}{also}\n      AND (bucket, computed_at) IN {newest}"
            f"\n      AND (r.tenant, bucket) NOT IN {dirty}",
        )

    (lo_fine, hi_fine), (lo_coarse, hi_coarse) = _whole(fine.seconds), _whole(coarse.seconds)
    branches = [
        from_level(coarse, usable_coarse, dirty_coarse),
        # 5-minute rows: outside the 30-minute span; inside it, in marked 30-minute buckets (bounded
        # by their min and max, so the key prunes); everywhere when 30-minute rows may not be used.
        from_level(fine, f"{usable_coarse} AND (bucket < {lo_coarse} OR bucket >= {hi_coarse})", dirty_fine),
        from_level(
            fine,
            f"{usable_coarse} AND bucket >= {lo_coarse} AND bucket < {hi_coarse}"
            " AND bucket >= tupleElement(tt_coarse_marked, 1) AND bucket < tupleElement(tt_coarse_marked, 2)",
            dirty_fine,
            f"\n      AND (r.tenant, {bucket_sql(coarse.seconds, 'bucket')}) IN {dirty_coarse}",
        ),
    ]
    if timeseries:  # else usable_coarse is usable: this branch could never hold a row
        branches.append(from_level(fine, f"{usable} AND NOT ({usable_coarse})", dirty_fine))
    # The raw rows, in three disjoint parts, each with a time condition the primary key and the
    # partition minmax index can prune on (an OR with the dirty set in it would make ClickHouse
    # read every granule of the range): everything when the rollup may not be used; else the
    # partial buckets at both ends; else the marked buckets (bounded by their min and max).
    # FINAL over the few minutes at the ends merges one or two granules of every (tenant, feature,
    # model), ~250 ms on 10M calls; picking each event's last-inserted copy by `_part` instead was
    # 4x cheaper but `_part` does not exist on the Distributed tables of the cluster form.
    raw = f"{table(rollup.source)} FINAL"
    marked_lo = f"greatest({lo_fine}, tupleElement(tt_fine_marked, 1))"
    marked_hi = f"least({hi_fine}, tupleElement(tt_fine_marked, 2))"
    branches += [
        branch("ts", 1, raw, f"NOT ({usable}) AND $__timeFilter(ts){hours('$__fromTime', '$__toTime')}"),
        branch(
            "ts",
            1,
            raw,
            f"{usable} AND $__timeFilter(ts){hours('$__fromTime', '$__toTime')}"
            f"\n      AND (ts < {lo_fine} OR ts >= {hi_fine})"
            + (f" AND {outside_hours_sql(lo_fine, hi_fine)}" if hourly else ""),
        ),
        branch(
            "ts",
            1,
            raw,
            f"{usable} AND ts >= {marked_lo} AND ts < {marked_hi}{hours(marked_lo, marked_hi)}"
            f"\n      AND (tenant, {bucket_sql(fine.seconds)}) IN {dirty_fine}",
        ),
    ]
    union = "\n    UNION ALL\n".join(branches)
    spans = ",\n    ".join(
        f"(SELECT (min(b), max(b) + INTERVAL {level.seconds} SECOND) FROM {dirty}) AS tt_{name}_marked"
        for name, level, dirty in (("fine", fine, dirty_fine), ("coarse", coarse, dirty_coarse))
    )
    return f"""(
    WITH {_watermark(rollup.name)} AS {watermark},
    {spans}
    SELECT * FROM (
{union}
    )
)"""


def top_traces_sql(where: str, limit: int = 25) -> str:
    """SQL: the `limit` traces (per trace id, tenant, feature) that cost most in the range, summed exactly over
    their calls in the range, as `calls FINAL` grouped by trace gives them (ties in cost by trace id).

    Reads the whole-trace totals (`trace_totals`, migration 0013, refreshed by
    tokentrail.sinks.rollups.refresh_trace_totals) where they are exact, `calls FINAL` elsewhere.
    A row is *clean* when it was computed no later than the watermark and its trace has no call in
    a bucket marked for its tenant since then (minus the margin): the rollups' rule, per trace.

    1. Clean rows wholly inside the range, of traces with one (service, model) row: that row is the
       trace's figure, so the `limit` most expensive are a partial sort, with no grouping.
    2. Grouped by trace: the clean inside rows of traces with several (service, model) rows; and
       from `calls FINAL`, the calls in range of the clean rows crossing the range's start or end
       (read in the hours from the start to the last such row's end, and from the first such
       row's start to the end) and of the marked traces (in the marked buckets' hours and their
       previous rows' hours).
    3. When the totals may not be used (no watermark in 2 days, or a range under 12 hours), every
       call in range from `calls FINAL`, grouped by trace.

    A trace is in 1 or in 2, and each of its calls in range counted once, so the `limit` best of
    their union are the panel's. `where` holds the dashboard's variable filters over tenant,
    service, feature and model (columns of both tables).

    Every subquery of a branch sees the branch's WITH scalars (the watermark, the span of the marked
    buckets, the crossing rows' ends), computed once per branch: planning repeated subqueries is
    most of what this query costs.
    """
    totals = table(TRACE_TOTALS)
    calls = table("calls")
    usable = f"{_span_at_least(RAW_BELOW_SECONDS)} AND tt_watermark > now64(3) - {ROLLUP_MAX_AGE}"
    condition = where or "1"
    dirty = _dirty(ROLLUP_BY_TABLE["calls_rollup"][0].marks, "tt_watermark", BUCKET_SECONDS, usable)
    # The span of the marked buckets, then the keys of the traces with a call in one (any copy of a
    # call names its trace: no FINAL), as an array computed once per branch (a set subquery would be
    # planned again at every use). A trace whose key is among them is read from `calls FINAL`,
    # marked or not (a collision of keys only moves a trace there).
    marked_lo, marked_hi = "tupleElement(tt_marked, 1)", "tupleElement(tt_marked, 2)"
    trace_key = "cityHash64(tenant, feature, trace_id)"  # trace_totals.trace_key
    with_marked = (
        f"WITH {_watermark(TRACE_TOTALS)} AS tt_watermark,\n"
        f"        (SELECT (min(b), max(b) + INTERVAL {BUCKET_SECONDS} SECOND) FROM {dirty}) AS tt_marked,\n"
        f"        (SELECT groupUniqArray({trace_key}) FROM {calls} WHERE {usable} AND ts >= {marked_lo}"
        f" AND ts < {marked_hi} AND {hours_sql(marked_lo, marked_hi)}"
        f" AND (tenant, {bucket_sql(BUCKET_SECONDS)}) IN {dirty}) AS tt_dirty\n"
    )
    not_dirty = "trace_key NOT IN tt_dirty"
    stored = f"{usable} AND computed_at <= tt_watermark"
    inside = f"started >= ($__fromTime) AND ended <= ($__toTime) AND {hours_sql('$__fromTime', '$__toTime', 'started')}"
    crosses_start = "started < ($__fromTime) AND ended >= ($__fromTime)"
    crosses_end = "started <= ($__toTime) AND ended > ($__toTime)"
    # One set per end: ClickHouse prunes each by its own index (the hour of `started`, or `ended`), not their OR.
    start_keys, end_keys = (
        f"(SELECT tenant, feature, trace_id, service, model FROM {totals} WHERE {stored} AND {crosses})"
        for crosses in (crosses_start, crosses_end)
    )
    # The marked traces' rows (any computation: a trace's span only grows), found by trace id alone.
    with_windows = (
        f"{with_marked[:-1]},\n"
        f"        (SELECT maxOrNull(ended) FROM {totals} WHERE {stored} AND {crosses_start}) AS tt_start_hi,\n"
        f"        (SELECT minOrNull(started) FROM {totals} WHERE {stored} AND {crosses_end}) AS tt_end_lo,\n"
        f"        (SELECT (minOrNull(started), maxOrNull(ended)) FROM {totals}"
        f" WHERE {usable} AND trace_key IN tt_dirty) AS tt_previous\n"
    )
    previous_lo, previous_hi = "tupleElement(tt_previous, 1)", "tupleElement(tt_previous, 2)"
    windows = (
        f"((ts <= tt_start_hi AND {hours_sql('$__fromTime', 'tt_start_hi')})"
        f"\n            OR (ts >= tt_end_lo AND {hours_sql('tt_end_lo', '$__toTime')})"
        f"\n            OR (ts >= {marked_lo} AND ts < {marked_hi} AND {hours_sql(marked_lo, marked_hi)})"
        f"\n            OR (ts >= {previous_lo} AND ts <= {previous_hi} AND {hours_sql(previous_lo, previous_hi)}))"
    )
    from_totals = (
        "trace_id, tenant, feature, calls AS q_calls, input_tokens AS q_input_tokens, output_tokens AS q_output_tokens,"
        " cost_usd AS q_cost_usd, started AS q_started, ended AS q_ended"
    )
    from_calls = (
        "trace_id, tenant, feature, toUInt64(1) AS q_calls, toUInt64(input_tokens) AS q_input_tokens,"
        " toUInt64(output_tokens) AS q_output_tokens, toDecimal128(cost_usd, 12) AS q_cost_usd, ts AS q_started,"
        " ts AS q_ended"
    )
    in_range = f"$__timeFilter(ts) AND {hours_sql('$__fromTime', '$__toTime')}"
    whole = f"""    SELECT trace_id, tenant, feature, calls AS p_calls, input_tokens AS p_input_tokens,
        output_tokens AS p_output_tokens, cost_usd AS p_cost_usd, started AS p_started, ended AS p_ended
    FROM {totals}
    WHERE {stored} AND combos = 1 AND {inside} AND {not_dirty}
      AND {condition}
    ORDER BY p_cost_usd DESC, trace_id
    LIMIT {limit}"""
    grouped = f"""    SELECT trace_id, tenant, feature, sum(q_calls) AS p_calls, sum(q_input_tokens) AS p_input_tokens,
        sum(q_output_tokens) AS p_output_tokens, sum(q_cost_usd) AS p_cost_usd, min(q_started) AS p_started,
        max(q_ended) AS p_ended
    FROM (
        SELECT {from_totals}
        FROM {totals}
        WHERE {stored} AND combos > 1 AND {inside} AND {not_dirty}
          AND {condition}
        UNION ALL
        SELECT {from_calls}
        FROM {calls} FINAL
        WHERE {usable} AND {in_range}
          AND {windows}
          AND ((tenant, feature, trace_id, service, model) IN {start_keys}
            OR (tenant, feature, trace_id, service, model) IN {end_keys}
            OR {trace_key} IN tt_dirty)
          AND {condition}
        UNION ALL
        SELECT {from_calls}
        FROM {calls} FINAL
        WHERE NOT ({usable}) AND {in_range}
          AND {condition}
    )
    GROUP BY trace_id, tenant, feature"""
    return f"""{with_windows}SELECT trace_id, tenant, feature, p_calls AS calls, p_input_tokens AS input_tokens,
       p_output_tokens AS output_tokens, p_cost_usd AS cost_usd, p_started AS started, p_ended AS ended
FROM (
{whole}
    UNION ALL
{grouped}
)
ORDER BY cost_usd DESC, trace_id
LIMIT {limit}"""
