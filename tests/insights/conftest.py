"""Fixtures for the insight tests: one embedded ClickHouse (chDB) engine per module, a fresh
database per store, and generator traffic replayed through the real pipeline.

chDB hosts one engine path per process, so the engine is opened once per module and closed when
the module ends; each store is its own database inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tokentrail.sinks import ClickHouseSink, apply, close_embedded, connect
from tokentrail.stream.embedded import EmbeddedRunner
from tokentrail.stream.runtime import make_pipeline
from tokentrail.stream.stages import Inbound, now_utc
from tokentrail.stream.synthetic import GeneratorConfig, Traffic, generate


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory) -> Iterator:
    close_embedded()  # a previous module's engine, if any, must go before ours can open
    yield connect(f"chdb://{tmp_path_factory.mktemp('clickhouse')}")
    close_embedded()


@pytest.fixture(scope="module")
def new_db(clickhouse) -> Iterator[Callable[[], str]]:
    """Factory of freshly migrated databases, dropped when the module ends."""
    made: list[str] = []

    def make() -> str:
        name = f"tt_{uuid.uuid4().hex[:12]}"
        apply(clickhouse, database=name)
        made.append(name)
        return name

    yield make
    for name in made:
        clickhouse.command(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="module")
def replayed(clickhouse, new_db) -> Callable[[GeneratorConfig], tuple[str, Traffic]]:
    """Generate traffic and replay it through the real pipeline (validate ... BuildRows) into a new database."""

    def replay(config: GeneratorConfig) -> tuple[str, Traffic]:
        traffic = generate(config)
        database = new_db()
        runner = EmbeddedRunner(
            make_pipeline(prices=None, allow_ephemeral_key=True), ClickHouseSink(clickhouse, database=database)
        )
        runner.run(Inbound(f"gen:{n}", line.encode(), now_utc()) for n, line in enumerate(traffic.lines, 1))
        return database, traffic

    return replay
