-- Core tables: every valid event, model calls, tool calls, and the dead letters.
--
-- Placeholders: ${database}, and ${ttl_<table>} = retention in days, whose default the
-- "retention-days" line below declares (tokentrail.sinks.migrations.apply(ttl_days=...) overrides).
-- retention-days: events=30 calls=400 tool_calls=400 deadletter=30
--
-- Why these choices:
-- * ReplacingMergeTree with the idempotency key last in ORDER BY: a re-delivered event that
--   slipped past block deduplication (a different batch token) collapses to one row on merge,
--   and immediately under FINAL. Duplicates share every ORDER BY / PARTITION BY value because
--   all of them derive from the event itself (never from ingest time).
-- * non_replicated_deduplication_window: an insert repeating one of the table's last 1000
--   insert_deduplication_tokens is dropped as a block. So a retry of the *same* batch (same rows,
--   same token: the writer's retry loop, or a re-run of the same input batch) adds nothing and
--   count() without FINAL stays exact for it. It does not hold across different batches: after a
--   worker crash faust re-reads from the committed offset and forms new batches (new tokens), so
--   re-delivered events are stored again as extra rows until a merge collapses them. Exact counts
--   need FINAL (or uniqExact of the key); plain count() may over-count until merges, never under-count.
-- * TTL on received_at (ingest time), not on the event time ts: ClickHouse drops rows whose TTL
--   has already passed at insert time, so a replay of last quarter's events would vanish on
--   arrival with an event-time TTL. calls and tool_calls get received_at DEFAULT now64(3) so the
--   processor may omit it.
-- * PRIMARY KEY is a prefix of ORDER BY: the UUID tail only serves deduplication and would bloat
--   the in-memory primary index.
-- Statements are separated by a line ending in ';'.

CREATE DATABASE IF NOT EXISTS ${database};

CREATE TABLE IF NOT EXISTS ${database}.events
(
    event_id        UUID,
    type            LowCardinality(String),
    ts              DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    received_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD),
    trace_id        String DEFAULT '' CODEC(ZSTD(1)),
    span_id         String DEFAULT '' CODEC(ZSTD(1)),
    parent_span_id  String DEFAULT '' CODEC(ZSTD(1)),
    session_id      String DEFAULT '' CODEC(ZSTD(1)),
    tenant          LowCardinality(String),
    service         LowCardinality(String),
    environment     LowCardinality(String) DEFAULT 'production',
    feature         LowCardinality(String),
    user            String DEFAULT '' CODEC(ZSTD(1)),
    provider        LowCardinality(String) DEFAULT '',
    model           LowCardinality(String) DEFAULT '',
    payload         String DEFAULT '' CODEC(ZSTD(3)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
PRIMARY KEY (tenant, type, ts)
ORDER BY (tenant, type, ts, event_id)
TTL toDateTime(received_at) + INTERVAL ${ttl_events} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.calls
(
    event_id             UUID,
    ts                   DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    received_at          DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD),
    trace_id             String DEFAULT '' CODEC(ZSTD(1)),
    span_id              String DEFAULT '' CODEC(ZSTD(1)),
    parent_span_id       String DEFAULT '' CODEC(ZSTD(1)),
    session_id           String DEFAULT '' CODEC(ZSTD(1)),
    tenant               LowCardinality(String),
    service              LowCardinality(String),
    environment          LowCardinality(String) DEFAULT 'production',
    feature              LowCardinality(String),
    user                 String DEFAULT '' CODEC(ZSTD(1)),
    provider             LowCardinality(String),
    model                LowCardinality(String),
    response_model       LowCardinality(String) DEFAULT '',
    prompt_id            LowCardinality(String) DEFAULT '',
    prompt_version       LowCardinality(String) DEFAULT '',
    system_prompt_hash   String DEFAULT '' CODEC(ZSTD(1)),
    prompt_hash          String DEFAULT '' CODEC(ZSTD(1)),
    input_tokens         UInt32 DEFAULT 0,
    cached_input_tokens  UInt32 DEFAULT 0,
    output_tokens        UInt32 DEFAULT 0,
    reasoning_tokens     UInt32 DEFAULT 0,
    cost_usd             Decimal(18, 12) DEFAULT 0,
    priced               Bool DEFAULT false,
    latency_ms           Nullable(Float64),
    ttft_ms              Nullable(Float64),
    status               LowCardinality(String) DEFAULT 'ok',
    finish_reason        LowCardinality(String) DEFAULT '',
    error_type           LowCardinality(String) DEFAULT '',
    tool_call_count      UInt16 DEFAULT 0,
    tool_names           Array(LowCardinality(String)) DEFAULT [],
    output_text          String DEFAULT '' CODEC(ZSTD(3)),
    output_hash          String DEFAULT '' CODEC(ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
PRIMARY KEY (tenant, feature, model, ts)
ORDER BY (tenant, feature, model, ts, event_id)
TTL toDateTime(received_at) + INTERVAL ${ttl_calls} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.tool_calls
(
    event_id        UUID,
    ts              DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    received_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD),
    trace_id        String DEFAULT '' CODEC(ZSTD(1)),
    span_id         String DEFAULT '' CODEC(ZSTD(1)),
    parent_span_id  String DEFAULT '' CODEC(ZSTD(1)),
    tenant          LowCardinality(String),
    service         LowCardinality(String),
    environment     LowCardinality(String) DEFAULT 'production',
    feature         LowCardinality(String),
    tool_name       LowCardinality(String),
    call_id         String DEFAULT '' CODEC(ZSTD(1)),
    arguments       String DEFAULT '' CODEC(ZSTD(3)),
    result          String DEFAULT '' CODEC(ZSTD(3)),
    status          LowCardinality(String) DEFAULT 'ok',
    duration_ms     Nullable(Float64),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
PRIMARY KEY (tenant, tool_name, ts)
ORDER BY (tenant, tool_name, ts, event_id)
TTL toDateTime(received_at) + INTERVAL ${ttl_tool_calls} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- No tenant column: an invalid event may not have a trustworthy one. ORDER BY is the id alone
-- because a re-delivered dead letter may be stamped with a different received_at (or, after a
-- validator change, reason); the id (source + raw bytes) is what identifies it. Partitioned by
-- month of received_at so TTL can drop whole parts; a re-delivery that straddles a month
-- boundary stays a duplicate (rare, and harmless in a dead-letter store).
CREATE TABLE IF NOT EXISTS ${database}.deadletter
(
    id           UUID,
    received_at  DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    reason       LowCardinality(String),
    field        LowCardinality(String) DEFAULT '',
    detail       String DEFAULT '' CODEC(ZSTD(3)),
    source       String DEFAULT '' CODEC(ZSTD(1)),
    payload      String DEFAULT '' CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY id
TTL toDateTime(received_at) + INTERVAL ${ttl_deadletter} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
