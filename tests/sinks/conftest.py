"""Fixtures for the sink tests: a real embedded ClickHouse (chDB) in a temporary directory.

chDB hosts one engine path per process, so the engine is opened once per test module and closed
when the module ends (other test packages may need their own path); each test gets its own
freshly migrated db inside it for isolation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from tokentrail.sinks import apply, close_embedded, connect


@pytest.fixture(scope="module")
def engine_path(tmp_path_factory):
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture(scope="module")
def clickhouse(engine_path):
    close_embedded()  # a previous module's engine, if any, must go before ours can open
    ch = connect(f"chdb://{engine_path}")
    yield ch
    close_embedded()


@pytest.fixture
def db(clickhouse):
    name = f"tt_{uuid.uuid4().hex[:12]}"
    apply(clickhouse, database=name)
    yield name
    clickhouse.command(f"DROP DATABASE IF EXISTS {name}")


class FlakyClient:
    """A real client whose first ``failures`` inserts raise, as a dropped connection would.

    With ``after_write=True`` the failing inserts really reach ClickHouse before raising: the
    nasty case where the server stored the block but the client never heard back.
    """

    def __init__(self, real, failures: int, *, after_write: bool = False):
        self._client = real
        self.failures = failures
        self.after_write = after_write
        self.insert_calls = 0

    def insert(self, *args, **kwargs):
        self.insert_calls += 1
        if self.failures > 0:
            self.failures -= 1
            if self.after_write:
                self._client.insert(*args, **kwargs)
            raise OperationalError("injected: connection reset by peer")
        return self._client.insert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def flaky():
    return FlakyClient


NOW = datetime.now(UTC).replace(microsecond=123000)


def call_row(**overrides) -> dict:
    """One `calls` row as the stream processor builds it."""
    row = {
        "event_id": str(uuid.uuid4()),
        "ts": NOW,
        "trace_id": "d40cca85f0f54f30445a3577e18a0a5a",
        "span_id": "bcca95bf8e2f8559",
        "parent_span_id": "",
        "session_id": "sess-1",
        "tenant": "northwind",
        "service": "order-agent",
        "environment": "production",
        "feature": "order-support",
        "user": "u_5f2a",
        "provider": "openai",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "prompt_id": "order_assistant",
        "prompt_version": "v3",
        "system_prompt_hash": "a" * 16,
        "prompt_hash": "b" * 16,
        "input_tokens": 812,
        "cached_input_tokens": 512,
        "output_tokens": 24,
        "reasoning_tokens": 0,
        "cost_usd": Decimal("0.002155000000"),
        "priced": True,
        "latency_ms": 1480.5,
        "ttft_ms": 310.0,
        "status": "ok",
        "finish_reason": "tool_calls",
        "error_type": "",
        "tool_call_count": 1,
        "tool_names": ["search_orders"],
        "output_text": "",
        "output_hash": "c" * 16,
    }
    row.update(overrides)
    return row


def event_row(**overrides) -> dict:
    row = {
        "event_id": uuid.uuid4(),
        "type": "output",
        "ts": NOW,
        "received_at": NOW + timedelta(seconds=1),
        "trace_id": "t1",
        "span_id": "s1",
        "parent_span_id": "",
        "session_id": "",
        "tenant": "northwind",
        "service": "order-agent",
        "environment": "production",
        "feature": "order-support",
        "user": "",
        "provider": "openai",
        "model": "gpt-4o",
        "payload": '{"schema_version": 1}',
    }
    row.update(overrides)
    return row


def tool_call_row(**overrides) -> dict:
    row = {
        "event_id": uuid.uuid4(),
        "ts": NOW,
        "trace_id": "t1",
        "span_id": "s2",
        "parent_span_id": "s1",
        "tenant": "northwind",
        "service": "order-agent",
        "environment": "production",
        "feature": "order-support",
        "tool_name": "search_orders",
        "call_id": "call_1",
        "arguments": '{"order": "7781"}',
        "result": '{"status": "shipped"}',
        "status": "ok",
        "duration_ms": None,
    }
    row.update(overrides)
    return row


def deadletter_row(**overrides) -> dict:
    row = {
        "id": uuid.uuid5(uuid.NAMESPACE_URL, "tokentrail.events/3@1234"),
        "received_at": NOW,
        "reason": "invalid_json",
        "field": "",
        "detail": "Expecting value: line 1 column 1",
        "source": "tokentrail.events/3@1234",
        "payload": "{not json",
    }
    row.update(overrides)
    return row


def receipt_row(**overrides) -> dict:
    row = {"event_id": uuid.uuid4(), "source": "tokentrail.events/3@1234", "received_at": NOW}
    row.update(overrides)
    return row


@pytest.fixture
def rows():
    """Factories for rows of each core table, keyed by table name."""
    return {
        "calls": call_row,
        "events": event_row,
        "tool_calls": tool_call_row,
        "deadletter": deadletter_row,
        "receipts": receipt_row,
    }
