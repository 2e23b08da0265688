"""Fixtures for the dashboard tests: a seeded embedded ClickHouse per module (see dash_seed.py)."""

from __future__ import annotations

import pytest
from dash_seed import seed_store

from tokentrail.sinks import close_embedded


@pytest.fixture(scope="module")
def incident_store(tmp_path_factory):
    store = seed_store(tmp_path_factory.mktemp("incident"), anomalies=True, incident=True)
    yield store
    close_embedded()


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory):
    store = seed_store(tmp_path_factory.mktemp("clean"), anomalies=False, incident=False)
    yield store
    close_embedded()
