-- Least privilege in the store: roles, the reader's settings profile, grants, row policies.
--
-- Rendered by tokentrail.sinks.privileges.render_access_sql(tenants, database=...), which fills
-- ${database} and ${reader_*} and appends tokentrail_all_tenants' grant (every table of
-- privileges.TENANT_PREDICATES, UNSCOPED_TABLES and SHARED_TABLES), the unrestricted row policies,
-- and one role + row policies per tenant; applied by an
-- administrator (access management rights), never by the worker. Every statement is idempotent,
-- and re-running with other limits or tenants converges (profile and policies are OR REPLACE).
-- Statements are separated by a line ending in ';'.
--
-- Roles:
-- * tokentrail_migrator: DDL on the database (`tokentrail schema apply`), and its bookkeeping.
-- * tokentrail_writer: the worker, the insights job and the rollup refresh. INSERT into the
--   tables they fill (rollup_dirty: the materialized views on calls and events write it as part
--   of the worker's insert); SELECT only where they read: calls, variance, changes,
--   budget_breaches and the insights job's state (insights jobs), events and the rollup bookkeeping (rollup refresh) and
--   schema_migrations (the worker's version check). DESCRIBE and system.tables, which the sink
--   reads for column types and partition keys, need no grant beyond these.
-- * tokentrail_reader: what every Grafana user holds: no table grants of its own, the settings
--   profile below. Rows come from exactly one scope role: tokentrail_tenant_<name> (one tenant)
--   or tokentrail_all_tenants (the platform team). A reader without a scope role reads nothing.
--
-- Why one role per tenant rather than one policy on a custom setting (SQL_tokentrail_tenant):
-- the predicate is a literal visible in system.row_policies, it needs no server configuration
-- (custom_settings_prefixes), and a user's tenant cannot depend on a setting being pinned right.
-- Why the profile is also attached to each reader user (see reader_user_sql): `SET ROLE` can
-- drop a role's profile, not a user's.
--
-- readonly = 1 CONST: no query can change any setting, so a panel's SQL cannot raise its own
-- limits (readonly = 2 allowed exactly that); the MAX bounds hold even if readonly is relaxed.

CREATE ROLE IF NOT EXISTS tokentrail_migrator;
CREATE ROLE IF NOT EXISTS tokentrail_writer;
CREATE ROLE IF NOT EXISTS tokentrail_reader;
CREATE ROLE IF NOT EXISTS tokentrail_all_tenants;

CREATE SETTINGS PROFILE OR REPLACE tokentrail_reader_profile SETTINGS
    readonly = 1 CONST,
    max_execution_time = ${reader_max_execution_time} MAX ${reader_max_execution_time},
    max_memory_usage = ${reader_max_memory_usage} MAX ${reader_max_memory_usage},
    max_result_rows = ${reader_max_result_rows} MAX ${reader_max_result_rows},
    result_overflow_mode = 'throw' CONST
    TO tokentrail_reader;

GRANT CREATE DATABASE ON ${database}.*, CREATE TABLE ON ${database}.*, ALTER TABLE ON ${database}.*,
    SELECT ON ${database}.schema_migrations, INSERT ON ${database}.schema_migrations
    TO tokentrail_migrator;

GRANT INSERT ON ${database}.events, INSERT ON ${database}.calls, INSERT ON ${database}.tool_calls,
    INSERT ON ${database}.deadletter, INSERT ON ${database}.receipts, INSERT ON ${database}.loop_detections,
    INSERT ON ${database}.pii_findings, INSERT ON ${database}.variance, INSERT ON ${database}.changes,
    INSERT ON ${database}.budget_breaches,
    INSERT ON ${database}.calls_rollup, INSERT ON ${database}.events_rollup, INSERT ON ${database}.rollup_dirty,
    INSERT ON ${database}.calls_rollup_30m, INSERT ON ${database}.events_rollup_30m,
    INSERT ON ${database}.latency_rollup, INSERT ON ${database}.latency_rollup_30m,
    INSERT ON ${database}.trace_rollup, INSERT ON ${database}.trace_rollup_30m,
    INSERT ON ${database}.trace_totals, SELECT ON ${database}.trace_totals, ALTER DELETE ON ${database}.trace_totals,
    INSERT ON ${database}.rollup_watermark, INSERT ON ${database}.insights_watermark,
    INSERT ON ${database}.insights_first_seen, INSERT ON ${database}.insights_spend,
    SELECT ON ${database}.calls, SELECT ON ${database}.variance, SELECT ON ${database}.changes,
    SELECT ON ${database}.budget_breaches, SELECT ON ${database}.schema_migrations,
    SELECT ON ${database}.events, SELECT ON ${database}.rollup_dirty, SELECT ON ${database}.rollup_watermark,
    SELECT ON ${database}.insights_watermark, SELECT ON ${database}.insights_first_seen,
    SELECT ON ${database}.insights_spend
    TO tokentrail_writer;
