-- The insights job's own state (tokentrail.stream.insights): how far it got, the first time each
-- watched value was seen, and spend per budget step. They let every run read only the calls of its
-- new window.
-- retention-days: insights_watermark=400 insights_first_seen=730 insights_spend=3
--
-- Why these choices:
-- * insights_watermark: one row per job run, name = 'insights', covered_until = the `now` of the
--   run (calls with ts before it are folded into variance, changes and budgets). The next run, on
--   whichever worker leads then, starts from covered_until minus the lateness margin, so a restart
--   or a leader change neither repeats nor skips a window. ReplacingMergeTree(covered_until) keeps
--   the furthest; readers take max(covered_until), which is right before and after merges.
-- * insights_first_seen: per kind of change (changes.KINDS), group and value, the first and the
--   last time a call carried it. A change is "a value never seen before in its group", so without
--   this state every run would have to scan all of `calls`. It stays small (values per group, not
--   calls). first_seen only moves earlier and last_seen later, so readers take min / max per key
--   (no FINAL, right before merges and with two writers racing); ReplacingMergeTree(last_seen)
--   collapses the rows the job writes to refresh last_seen.
-- * insights_spend: spend per (tenant, feature) and budget step bucket, as the job computed it from
--   `calls FINAL`. A rolling day budget needs two days of buckets before the first window end it
--   evaluates; reading them from here instead of from `calls` keeps a run's cost independent of
--   the traffic of the last two days. A bucket recomputed with late calls replaces the previous
--   row (ReplacingMergeTree(computed_at), read with FINAL); step_seconds is in the key, so a
--   changed budget step starts its own series (the first run with it reads `calls`).
-- * TTL: the watermark on updated_at (a year without a run: the next run starts afresh with its
--   first-run lookback and rebuilds the state from all of `calls`); first-seen rows on last_seen,
--   so a value unseen for the retention is forgotten (seen again, it counts as new). The job
--   rewrites an active value's row at least daily, so an active value never expires. Spend
--   buckets are needed for two days and kept three (on computed_at, ingest-side as everywhere).

CREATE TABLE IF NOT EXISTS ${database}.insights_watermark
(
    name           LowCardinality(String),
    covered_until  DateTime64(3, 'UTC'),
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(covered_until)
ORDER BY name
TTL toDateTime(updated_at) + INTERVAL ${ttl_insights_watermark} DAY;

CREATE TABLE IF NOT EXISTS ${database}.insights_first_seen
(
    kind            LowCardinality(String),
    tenant          LowCardinality(String),
    feature         LowCardinality(String),
    model           LowCardinality(String),
    prompt_id       LowCardinality(String),
    prompt_version  LowCardinality(String),
    value           String CODEC(ZSTD(1)),
    first_seen      DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    last_seen       DateTime64(3, 'UTC') CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (kind, tenant, feature, model, prompt_id, prompt_version, value)
TTL toDateTime(last_seen) + INTERVAL ${ttl_insights_first_seen} DAY;

CREATE TABLE IF NOT EXISTS ${database}.insights_spend
(
    step_seconds  UInt32,
    tenant        LowCardinality(String),
    feature       LowCardinality(String),
    bucket        DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    spend         Decimal(38, 12),
    computed_at   DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (step_seconds, bucket, tenant, feature)
TTL toDateTime(computed_at) + INTERVAL ${ttl_insights_spend} DAY
SETTINGS ttl_only_drop_parts = 1;
