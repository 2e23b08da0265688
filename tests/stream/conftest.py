"""A failed assertion must not leave a worker process running after its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka_harness import STARTED


@pytest.fixture(autouse=True)
def no_leftover_workers() -> Iterator[None]:
    yield
    while STARTED:
        worker = STARTED.pop()
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
