"""The worker's record of a failing store, kept across restarts in its data directory.

The sink counts failed attempts since the last successful insert (`stats["consecutive_failures"]`,
`stats["failing_since"]`), but a process that exits loses them. When the sink gives up
(`StoreUnavailable`, after `--store-max-attempts`) the worker writes them here before exiting
non-zero; the next start reads them back, logs how long the store has been failing and across how
many runs, and seeds its sink's counters so they keep counting; the first stored batch removes the
file. The Grafana rule "tokentrail ingestion stalled" alerts on the same condition from the store's
side (dashboards/alert_rules.py).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

__all__ = ["StoreHealth"]

log = logging.getLogger("tokentrail.worker")

FILE_NAME = "store-health.json"


class StoreHealth:
    """`<data_dir>/store-health.json`: failed attempts, since when, across how many worker runs."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self.failing = self.path.exists()

    def load(self) -> dict[str, Any]:
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def resume(self, sink: Any) -> dict[str, Any]:
        """At start: carry a previous run's failure count into `sink.stats`, and say so."""
        record = self.load()
        if not record:
            return {}
        stats = getattr(sink, "stats", None)
        if isinstance(stats, dict):
            stats["consecutive_failures"] = int(record.get("consecutive_failures", 0))
            stats["failing_since"] = float(record.get("failing_since", 0.0))
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(record.get("failing_since", 0.0))))
        log.error(
            "the store has been failing since %s: %d failed attempts across %d worker run(s); last error: %s",
            since,
            int(record.get("consecutive_failures", 0)),
            int(record.get("runs", 0)),
            record.get("last_error", ""),
        )
        return record

    def gave_up(self, sink: Any, error: BaseException) -> dict[str, Any]:
        """The sink spent its retry budget: record it for the next run."""
        previous = self.load()
        stats = getattr(sink, "stats", {}) or {}
        record = {
            "consecutive_failures": int(stats.get("consecutive_failures", 0)),
            "failing_since": float(stats.get("failing_since", 0.0)) or time.time(),
            "runs": int(previous.get("runs", 0)) + 1,
            "last_error": str(error)[:500],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(record))
        except OSError as exc:
            log.warning("cannot record the store's failure in %s: %s", self.path, exc)
        self.failing = True
        return record

    def stored(self) -> None:
        """A batch was stored: the store works again."""
        if self.failing:
            self.path.unlink(missing_ok=True)
            self.failing = False
            log.info("the store accepts inserts again")
