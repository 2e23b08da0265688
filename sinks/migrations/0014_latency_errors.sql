-- Errors in the latency rollups, so "Calls in range" (Reliability) reads one rollup, not two.
--
-- Why: the panel showed calls and errors from calls_rollup and the latency p95 from
-- latency_rollup(_30m): two sources of seven branches each to plan, ~290 ms at 7 days on 10M
-- calls. With the number of failed calls per row here, it reads latency_rollup alone.
-- How: the column is added (ADD COLUMN IF NOT EXISTS: safe to re-run; old rows read 0, which is
-- wrong for them), then every rollup watermark is cleared, as 0011 does: readers use `calls FINAL`
-- alone until the next refresh rebuilds every rollup (a full build), which writes the column.

ALTER TABLE ${database}.latency_rollup
    ADD COLUMN IF NOT EXISTS errors UInt64 DEFAULT 0 AFTER calls;

ALTER TABLE ${database}.latency_rollup_30m
    ADD COLUMN IF NOT EXISTS errors UInt64 DEFAULT 0 AFTER calls;

TRUNCATE TABLE IF EXISTS ${database}.rollup_watermark;
