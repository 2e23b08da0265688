"""Panel SQL over model calls that reads the 5-minute rollup where it is exact and `calls FINAL` elsewhere.

`calls_rollup` (sinks/migrations/0008_rollups.sql, refreshed by tokentrail.sinks.rollups) holds
per-5-minute sums computed from deduplicated calls. A panel built with :func:`calls_source` reads
the union of two branches that partition the calls in its range, so every count and sum equals
what `calls FINAL` gives:

- the rollup, for the buckets that are (a) entirely inside the range, (b) not marked for
  that tenant in `rollup_dirty` since the last refresh (minus the margin), and only when (c) the rollup was
  refreshed in the last 2 days and (d) for time series, the panel's interval is a multiple of
  5 minutes (at 24 h and 7 days Grafana asks for 5 and 30 minutes; at 1-6 h for 1 minute, so the
  default ranges read raw rows, as before);
- `calls FINAL` for every other call in range: the partial buckets at both ends, the fresh or
  re-delivered ones, or all of them when the rollup may not be used.

Both branches pre-aggregate to the same columns (the panel's dimensions and the partial metrics
below, named `p_<name>`); the panel's outer query combines them (`sum(p_calls)`,
`quantilesMerge(...)(p_latency)`). The prefix keeps the outer aliases (`calls`) from shadowing them.
Percentiles come from `quantiles` states: as approximate as `quantile` on raw rows (a reservoir
of 8192 values per state), no more.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokentrail.sinks.rollups import BUCKET_SECONDS, MARGIN_SECONDS, MAX_AGE_SECONDS

from .spec import table

__all__ = ["calls_source", "rollup_source", "PARTIALS", "EVENT_PARTIALS", "BUCKET_SECONDS"]

# The refresh's own bounds (tokentrail.sinks.rollups): a reader must distrust exactly what it does.
ROLLUP_MAX_AGE = f"INTERVAL {MAX_AGE_SECONDS} SECOND"
MARGIN = f"INTERVAL {MARGIN_SECONDS} SECOND"

# name -> (partial from calls_rollup rows, the same partial from raw calls). The outer query
# combines a partial with sum() (counts, sums), max() or quantilesMerge (states).
PARTIALS: dict[str, tuple[str, str]] = {
    "calls": ("sum(r.calls)", "count()"),
    "errors": ("sumIf(r.calls, r.status = 'error')", "countIf(status = 'error')"),
    "cost_usd": ("sum(r.cost_usd)", "sum(cost_usd)"),
    "input_tokens": ("sum(r.input_tokens)", "sum(toUInt64(input_tokens))"),
    "cached_input_tokens": ("sum(r.cached_input_tokens)", "sum(toUInt64(cached_input_tokens))"),
    "output_tokens": ("sum(r.output_tokens)", "sum(toUInt64(output_tokens))"),
    "latency": ("quantilesMergeState(0.5, 0.95, 0.99)(r.latency)", "quantilesState(0.5, 0.95, 0.99)(latency_ms)"),
    "ttft": ("quantilesMergeState(0.5, 0.95)(r.ttft)", "quantilesState(0.5, 0.95)(ttft_ms)"),
    "last_ts": ("max(r.last_ts)", "max(ts)"),
}
# The rollup's columns are read qualified (r.calls): each partial's alias is also a column name,
# and ClickHouse would otherwise resolve `calls` inside `sumIf(calls, ...)` to the alias `sum(calls)`.


# Every partial of the events rollup (events_rollup: tenant, service, feature, model, type).
EVENT_PARTIALS: dict[str, tuple[str, str]] = {
    "events": ("sum(r.events)", "count()"),
    "outputs": ("sumIf(r.events, r.type = 'output')", "countIf(type = 'output')"),
    "tool_calls": ("sumIf(r.events, r.type = 'tool_call')", "countIf(type = 'tool_call')"),
}
_SOURCES = {"calls_rollup": ("calls", PARTIALS), "events_rollup": ("events", EVENT_PARTIALS)}


def _watermark(rollup: str) -> str:
    return f"(SELECT max(refreshed_before) FROM {table('rollup_watermark')} WHERE name = '{rollup}')"


def _dirty(rollup: str) -> str:
    return (
        f"(SELECT tenant, bucket FROM {table('rollup_dirty')} "
        f"WHERE rollup = '{rollup}' AND marked_at > {_watermark(rollup)} - {MARGIN})"
    )


_LO = "toStartOfFiveMinutes(($__fromTime) + INTERVAL 299 SECOND)"  # first bucket starting in range
_HI = "toStartOfFiveMinutes(($__toTime))"  # buckets before it end inside the range


def calls_source(dims: Sequence[str], partials: Sequence[str], *, where: str, timeseries: bool, extra: str = "") -> str:
    """A parenthesised subquery: per (`time`,) `dims`, the named partial metrics (`p_<name>`) over the calls in range.

    `where` holds the dashboard's variable filters (no time filter: each branch has its own);
    `extra` a further condition on rollup dimensions (e.g. `status = 'error'`, `NOT priced`).
    """
    return rollup_source("calls_rollup", dims, partials, where=where, timeseries=timeseries, extra=extra)


def rollup_source(
    rollup: str, dims: Sequence[str], partials: Sequence[str], *, where: str, timeseries: bool, extra: str = ""
) -> str:
    """:func:`calls_source` for any rollup in ``_SOURCES`` (``events_rollup`` for events)."""
    source, known = _SOURCES[rollup]
    unknown = [p for p in partials if p not in known]
    if unknown:
        raise ValueError(f"unknown partial(s) {unknown}; known: {sorted(known)}")
    watermark, dirty = _watermark(rollup), _dirty(rollup)
    usable = f"{watermark} > now64(3) - {ROLLUP_MAX_AGE}"
    if timeseries:
        usable = f"($__interval_s) % {BUCKET_SECONDS} = 0 AND {usable}"
    condition = f"{where} AND {extra}" if extra and where else (extra or where or "1")
    keys = ["time", *dims] if timeseries else list(dims)

    def branch(time_column: str, index: int, table_sql: str, where_time: str) -> str:
        columns = [f"$__timeInterval({time_column}) AS time"] if timeseries else []
        columns += list(dims) + [f"{known[p][index]} AS p_{p}" for p in partials]
        group = f"\n    GROUP BY {', '.join(keys)}" if keys else ""
        select = f"    SELECT {', '.join(columns)}\n    FROM {table_sql}\n"
        return f"{select}    WHERE {where_time}\n      AND {condition}{group}"

    raw = f"{table(source)} FINAL"
    # Rollup rows without FINAL: per bucket, the newest computation no newer than the watermark.
    # A refresh writes every row of a bucket with computed_at = its watermark, so that computation
    # is complete, and a refresh that died before recording its watermark is not read.
    newest = (
        f"(SELECT bucket, max(computed_at) FROM {table(rollup)} WHERE bucket >= {_LO} AND bucket < {_HI}"
        f" AND computed_at <= {watermark} GROUP BY bucket)"
    )
    from_rollup = branch(
        "bucket",
        0,
        f"{table(rollup)} AS r",
        f"{usable} AND bucket >= {_LO} AND bucket < {_HI}\n      AND (bucket, computed_at) IN {newest}"
        f"\n      AND (r.tenant, bucket) NOT IN {dirty}",
    )
    # The raw rows, in three disjoint parts, each with a time condition the primary key and the
    # partition minmax index can prune on (an OR with the dirty set in it would make ClickHouse
    # read every granule of the range): everything when the rollup may not be used; else the
    # partial buckets at both ends; else the marked buckets (bounded by their min and max).
    everything = branch("ts", 1, raw, f"NOT ({usable}) AND $__timeFilter(ts)")
    edges = branch("ts", 1, raw, f"{usable} AND $__timeFilter(ts) AND (ts < {_LO} OR ts >= {_HI})")
    marked = branch(
        "ts",
        1,
        raw,
        f"{usable} AND ts >= greatest({_LO}, (SELECT min(bucket) FROM {dirty}))"
        f" AND ts < least({_HI}, (SELECT max(bucket) + INTERVAL {BUCKET_SECONDS} SECOND FROM {dirty}))"
        f"\n      AND (tenant, toStartOfFiveMinutes(ts)) IN {dirty}",
    )
    union = "\n    UNION ALL\n".join((from_rollup, everything, edges, marked))
    return f"(\n{union}\n)"
