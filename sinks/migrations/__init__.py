"""Versioned, idempotent schema migrations for tokentrail's ClickHouse tables.

Why files and not code: the schema is reviewed as SQL, and adding a table is adding one file
``sinks/migrations/NNNN_name.sql`` (append-only; never edit an applied one). Each file may
declare the default retention of the tables it creates on a line such as
``-- retention-days: alerts=90``; ``${ttl_alerts}`` in its SQL then becomes that number of days
(or the caller's override), and ``${database}`` the target database. Statements are separated by
a line ending in ``;``. Every statement must be safe to re-run (``IF NOT EXISTS``), because a
crash between a statement and the bookkeeping row re-runs the whole file.

Applied versions are recorded in ``<database>.schema_migrations``. Retention is a policy that
changes after tables exist, so an explicit ``ttl_days`` also rewrites the TTL of existing tables
(``ALTER TABLE ... MODIFY TTL``) when it differs; omitted tables keep whatever they have.

Applying is a deployment step (``tokentrail schema apply``), not something a worker does as it
starts: the worker calls :func:`check_schema_version` and refuses to run against an older schema.
Concurrent ``apply`` runs are safe: every statement is idempotent (``IF NOT EXISTS``), a version's
row is written only after its statements ran (whoever ran them), ``schema_migrations`` is a
``ReplacingMergeTree`` read with ``FINAL`` so two runs recording the same version collapse, and an
"already exists" error from a racing ``CREATE`` counts as done. The checksum covers the statements,
not the comments, so correcting a comment in an applied file is allowed; editing a statement is not.

A statement that is not idempotent by itself (a copy, an exchange of tables: migration 0011) starts
with a guard, ``/* if: <query returning one number> */``: :func:`apply` runs the query first and
skips the statement when it returns 0. Such a migration's guards describe its state (e.g. "calls
still has the old key"), so a run that died halfway resumes and a finished step is not repeated.
Guarded migrations are not safe to run concurrently with each other (``schema apply`` is one
deployment step; docs/storage.md).

Users, roles, grants and row policies are in :mod:`tokentrail.sinks.privileges` (they need
administrator rights the migrator role should not hold).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from ..cluster import cluster_form, local_name, split_guard
from ..identifiers import check_identifier

__all__ = [
    "Migration",
    "available",
    "load",
    "apply",
    "pending",
    "default_ttl_days",
    "DEFAULT_DATABASE",
    "required_version",
    "store_version",
    "check_schema_version",
    "SchemaVersionError",
    "schema_sql",
]

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "tokentrail"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_RETENTION_RE = re.compile(r"^--\s*retention-days:\s*(.+)$", re.MULTILINE)
_TTL_RE = re.compile(r"TTL (.+?) \+ toIntervalDay\((\d+)\)")
# A concurrent `schema apply` created it between our IF NOT EXISTS check and our CREATE.
_ALREADY_EXISTS_CODES = {"44", "57", "82"}  # ILLEGAL_COLUMN (duplicate), TABLE_/DATABASE_ALREADY_EXISTS
_CODE_RE = re.compile(r"\bCode: (\d+)\b")
# The bookkeeping table `apply` creates before reading which versions are applied.
_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS {database}.schema_migrations ("
    " version UInt32, name String, checksum String,"
    " applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
    ") ENGINE = ReplacingMergeTree ORDER BY version"
)
# On a cluster: DDL waits for every host (a missing host fails the apply, it is not skipped), and
# the bookkeeping insert through the Distributed table reaches its shard before apply returns.
_CLUSTER_INSERT_SETTINGS = {"distributed_foreground_insert": 1}


class SchemaVersionError(RuntimeError):
    """The store's schema is older than this code needs; ``found`` and ``required`` are versions."""

    def __init__(self, message: str, *, found: int, required: int) -> None:
        super().__init__(message)
        self.found = found
        self.required = required


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name, raw SQL and the retention defaults it declares."""

    version: int
    name: str
    sql: str = field(repr=False)
    retention_days: dict[str, int] = field(default_factory=dict)

    @property
    def checksum(self) -> str:
        """SHA-256 of the statements (comment lines and blank lines left out)."""
        code = "\n".join(line.rstrip() for line in self.sql.splitlines() if line.strip() and not _is_comment(line))
        return hashlib.sha256(code.encode()).hexdigest()

    def statements(self, database: str, ttl_days: dict[str, int]) -> list[str]:
        """The SQL statements with placeholders filled; a missing placeholder raises KeyError."""
        mapping = {"database": database, **{f"ttl_{t}": str(d) for t, d in ttl_days.items()}}
        # Comments go first: they may mention placeholders by way of documentation.
        body = "\n".join(line for line in self.sql.splitlines() if not _is_comment(line))
        body = Template(body).substitute(mapping)
        return [s.strip() for s in re.split(r";[ \t]*$", body, flags=re.MULTILINE) if s.strip()]


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("--")


def available() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    return load(resources.files(__name__))


def load(folder: Traversable | Path) -> list[Migration]:
    """Read ``NNNN_name.sql`` files from ``folder``; other files are ignored."""
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if not match:
            continue
        sql = entry.read_text(encoding="utf-8")
        retention: dict[str, int] = {}
        for line in _RETENTION_RE.findall(sql):
            for pair in line.split():
                table, _, days = pair.partition("=")
                retention[table] = int(days)
        found.append(Migration(int(match.group(1)), match.group(2), sql, retention))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {folder}: {versions}")
    return found


def default_ttl_days() -> dict[str, int]:
    """Retention per table, in days, as the migration files declare it."""
    merged: dict[str, int] = {}
    for migration in available():
        merged.update(migration.retention_days)
    return merged


def _check_database(database: str) -> str:
    return check_identifier(database, "database name")


def _resolve_ttl(ttl_days: dict[str, int] | None) -> dict[str, int]:
    """Defaults overlaid with the caller's values, validated loudly (this is configuration)."""
    merged = default_ttl_days()
    for table, days in (ttl_days or {}).items():
        if table not in merged:
            raise ValueError(f"ttl_days names unknown table {table!r}; tables with retention: {sorted(merged)}")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValueError(f"ttl_days[{table!r}] must be a whole number of days >= 1, got {days!r}")
    merged.update(ttl_days or {})
    return merged


def _applied(client: Client, database: str) -> dict[int, str]:
    """Applied version -> checksum; empty when the bookkeeping table does not exist yet."""
    exists = client.command(f"EXISTS TABLE {database}.schema_migrations")
    if str(exists).strip() != "1":
        return {}
    rows = client.query(f"SELECT version, checksum FROM {database}.schema_migrations FINAL").result_rows
    return {int(version): checksum for version, checksum in rows}


def pending(client: Client, *, database: str = DEFAULT_DATABASE) -> list[Migration]:
    """Migrations not yet applied to ``database``, in the order ``apply`` would run them."""
    done = _applied(client, _check_database(database))
    return [m for m in available() if m.version not in done]


def schema_sql(
    *, database: str = DEFAULT_DATABASE, cluster: str | None = None, ttl_days: dict[str, int] | None = None
) -> list[str]:
    """Every statement ``apply`` would run on an empty store, in order, without a server.

    ``cluster=None`` is the single-node form (the default); a cluster name gives the cluster form
    (:mod:`tokentrail.sinks.cluster`). What ``tokentrail schema sql [--cluster NAME]`` prints.
    """
    _check_database(database)
    ttl = _resolve_ttl(ttl_days)
    statements = [f"CREATE DATABASE IF NOT EXISTS {database}", _BOOKKEEPING.format(database=database)]
    for migration in available():
        statements += migration.statements(database, ttl)
    if cluster is None:
        return statements
    return [out for statement in statements for out in cluster_form(statement, cluster)]


def apply(
    client: Client,
    *,
    database: str = DEFAULT_DATABASE,
    ttl_days: dict[str, int] | None = None,
    cluster: str | None = None,
    lock_wait_seconds: float = 3600.0,
) -> list[int]:
    """Apply pending migrations to ``database``; return the versions applied by this call.

    A migration with guarded statements (a table rebuild) runs under a lock (:func:`_lock`): a
    concurrent ``apply`` waits up to ``lock_wait_seconds`` for it to be recorded.

    Re-running is a no-op (returns ``[]``) unless ``ttl_days`` names a table whose current
    retention differs, which is then altered in place. With ``cluster`` every statement runs in
    its cluster form (``ON CLUSTER``, Replicated locals behind Distributed tables), from any one
    node of that cluster.
    """
    _check_database(database)
    ttl = _resolve_ttl(ttl_days)

    def run(statement: str) -> None:
        for one in [statement] if cluster is None else cluster_form(statement, cluster):
            probe, body = split_guard(one)
            if probe is not None and not int(str(client.command(probe))):
                log.info("skipped (its guard says done): %s", body.splitlines()[0])
                continue
            _run_idempotent(client, one)

    run(f"CREATE DATABASE IF NOT EXISTS {database}")
    run(_BOOKKEEPING.format(database=database))
    done = _applied(client, database)
    applied: list[int] = []
    for migration in available():
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                log.warning(
                    "migration %04d_%s changed after it was applied; migrations are append-only, "
                    "put schema changes in a new file",
                    migration.version,
                    migration.name,
                )
            continue
        statements = migration.statements(database, ttl)
        guarded = any(split_guard(statement)[0] is not None for statement in statements)
        if guarded and not _lock(client, database, migration, lock_wait_seconds):
            continue  # another apply ran it while this one waited
        try:
            for statement in statements:
                run(statement)
            client.insert(
                f"{database}.schema_migrations",
                [[migration.version, migration.name, migration.checksum]],
                column_names=["version", "name", "checksum"],
                settings=_CLUSTER_INSERT_SETTINGS if cluster else None,
            )
        finally:
            if guarded:
                client.command(f"DROP TABLE IF EXISTS {database}.{_lock_name(migration)}")
        log.info("applied migration %04d_%s to %s", migration.version, migration.name, database)
        applied.append(migration.version)
    if ttl_days:
        _reconcile_ttl(client, database, ttl_days, cluster)
    return applied


def _lock_name(migration: Migration) -> str:
    return f"schema_lock_{migration.version:04d}"


def _lock(client: Client, database: str, migration: Migration, wait_seconds: float) -> bool:
    """Take the lock of a guarded migration; False when another apply recorded it meanwhile.

    The lock is a table, ``<database>.schema_lock_NNNN``, created without IF NOT EXISTS: of
    concurrent creators exactly one succeeds (on the node ``apply`` talks to: concurrent cluster
    applies must talk to the same node). The holder drops it when done, whether it succeeded or
    failed. A holder that died (killed, host lost) leaves it behind: the next apply waits
    ``wait_seconds``, then fails naming the table to drop once no apply is running; the guards then
    make the migration resume where it stopped.
    """
    name = f"{database}.{_lock_name(migration)}"
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            client.command(f"CREATE TABLE {name} (holder String) ENGINE = Log")
        except DatabaseError as exc:
            match = _CODE_RE.search(str(exc))
            if match is None or match.group(1) not in _ALREADY_EXISTS_CODES:
                raise
        else:
            if migration.version in _applied(client, database):  # recorded just before we took it
                client.command(f"DROP TABLE IF EXISTS {name}")
                return False
            return True
        if migration.version in _applied(client, database):
            return False
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"migration {migration.version:04d}_{migration.name} is locked by {name} (another `schema apply` "
                f"is running it, or one died): if none is running, DROP TABLE {name} and apply again; "
                "it resumes where it stopped"
            )
        time.sleep(0.2)


def _reconcile_ttl(client: Client, database: str, ttl_days: dict[str, int], cluster: str | None) -> None:
    """Bring existing tables' TTL to the requested days, keeping each table's TTL expression.

    On a cluster the TTL lives on the local tables; this node's copy tells the current value.
    """
    for name, days in ttl_days.items():
        table = name if cluster is None else local_name(name)
        rows = client.query(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": database, "t": table},
        ).result_rows
        match = _TTL_RE.search(rows[0][0]) if rows else None
        if match is None or int(match.group(2)) == days:
            continue
        on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
        client.command(f"ALTER TABLE {database}.{table}{on_cluster} MODIFY TTL {match.group(1)} + INTERVAL {days} DAY")
        log.info("retention of %s.%s changed from %s to %d days", database, table, match.group(2), days)


def _run_idempotent(client: Client, statement: str) -> None:
    try:
        client.command(statement)
    except DatabaseError as exc:
        match = _CODE_RE.search(str(exc))
        if match is None or match.group(1) not in _ALREADY_EXISTS_CODES:
            raise
        log.info("a concurrent schema apply got there first: %s", str(exc).splitlines()[0])


def required_version() -> int:
    """The schema version this code needs: the highest migration shipped with it."""
    return max((m.version for m in available()), default=0)


def store_version(client: Client, *, database: str = DEFAULT_DATABASE) -> int:
    """The store's schema version: the highest version N such that 1..N are all applied (0 if none)."""
    done = _applied(client, _check_database(database))
    version = 0
    for migration in available():
        if migration.version not in done:
            break
        version = migration.version
    newer = [v for v in done if v > required_version()]
    return max([version, *newer]) if version == required_version() else version


def check_schema_version(client: Client, *, database: str = DEFAULT_DATABASE) -> int:
    """Return the store's schema version, or raise :class:`SchemaVersionError` if it is too old.

    What a worker calls at start instead of migrating. A store ahead of this code (a newer
    ``schema apply`` ran) is accepted: migrations only add. A store that cannot be reached
    raises the driver's error (an infrastructure failure, not a version problem).
    """
    found = store_version(client, database=database)
    required = required_version()
    if found < required:
        raise SchemaVersionError(
            f"the store {database!r} is at schema version {found}, this worker needs {required}: "
            f"run `tokentrail schema apply` (with the migrator's credentials) first",
            found=found,
            required=required,
        )
    return found
