"""Fixtures and hypothesis profiles of the fuzz suite.

Profiles (chosen by ``HYPOTHESIS_PROFILE``; else ``ci`` when ``CI=true``; else ``local``):

- ``ci``: derandomized (the same examples on every run, so a red CI run is reproducible), no example
  database, few examples, a per-example deadline: the whole in-process suite stays within ~90 s.
- ``local``: random, many more examples, the failure database on: a deeper search for a developer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# The worker harness lives with the stream tests; the pills test reuses it.
_STREAM_TESTS = Path(__file__).resolve().parents[1] / "stream"
if str(_STREAM_TESTS) not in sys.path:
    sys.path.insert(0, str(_STREAM_TESTS))

# Hypothesis' examples and caches under .cache/ (git-ignored), not .hypothesis/ in the working directory.
set_hypothesis_home_dir(Path(__file__).resolve().parents[2] / ".cache" / "hypothesis")

_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=40,
    deadline=timedelta(seconds=10),
    suppress_health_check=_SLOW_IS_FINE,
    print_blob=True,
)
settings.register_profile(
    "local",
    max_examples=400,
    deadline=timedelta(seconds=20),
    suppress_health_check=_SLOW_IS_FINE,
    print_blob=True,
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() == "true" else "local")
)


@pytest.fixture(scope="session")
def fuzz_pipeline() -> Any:
    """The replay pipeline (redaction with an ephemeral key, bundled prices), built once: Presidio loads slowly."""
    from tokentrail.stream.runtime import make_pipeline

    return make_pipeline(prices=None, allow_ephemeral_key=True)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """`.client` and `.sink` (a ClickHouseSink) on a fresh embedded chDB store with the migrations applied."""
    from tokentrail.sinks import close_embedded
    from tokentrail.stream.runtime import open_store

    close_embedded()
    client, sink = open_store(f"chdb://{tmp_path_factory.mktemp('fuzz-store')}/store")
    yield SimpleNamespace(client=client, sink=sink)
    close_embedded()


@pytest.fixture(autouse=True)
def no_leftover_workers() -> Iterator[None]:
    """A failed assertion must not leave a worker process running after its test."""
    yield
    from kafka_harness import kill_leftovers

    kill_leftovers()
