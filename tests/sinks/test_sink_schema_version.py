"""Migrations as a deployment step: concurrent `schema apply` runs, and the worker's version check."""

from __future__ import annotations

import threading
import uuid

import pytest

from tokentrail.sinks import SchemaVersionError, apply, available, check_schema_version, required_version


@pytest.fixture
def fresh(clickhouse):
    name = f"tt_{uuid.uuid4().hex[:12]}"
    yield name
    clickhouse.command(f"DROP DATABASE IF EXISTS {name}")


def test_concurrent_applies_leave_one_complete_schema(clickhouse, fresh):
    """Four `schema apply` runs racing on an empty store all succeed; every version is recorded once under FINAL."""
    errors: list[BaseException] = []
    results: list[list[int]] = []

    def run():
        try:
            results.append(apply(clickhouse, database=fresh))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 4
    versions = [m.version for m in available()]
    assert sorted({v for r in results for v in r}) == versions  # every version applied by someone
    recorded = clickhouse.query(f"SELECT version FROM {fresh}.schema_migrations FINAL ORDER BY version").result_rows
    assert [v for (v,) in recorded] == versions
    assert check_schema_version(clickhouse, database=fresh) == required_version()


def test_worker_refuses_an_empty_store_with_the_command_to_run(clickhouse, fresh):
    """No schema at all: version 0, and the message says what to run."""
    with pytest.raises(
        SchemaVersionError, match=r"schema version 0, this worker needs \d+: run `tokentrail schema apply`"
    ):
        check_schema_version(clickhouse, database=fresh)


def test_worker_refuses_an_older_store(clickhouse, fresh):
    """A store missing the newest migration is too old; once applied, the check passes."""
    apply(clickhouse, database=fresh)
    newest = required_version()
    clickhouse.command(
        f"ALTER TABLE {fresh}.schema_migrations DELETE WHERE version = {newest} SETTINGS mutations_sync = 1"
    )
    with pytest.raises(SchemaVersionError) as info:
        check_schema_version(clickhouse, database=fresh)
    assert (info.value.found, info.value.required) == (newest - 1, newest)
    assert apply(clickhouse, database=fresh) == [newest]
    assert check_schema_version(clickhouse, database=fresh) == newest


def test_a_newer_store_is_accepted(clickhouse, fresh):
    """A store migrated by newer code (a version this code does not ship) still passes: migrations only add."""
    apply(clickhouse, database=fresh)
    clickhouse.insert(
        f"{fresh}.schema_migrations", [[9999, "future", "x"]], column_names=["version", "name", "checksum"]
    )
    assert check_schema_version(clickhouse, database=fresh) == 9999
