"""The cluster form of tokentrail's schema: Replicated local tables ON CLUSTER behind Distributed tables.

The migrations are written once, for a single node. :func:`cluster_form` turns each of their
statements into what a sharded, replicated cluster runs, so both forms come from the same files
and cannot drift apart (the tests compare their columns table by table):

- ``CREATE DATABASE d`` -> ``CREATE DATABASE d ON CLUSTER c``.
- ``CREATE TABLE d.t (...) ENGINE = XMergeTree(args) ...`` -> the same table as ``d.t_local ON
  CLUSTER c`` with ``ENGINE = ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/t_local',
  '{replica}', args)`` (every replica of a shard shares one Keeper path; ``{shard}`` and
  ``{replica}`` are each server's macros), ``non_replicated_deduplication_window`` becomes
  ``replicated_deduplication_window`` (same window, kept in Keeper and shared by the replicas),
  plus ``d.t ON CLUSTER c AS d.t_local ENGINE = Distributed(c, d, t_local, <sharding key>)``.
  Readers and the sink keep using ``d.t``; partitioning, ORDER BY and TTL stay on the locals
  (a Distributed table stores nothing).
- ``CREATE MATERIALIZED VIEW d.v TO d.target AS SELECT ... FROM d.source`` -> the view ``ON
  CLUSTER`` between the *local* tables: every shard's view sees the rows inserted on that shard
  and writes into that shard's local target, which is correct because the source's and the
  target's sharding keys agree (``SHARDING_KEYS`` gives a rolled-up table the key of its source).
- ``ALTER TABLE d.t ...`` -> on the local table ON CLUSTER; a column change is also made on the
  Distributed table, which must list the same columns.
- A table rebuild (migration 0011): ``TRUNCATE``, ``EXCHANGE TABLES`` and ``DROP VIEW`` act on
  the locals ON CLUSTER (the Distributed table ``d.t`` reads whatever ``d.t_local`` is, so it
  follows an exchange); ``DROP TABLE`` drops the Distributed table and its locals; ``INSERT ...
  SELECT`` between two tables and a check (``SELECT throwIf(...)``) run once, from the node
  ``apply`` talks to, through the Distributed tables (the insert in the foreground: every row is
  on its shard, the one the sharding key picks, i.e. the shard it was read from, when it returns).
  A guard (``/* if: probe */``, tokentrail.sinks.migrations) is kept on every statement of the
  form, its probe naming the local table (``name = 't'`` -> ``name = 't_local'``): it is
  evaluated on that one node, whose local tables every DDL ON CLUSTER changed alike.

Why these sharding keys: ``FINAL``, ``ReplacingMergeTree`` merges and the insert deduplication
log all work *within one shard*. So every row that may be a duplicate of another must land on
the same shard, i.e. the key must be a function of values that duplicates share. A re-delivered
event repeats its tenant and trace id (they come from the event itself), so ``cityHash64(tenant,
trace_id)`` keeps every copy of an event on one shard, and keeps a whole trace there too (the
per-trace panels and the loop detector's rows group locally). Tables with no trace are sharded
by their own dedup key.
"""

from __future__ import annotations

import re

from .identifiers import check_identifier

__all__ = ["SHARDING_KEYS", "LOCAL_SUFFIX", "KEEPER_PATH", "cluster_form", "local_name", "split_guard"]

LOCAL_SUFFIX = "_local"
# {database} and {table} are expanded by the server too, but the table is spelled out so the path
# survives a RENAME and reads the same in Keeper as in the DDL.
KEEPER_PATH = "/clickhouse/tables/{{shard}}/{{database}}/{table}"

# Every table of the schema and the expression its Distributed table shards rows by; a table
# missing here is an error (a new migration must choose, see the module docstring).
SHARDING_KEYS: dict[str, str] = {
    "events": "cityHash64(tenant, trace_id)",
    "events_rekeyed": "cityHash64(tenant, trace_id)",  # migration 0012's copy of events: the same shards
    "calls": "cityHash64(tenant, trace_id)",
    "calls_rekeyed": "cityHash64(tenant, trace_id)",  # migration 0011's copy of calls: the same shards
    "tool_calls": "cityHash64(tenant, trace_id)",
    "pii_findings": "cityHash64(tenant, trace_id)",  # with the event it came from
    "loop_detections": "cityHash64(tenant, trace_id)",  # detection_id derives from (trace_id, kind)
    "deadletter": "cityHash64(id)",  # no trustworthy tenant or trace
    "receipts": "cityHash64(event_id)",  # dedup key (event_id, source); no tenant
    "variance": "cityHash64(tenant, feature)",  # the key's prefix: recomputed windows collapse
    "changes": "cityHash64(tenant, feature)",  # change_id derives from (tenant, feature, kind, ...)
    "budget_breaches": "cityHash64(scope, key)",
    "schema_migrations": "version",
    "insights_watermark": "cityHash64(name)",
    "insights_first_seen": "cityHash64(kind, tenant, feature)",  # the key's prefix: a value's rows collapse
    "insights_spend": "cityHash64(tenant, feature)",  # a recomputed bucket's rows collapse
    # Rollups: a minute's rows of one (tenant, feature, model, ...) come from many traces and
    # therefore many shards; each shard rolls up its own calls and readers sum over shards
    # (sums, counts and aggregate states add up). The key only spreads the rows.
    "calls_rollup": "cityHash64(tenant, feature, model)",
    "events_rollup": "cityHash64(tenant, feature, model)",
    "calls_rollup_30m": "cityHash64(tenant, feature, model)",
    "events_rollup_30m": "cityHash64(tenant, feature, model)",
    "latency_rollup": "cityHash64(tenant, feature, model)",  # histograms add up over shards like sums
    "latency_rollup_30m": "cityHash64(tenant, feature, model)",
    "trace_rollup": "cityHash64(tenant, trace_id)",  # like calls: each shard rolls up its own traces
    "trace_rollup_30m": "cityHash64(tenant, trace_id)",
    "trace_totals": "cityHash64(tenant, trace_id)",  # like calls: each shard totals its own traces
    "rollup_dirty": "cityHash64(tenant, bucket)",
    "rollup_watermark": "cityHash64(name)",
}

_CREATE_DATABASE = re.compile(r"^CREATE DATABASE IF NOT EXISTS (\w+)\s*$")
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*\(", re.DOTALL)
_ENGINE = re.compile(r"\bENGINE = (\w*MergeTree)(?:\(([^)]*)\))?")
_CREATE_VIEW = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+)\s+TO (\w+)\.(\w+)\b", re.DOTALL)
_ALTER = re.compile(r"^ALTER TABLE (\w+)\.(\w+)\s+(.*)$", re.DOTALL)
_GUARD = re.compile(r"^/\*\s*if:\s*(.*?)\s*\*/\s*", re.DOTALL)
_GUARD_TABLE = re.compile(r"\bname = '(\w+)'")
_TRUNCATE = re.compile(r"^TRUNCATE TABLE IF EXISTS (\w+)\.(\w+)\s*$")
_EXCHANGE = re.compile(r"^EXCHANGE TABLES (\w+)\.(\w+) AND (\w+)\.(\w+)\s*$")
_DROP_TABLE = re.compile(r"^DROP TABLE IF EXISTS (\w+)\.(\w+)\s*$")
_DROP_VIEW = re.compile(r"^DROP VIEW IF EXISTS (\w+)\.(\w+)\s*$")
_INSERT_SELECT = re.compile(r"^INSERT INTO \w+\.\w+\s+SELECT\b.*\bSETTINGS\b", re.DOTALL)
_CHECK = re.compile(r"^SELECT throwIf\(", re.DOTALL)
_COLUMN_CHANGE = re.compile(r"^\s*(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b", re.IGNORECASE)


def local_name(table: str) -> str:
    """The name of a table's per-shard (local) table in the cluster form."""
    return f"{table}{LOCAL_SUFFIX}"


def split_guard(statement: str) -> tuple[str | None, str]:
    """(the probe of the statement's guard ``/* if: probe */``, or None; the statement after it)."""
    match = _GUARD.match(statement.strip())
    return (match.group(1), statement.strip()[match.end() :]) if match else (None, statement.strip())


def cluster_form(statement: str, cluster: str) -> list[str]:
    """The statements a cluster named ``cluster`` runs for one single-node migration statement.

    Raises ``ValueError`` for a statement shape this module does not know (so a migration that
    would silently stay node-local on a cluster fails the tests instead) or a table with no
    sharding key in :data:`SHARDING_KEYS`.
    """
    check_identifier(cluster, "cluster name")
    probe, text = split_guard(statement)
    if probe is None:
        return _unguarded(text, cluster)
    probe = _GUARD_TABLE.sub(
        lambda m: f"name = '{local_name(m.group(1))}'" if m.group(1) in SHARDING_KEYS else m.group(0), probe
    )
    return [f"/* if: {probe} */\n{out}" for out in _unguarded(text, cluster)]


def _unguarded(text: str, cluster: str) -> list[str]:
    if match := _CREATE_DATABASE.match(text):
        return [f"CREATE DATABASE IF NOT EXISTS {match.group(1)} ON CLUSTER {cluster}"]
    if match := _CREATE_TABLE.match(text):
        return _table(text, match, cluster)
    if match := _CREATE_VIEW.match(text):
        return [_view(text, match, cluster)]
    if match := _ALTER.match(text):
        database, table, action = match.groups()
        local = f"ALTER TABLE {database}.{local_name(table)} ON CLUSTER {cluster} {action}"
        if _COLUMN_CHANGE.match(action):
            return [local, f"ALTER TABLE {database}.{table} ON CLUSTER {cluster} {action}"]
        return [local]
    if match := _TRUNCATE.match(text):
        database, table = match.groups()
        _sharding_key(table)
        return [f"TRUNCATE TABLE IF EXISTS {database}.{local_name(table)} ON CLUSTER {cluster}"]
    if match := _EXCHANGE.match(text):
        db1, one, db2, two = match.groups()
        _sharding_key(one), _sharding_key(two)
        return [f"EXCHANGE TABLES {db1}.{local_name(one)} AND {db2}.{local_name(two)} ON CLUSTER {cluster}"]
    if match := _DROP_TABLE.match(text):
        database, table = match.groups()
        _sharding_key(table)
        return [
            f"DROP TABLE IF EXISTS {database}.{table} ON CLUSTER {cluster}",
            f"DROP TABLE IF EXISTS {database}.{local_name(table)} ON CLUSTER {cluster} SYNC",
        ]
    if match := _DROP_VIEW.match(text):
        database, view = match.groups()
        return [f"DROP VIEW IF EXISTS {database}.{local_name(view)} ON CLUSTER {cluster}"]
    if _INSERT_SELECT.match(text):
        return [re.sub(r"\bSETTINGS\b", "SETTINGS distributed_foreground_insert = 1,", text, count=1)]
    if _CHECK.match(text):
        return [text]
    raise ValueError(f"no cluster form for this statement (teach tokentrail.sinks.cluster): {text[:120]!r}")


def _sharding_key(table: str) -> str:
    try:
        return SHARDING_KEYS[table]
    except KeyError:
        raise ValueError(
            f"table {table!r} has no sharding key: add it to tokentrail.sinks.cluster.SHARDING_KEYS "
            f"(a function of values every duplicate of a row shares)"
        ) from None


def _table(text: str, match: re.Match[str], cluster: str) -> list[str]:
    database, table = match.groups()
    key = _sharding_key(table)
    local = local_name(table)
    engine = _ENGINE.search(text)
    if engine is None:
        raise ValueError(f"{database}.{table}: only *MergeTree tables have a cluster form")
    name, args = engine.group(1), (engine.group(2) or "").strip()
    replicated_args = ", ".join(filter(None, [f"'{KEEPER_PATH.format(table=local)}'", "'{replica}'", args]))
    body = text[match.end() :]
    body = body.replace(engine.group(0), f"ENGINE = Replicated{name}({replicated_args})", 1)
    body = body.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
    return [
        f"CREATE TABLE IF NOT EXISTS {database}.{local} ON CLUSTER {cluster}\n({body}",
        f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {database}.{local}\n"
        f"ENGINE = Distributed({cluster}, {database}, {local}, {key})",
    ]


def _view(text: str, match: re.Match[str], cluster: str) -> str:
    database, view, target_db, target = match.groups()
    _sharding_key(target)  # the target must be a sharded table of the schema
    rest = text[match.end() :]
    # Every table the view reads becomes its shard-local table.
    rest = re.sub(
        rf"\b{re.escape(database)}\.(\w+)\b",
        lambda m: f"{database}.{local_name(m.group(1))}" if m.group(1) in SHARDING_KEYS else m.group(0),
        rest,
    )
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{local_name(view)} ON CLUSTER {cluster} "
        f"TO {target_db}.{local_name(target)}{rest}"
    )
