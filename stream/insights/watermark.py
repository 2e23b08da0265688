"""How far the insights job got: `covered_until` of its last successful run, kept in the store.

Why in the store and not in the worker: the job runs on whichever worker leads (see
`tokentrail.stream.faust_worker.insights_job`), and a restart or a leader change must continue
where the previous run stopped, neither repeating nor skipping a window. The table keeps one row
per run (ReplacingMergeTree(covered_until), migration 0009); the furthest row is the watermark,
read with max() so unmerged parts and a racing second writer cannot move it back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["JOB", "read_watermark", "write_watermark"]

JOB = "insights"


def read_watermark(client: Any, database: str = "tokentrail", *, name: str = JOB) -> datetime | None:
    """The `now` of the last successful run (aware UTC), or None before the first one."""
    covered, runs = client.query(
        f"SELECT max(covered_until), count() FROM {database}.insights_watermark WHERE name = {{n:String}}",
        parameters={"n": name},
    ).result_rows[0]
    if not runs:
        return None
    ts: datetime = covered
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def write_watermark(sink: Any, covered_until: datetime, *, name: str = JOB) -> None:
    """Record a successful run; an older value than the stored one changes nothing (max wins)."""
    token = f"insights-watermark-{name}-{covered_until.isoformat()}"
    sink.write_batch({"insights_watermark": [{"name": name, "covered_until": covered_until}]}, token)
