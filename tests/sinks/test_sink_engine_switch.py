"""Switching the embedded engine between paths, which chDB allows only once the old one is closed."""

from __future__ import annotations

from tokentrail.sinks import close_embedded, connect


def test_closed_client_is_replaced_and_paths_can_switch(tmp_path):
    """After close_embedded() a new path opens, and a closed cached clickhouse is not handed out."""
    close_embedded()
    try:
        first = connect(f"chdb://{tmp_path / 'one'}")
        assert (tmp_path / "one").is_dir()
        first.close()  # a caller closing the shared clickhouse by mistake
        reopened = connect(f"chdb://{tmp_path / 'one'}")
        assert reopened is not first and reopened.command("SELECT 1") == 1
        close_embedded()
        second = connect(f"chdb://{tmp_path / 'two'}")
        assert second.command("SELECT 1") == 1
    finally:
        close_embedded()


def test_memory_engine(tmp_path):
    """chdb://memory gives a working in-memory engine."""
    close_embedded()
    try:
        memory = connect("chdb://memory")
        assert memory.command("SELECT 1") == 1
        assert connect("chdb://memory") is memory
    finally:
        close_embedded()
