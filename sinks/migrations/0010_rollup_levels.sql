-- Coarser rollups for the widest dashboard ranges, and latency histograms for the percentile panels.
-- retention-days: calls_rollup_30m=400 events_rollup_30m=30 latency_rollup=400 latency_rollup_30m=400 trace_rollup=400 trace_rollup_30m=400
--
-- Same contract as 0008_rollups.sql (read it first): rows are computed from `calls FINAL` /
-- `events FINAL` by tokentrail.sinks.rollups.refresh, never by a view; the views of 0008 mark the
-- 5-minute buckets that receive rows (`rollup_dirty`), and these tables reuse those marks.
-- * *_30m: the same dimensions and sums as calls_rollup / events_rollup per 30 minutes. A range of
--   7 days asks for 30-minute intervals; reading 5-minute rows there meant six times more rows.
--   A 30-minute bucket is recomputed whenever one of its 5-minute buckets is marked, by the same
--   refresh that recomputes those 5-minute buckets and under the same watermark, so "clean" means
--   the same at both sizes (a reader's dirty 30-minute buckets are exactly those holding a dirty
--   5-minute bucket).
-- * latency_rollup(_30m): per 5 / 30 minutes, tenant, service, feature and model (the dashboard
--   filters; the percentile panels break down by model at most), the number of calls per latency
--   bin, per time-to-first-token bin and per end-to-end lag bin. Bin b >= 1 holds values in
--   (1.05^(b-1), 1.05^b] ms, bin 0 everything up to 1 ms (lags below zero too): a percentile read
--   from merged bins is the upper bound of the bin holding the exact (nearest-rank) percentile,
--   so exact <= shown < exact * 1.05 above 1 ms. Bins add exactly, so a panel shows the same
--   figure whether it reads these rows or `calls FINAL`; reservoir states (quantilesState in
--   calls_rollup) hold up to 8192 values each and merging them over 7 days took ~1 s.
--   A Map holds only the bins that occur (~40 of ~400 per row on lognormal latencies).
-- * TTL on computed_at, as in 0008.

CREATE TABLE IF NOT EXISTS ${database}.calls_rollup_30m
(
    bucket               DateTime('UTC') CODEC(Delta, ZSTD),
    tenant               LowCardinality(String),
    service              LowCardinality(String),
    feature              LowCardinality(String),
    provider             LowCardinality(String),
    model                LowCardinality(String),
    priced               Bool,
    status               LowCardinality(String),
    finish_reason        LowCardinality(String),
    error_type           LowCardinality(String),
    calls                UInt64,
    cost_usd             Decimal(38, 12),
    input_tokens         UInt64,
    cached_input_tokens  UInt64,
    output_tokens        UInt64,
    last_ts              DateTime64(3, 'UTC'),
    computed_at          DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, tenant, feature, model, service, provider, priced, status, finish_reason, error_type)
TTL toDateTime(computed_at) + INTERVAL ${ttl_calls_rollup_30m} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.events_rollup_30m
(
    bucket       DateTime('UTC') CODEC(Delta, ZSTD),
    tenant       LowCardinality(String),
    service      LowCardinality(String),
    feature      LowCardinality(String),
    model        LowCardinality(String),
    type         LowCardinality(String),
    events       UInt64,
    computed_at  DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, type, tenant, feature, model, service)
TTL toDateTime(computed_at) + INTERVAL ${ttl_events_rollup_30m} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.latency_rollup
(
    bucket       DateTime('UTC') CODEC(Delta, ZSTD),
    tenant       LowCardinality(String),
    service      LowCardinality(String),
    feature      LowCardinality(String),
    model        LowCardinality(String),
    calls        UInt64,
    latency      Map(UInt16, UInt64),
    ttft         Map(UInt16, UInt64),
    lag          Map(UInt16, UInt64),
    computed_at  DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, tenant, feature, model, service)
TTL toDateTime(computed_at) + INTERVAL ${ttl_latency_rollup} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.latency_rollup_30m
(
    bucket       DateTime('UTC') CODEC(Delta, ZSTD),
    tenant       LowCardinality(String),
    service      LowCardinality(String),
    feature      LowCardinality(String),
    model        LowCardinality(String),
    calls        UInt64,
    latency      Map(UInt16, UInt64),
    ttft         Map(UInt16, UInt64),
    lag          Map(UInt16, UInt64),
    computed_at  DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, tenant, feature, model, service)
TTL toDateTime(computed_at) + INTERVAL ${ttl_latency_rollup_30m} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- trace_rollup(_30m): per bucket and trace (with its tenant, service, feature and model), the calls,
-- tokens and cost, and the first and last call time. "Top traces by cost" reads these rows one by
-- one (no pre-aggregation: a trace rarely spans two buckets), picks the 25 most expensive traces
-- by a 64-bit hash of (trace, tenant, feature), then sums those traces' rows exactly. As large as
-- a fifth of `calls` (traces of ~5 calls), and kept as long: a rollup must not expire before the
-- rows it stands for, or a wide range would read neither.
CREATE TABLE IF NOT EXISTS ${database}.trace_rollup
(
    bucket         DateTime('UTC') CODEC(Delta, ZSTD),
    tenant         LowCardinality(String),
    service        LowCardinality(String),
    feature        LowCardinality(String),
    model          LowCardinality(String),
    trace_id       String CODEC(ZSTD(1)),
    trace_key      UInt64,
    calls          UInt64,
    input_tokens   UInt64,
    output_tokens  UInt64,
    cost_usd       Decimal(38, 12),
    started        DateTime64(3, 'UTC'),
    ended          DateTime64(3, 'UTC'),
    computed_at    DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, tenant, feature, model, service, trace_id)
TTL toDateTime(computed_at) + INTERVAL ${ttl_trace_rollup} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.trace_rollup_30m
(
    bucket         DateTime('UTC') CODEC(Delta, ZSTD),
    tenant         LowCardinality(String),
    service        LowCardinality(String),
    feature        LowCardinality(String),
    model          LowCardinality(String),
    trace_id       String CODEC(ZSTD(1)),
    trace_key      UInt64,
    calls          UInt64,
    input_tokens   UInt64,
    output_tokens  UInt64,
    cost_usd       Decimal(38, 12),
    started        DateTime64(3, 'UTC'),
    ended          DateTime64(3, 'UTC'),
    computed_at    DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, tenant, feature, model, service, trace_id)
TTL toDateTime(computed_at) + INTERVAL ${ttl_trace_rollup_30m} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
