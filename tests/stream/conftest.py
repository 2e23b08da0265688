"""A failed assertion must not leave a worker process running after its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka_harness import kill_leftovers


@pytest.fixture(autouse=True)
def no_leftover_workers() -> Iterator[None]:
    yield
    kill_leftovers()
