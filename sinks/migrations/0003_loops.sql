-- Loop detections: one row per (trace, kind), updated as the loop keeps burning.
-- retention-days: loop_detections=400
--
-- Why ReplacingMergeTree(version): a detection is reported once and then updated when its
-- repeats double; `version` is the repeat count, so FINAL (or a merge) keeps the latest state.
-- detection_id is derived from (trace_id, kind), so a replay or a restarted worker updates the
-- same row instead of adding one. Partitioned by the trace's start, which never changes for a
-- trace, so every version of a detection lands in the same partition and collapses.

CREATE TABLE IF NOT EXISTS ${database}.loop_detections
(
    detection_id     UUID,
    version          UInt32,
    is_update        UInt8 DEFAULT 0,
    trace_id         String CODEC(ZSTD(1)),
    tenant           LowCardinality(String),
    service          LowCardinality(String),
    feature          LowCardinality(String),
    kind             LowCardinality(String),
    repeats          UInt32,
    tokens           UInt64,
    cost_usd         Decimal(18, 12),
    trace_started    DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    first_seen       DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    detected_at      DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    event_id         UUID,
    events_in_trace  UInt32,
    halt             UInt8 DEFAULT 0,
    evidence         String CODEC(ZSTD(3)),
    received_at      DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(trace_started)
ORDER BY (tenant, kind, detection_id)
TTL toDateTime(received_at) + INTERVAL ${ttl_loop_detections} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
