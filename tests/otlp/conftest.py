"""The OTLP tests reuse the worker tests' Kafka harness (tests/stream/kafka_harness.py), and like
them never leave a worker or a collector process running after a test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_STREAM_TESTS = str(Path(__file__).resolve().parent.parent / "stream")
if _STREAM_TESTS not in sys.path:
    sys.path.insert(0, _STREAM_TESTS)

from kafka_harness import kill_leftovers  # noqa: E402  (needs the sys.path entry above)


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    yield
    kill_leftovers()
