-- Whole-trace totals for "Top traces by cost" (Spend dashboard) at wide ranges.
-- retention-days: trace_totals=400
--
-- Why: the panel used to group the per-bucket trace rollup (trace_rollup_30m, ~2 million rows
-- over 7 days on 10M calls) by trace on every query (0.6-0.9 s). Here each trace (per tenant,
-- feature, service and model) has one row with its calls, tokens, cost and first and last call
-- time, so the traces lying wholly inside a range are read as a partial sort (no grouping); only
-- the rows crossing the range's ends, and the traces changed since the last refresh, are summed
-- from `calls FINAL` (dashboards/dash_spend.py).
-- * Computed from `calls FINAL` by tokentrail.sinks.rollups.refresh (refresh_trace_totals), never
--   by a view, for the reason 0008 gives: every trace with a call in a 5-minute bucket marked for
--   its tenant (`rollup_dirty`) since the last refresh (minus the margin) is recomputed whole; its
--   previous rows are then deleted (lightweight DELETE), and the watermark is recorded last, under
--   the name `trace_totals`. A reader takes rows with computed_at <= that watermark and reads the
--   traces of the marked buckets from `calls FINAL` instead, so a trace is never counted from a
--   stale row or twice, whatever the refresh is doing. Readers use no FINAL (it cost 2-4x the
--   partial sort on 2M rows): the deletes, not merges, keep one row per trace. One refresh at a
--   time (the insights leader runs it): two overlapping refreshes could each keep their rows of a
--   trace until a merge collapses them (same key, ReplacingMergeTree keeps the newer).
-- * combos: how many (service, model) rows the trace has; a trace with one is read without
--   grouping, the others are grouped (per trace, only those).
-- * trace_key = cityHash64(tenant, feature, trace_id): what a reader tests every row against to
--   leave out the traces of marked buckets (a number: testing two million trace ids cost more than
--   the sort). A trace whose key equals a marked trace's is read from `calls FINAL` with them.
-- * Keyed by the hour of `started` first, partitioned by its month, with a minmax index on `ended`:
--   a range reads the granules of its own hours, and the rows crossing its start are found by
--   `ended` (traces are short); a bloom filter on trace_id finds a given trace's rows.
-- * Sharded like `calls` (cityHash64(tenant, trace_id)): each shard totals its own traces.
-- * TTL on computed_at, as for the other rollups.

CREATE TABLE IF NOT EXISTS ${database}.trace_totals
(
    tenant         LowCardinality(String),
    feature        LowCardinality(String),
    trace_id       String CODEC(ZSTD(1)),
    trace_key      UInt64,
    service        LowCardinality(String),
    model          LowCardinality(String),
    combos         UInt16,
    calls          UInt64,
    input_tokens   UInt64,
    output_tokens  UInt64,
    cost_usd       Decimal(38, 12),
    started        DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    ended          DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    computed_at    DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD),
    INDEX idx_ended ended TYPE minmax GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(started)
ORDER BY (toStartOfHour(started), tenant, feature, trace_id, service, model)
TTL toDateTime(computed_at) + INTERVAL ${ttl_trace_totals} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
