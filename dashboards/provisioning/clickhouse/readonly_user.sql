-- The read-only ClickHouse user Grafana's datasource logs in as (GRAFANA_CLICKHOUSE_USER).
--
-- Apply on a ClickHouse SERVER as an admin, with the password taken from the environment, e.g.:
--   envsubst < readonly_user.sql | clickhouse-client --multiquery
-- It is not a schema migration: `tokentrail schema apply` also runs on the embedded chDB engine,
-- where access control is disabled (CREATE USER fails with ACCESS_DENIED), so users and grants
-- live here, next to the datasource that needs them. (compose.yaml's clickhouse-grants service
-- creates the same user with the same grant for the bundled stack.)
--
-- Why readonly = 2 and not 1: the Grafana plugin sends per-query settings (timeouts), which
-- readonly = 1 refuses; 2 still forbids every write and DDL statement. The limits keep a heavy
-- dashboard range from starving the ingest path.

CREATE SETTINGS PROFILE IF NOT EXISTS tokentrail_grafana SETTINGS
    readonly = 2,
    max_execution_time = 60,
    max_memory_usage = 4000000000,
    max_threads = 4;

CREATE ROLE IF NOT EXISTS tokentrail_reader;

GRANT SELECT ON tokentrail.* TO tokentrail_reader;

CREATE USER IF NOT EXISTS grafana
    IDENTIFIED WITH sha256_password BY '${GRAFANA_CLICKHOUSE_PASSWORD}'
    DEFAULT ROLE tokentrail_reader
    SETTINGS PROFILE 'tokentrail_grafana';

GRANT tokentrail_reader TO grafana;
