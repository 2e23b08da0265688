"""Choosing and opening the ClickHouse clickhouse: DSN forms, environment, embedded default, caching."""

from __future__ import annotations

import logging

import pytest

from tokentrail.sinks import ENV_CLICKHOUSE_URL, connect, connection, resolve_dsn


@pytest.mark.parametrize(
    "dsn",
    [
        "",
        "   ",
        "localhost:8123",
        "mysql://host/db",
        "clickhouse://host:9000",
        "http://",
        "http://:8123/db",
        "chdb://relative/path",
        "chdb:relative",
        "chdb://",
        "http://host:notaport/db",
    ],
)
def test_bad_dsn_names_the_accepted_forms(dsn):
    """A DSN we cannot use is a ValueError that lists what would work."""
    with pytest.raises(ValueError, match=r"accepted forms: http://.*chdb:///absolute/path.*chdb://memory"):
        resolve_dsn(dsn)


def test_bad_dsn_error_hides_the_password():
    """The error message repeats the DSN but not its secret."""
    with pytest.raises(ValueError) as info:
        resolve_dsn("ftp://writer:s3cret@host/db")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "http://user:pass@ch.example:8123/tokentrail",
        "https://ch.example:8443",
        "chdb:///var/lib/tt",
        "chdb://memory",
    ],
)
def test_good_dsns_pass_through(dsn, monkeypatch):
    """An explicit DSN wins over the environment and is returned unchanged."""
    monkeypatch.setenv(ENV_CLICKHOUSE_URL, "chdb:///from/env")
    assert resolve_dsn(dsn) == dsn


def test_environment_variable_is_used_without_argument(monkeypatch):
    """With no argument, TOKENTRAIL_CLICKHOUSE_URL decides."""
    monkeypatch.setenv(ENV_CLICKHOUSE_URL, "http://ch.internal:8123/tokentrail")
    assert resolve_dsn() == "http://ch.internal:8123/tokentrail"


def test_bad_environment_variable_is_a_value_error(monkeypatch):
    """A wrong value in the environment fails as loudly as a wrong argument."""
    monkeypatch.setenv(ENV_CLICKHOUSE_URL, "localhost")
    with pytest.raises(ValueError, match="accepted forms"):
        resolve_dsn()


def test_default_is_embedded_store_under_cwd_logged_once(monkeypatch, tmp_path, caplog):
    """Nothing configured: an absolute chdb:// path to ./.tokentrail/clickhouse, announced once at INFO."""
    monkeypatch.delenv(ENV_CLICKHOUSE_URL, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(connection, "_default_logged", False)
    with caplog.at_level(logging.INFO, logger="tokentrail.sinks.connection"):
        first, second = resolve_dsn(), resolve_dsn()
    expected = tmp_path.resolve() / ".tokentrail" / "clickhouse"
    assert first == second == f"chdb://{expected}"
    notes = [r.getMessage() for r in caplog.records if "no ClickHouse configured" in r.getMessage()]
    assert notes == [f"no ClickHouse configured; using embedded store at {expected}"]


def test_connect_reuses_one_client_per_path(clickhouse, engine_path):
    """Spellings of the same embedded path share one clickhouse (chDB allows one engine per process)."""
    assert connect(f"chdb://{engine_path}") is clickhouse
    assert connect(f"chdb://{engine_path}/") is clickhouse
    assert clickhouse.command("SELECT 1") == 1


def test_connect_through_environment(clickhouse, engine_path, monkeypatch):
    """connect() with no argument opens what the environment names."""
    monkeypatch.setenv(ENV_CLICKHOUSE_URL, f"chdb://{engine_path}")
    assert connect() is clickhouse


def test_second_embedded_path_is_refused_while_one_is_open(clickhouse, tmp_path):
    """Opening another path while the engine is up fails with instructions, not an engine error."""
    with pytest.raises(RuntimeError, match="close_embedded"):
        connect(f"chdb://{tmp_path / 'other'}")
    assert clickhouse.command("SELECT 1") == 1
