-- Which redaction key produced each stored row's pseudonyms and tokens (issue 12 §5).
--
-- Why a column per row: pseudonyms are only comparable under one key, so a rotated key must be
-- visible where the pseudonyms are. `calls` has it since 0006; events, tool_calls and deadletter
-- get it here. The value is the key's id (Redactor.key_id, an HMAC of a fixed message), never
-- the key. ADD COLUMN IF NOT EXISTS: safe to re-run; old rows read ''.

ALTER TABLE ${database}.events
    ADD COLUMN IF NOT EXISTS redaction_key_id LowCardinality(String) DEFAULT '';

ALTER TABLE ${database}.tool_calls
    ADD COLUMN IF NOT EXISTS redaction_key_id LowCardinality(String) DEFAULT '';

ALTER TABLE ${database}.deadletter
    ADD COLUMN IF NOT EXISTS redaction_key_id LowCardinality(String) DEFAULT '';

ALTER TABLE ${database}.calls
    ADD COLUMN IF NOT EXISTS redaction_key_id LowCardinality(String) DEFAULT '';
