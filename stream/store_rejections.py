"""Rows the store refused become dead letters of their event (`reason: store_rejected`).

The sink leaves out a row it cannot take and withholds the other rows of the same event
(`ClickHouseSink.write_batch` -> `WriteResult.rejected`), so the event is stored whole or not at
all. Both drivers (the embedded runner and the worker) turn each rejected event into one dead
letter naming the table and column, and write those in a second insert; the event then counts as
a dead letter, not as accepted. The payload is the event's `events` row payload, which is already
redacted; a rejected dead-letter row is logged and dropped, never dead-lettered again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .rows import DEADLETTER_NAMESPACE

__all__ = ["STORE_REJECTED", "rejected_dead_letters"]

log = logging.getLogger("tokentrail.stream")

STORE_REJECTED = "store_rejected"
_EVENT_TABLES = ("events", "calls", "tool_calls", "receipts", "pii_findings")  # rows whose identity is event_id


def rejected_dead_letters(rows: Mapping[str, Sequence[Mapping[str, Any]]], result: Any) -> list[dict[str, Any]]:
    """One dead-letter row per event with a rejected row (the first rejection names the column).

    `result`: the sink's `WriteResult` (a sink that returns None rejected nothing).
    """
    rejected = getattr(result, "rejected", None) or []
    events = {str(row["event_id"]): row for row in rows.get("events", ())}
    sources = {str(row["event_id"]): row["source"] for row in rows.get("receipts", ())}
    letters: dict[str, dict[str, Any]] = {}
    for rejection in rejected:
        if rejection.table not in _EVENT_TABLES or not rejection.event_id:
            # A dead letter or a detection the store refused: not an event; the sink has logged it.
            log.error(
                "%s row %s refused by the store, dropped: %s", rejection.table, rejection.event_id, rejection.reason
            )
            continue
        if rejection.event_id in letters:
            continue
        event = events.get(rejection.event_id, {})
        column = f"{rejection.table}.{rejection.column}" if rejection.column else rejection.table
        letters[rejection.event_id] = {
            "id": uuid.uuid5(DEADLETTER_NAMESPACE, f"{STORE_REJECTED}\x00{rejection.event_id}"),
            "received_at": event.get("received_at") or _now(),
            "reason": STORE_REJECTED,
            "field": column,
            "detail": rejection.reason[:1000],
            "source": sources.get(rejection.event_id, ""),
            "payload": event.get("payload", ""),
            "redaction_key_id": event.get("redaction_key_id", ""),
        }
    return list(letters.values())


def _now() -> Any:
    from .batch import now_utc

    return now_utc()
