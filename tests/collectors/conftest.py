"""Fixtures shared by the collector tests: a collector whose events land in memory, decoded on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tokentrail.collectors as tt
from tokentrail.collectors.events import decode_event


@pytest.fixture
def memory() -> tt.InMemoryTransport:
    return tt.InMemoryTransport()


@pytest.fixture
def collector(memory: tt.InMemoryTransport) -> Iterator[tt.Collector]:
    c = tt.Collector(service="order-agent", transport=memory, tenant="northwind", register_atexit=False)
    yield c
    c.close()


def decoded(collector: tt.Collector, memory: tt.InMemoryTransport) -> list[Any]:
    """Flush, then every event sent so far, decoded with the contract; each must be valid."""
    assert collector.flush(5)
    events = [decode_event(value) for _, value in memory.records]
    assert all(not hasattr(e, "reason") for e in events), events
    return events


@pytest.fixture
def sent() -> Callable[[tt.Collector, tt.InMemoryTransport], list[Any]]:
    return decoded
