"""Read a chDB store another process wrote: counts, and a search of every table for planted values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass
class StoreContents:
    event_ids: set[str]
    dead_reasons: Counter[str]
    leaks: dict[str, list[str]]  # needle -> tables holding it


def read_back(store: Path, needles: list[str]) -> StoreContents:
    """Open the embedded store (its writer has exited), read what the checks need, close it again."""
    from tokentrail.sinks import close_embedded, connect

    close_embedded()
    client = connect(f"chdb://{store}")
    try:
        ids = {str(row[0]) for row in client.query("SELECT event_id FROM tokentrail.events FINAL").result_rows}
        reasons = client.query("SELECT reason, count() FROM tokentrail.deadletter FINAL GROUP BY reason").result_rows
        tables = client.query(
            "SELECT name FROM system.tables WHERE database = 'tokentrail' AND engine NOT LIKE '%View%'"
        ).result_rows
        leaks: dict[str, list[str]] = {}
        for (table,) in tables:
            # Aggregate states (the dashboards' rollups) hold numbers only, and the client cannot read them.
            columns = [
                f"`{name}`"
                for (name,) in client.query(
                    "SELECT name FROM system.columns WHERE database = 'tokentrail' AND table = {t:String}"
                    " AND type NOT LIKE 'AggregateFunction%'",
                    parameters={"t": table},
                ).result_rows
            ]
            rows = client.query(f"SELECT {', '.join(columns)} FROM tokentrail.`{table}`").result_rows
            text = "\n".join(repr(row) for row in rows)
            for needle in needles:
                if needle.lower() in text.lower():
                    leaks.setdefault(needle, []).append(table)
        return StoreContents(ids, Counter({reason: count for reason, count in reasons}), leaks)
    finally:
        close_embedded()
