"""`tokentrail replay`: JSON Lines of wire events through the embedded pipeline into ClickHouse.

Then the insights over everything stored, and either a one-line count on stderr or the report
read back from the store (`report.build_report`) as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tokentrail.collectors.event_bounds import TsWindow

from .embedded import RunStats
from .runtime import check_key_for_store, finish_run, open_store, replay_source
from .validate_stage import DEFAULT_TS_WINDOW_DAYS, parse_ts_window_days

__all__ = ["ReplaySettings", "run_replay"]


@dataclass(frozen=True)
class ReplaySettings:
    """What to replay where; validated when built (a bad budgets file or a missing input fails before any work)."""

    source: str  # a JSON Lines file, or "-" for stdin
    clickhouse: str | None = None  # DSN; None: $TOKENTRAIL_CLICKHOUSE_URL, else the embedded store
    prices: str | None = None
    batch_size: int = 5_000
    budgets: str | None = None
    report_json: bool = False
    ts_window_days: str = DEFAULT_TS_WINDOW_DAYS  # BACK:AHEAD around the time each line is read

    def __post_init__(self) -> None:
        parse_ts_window_days(self.ts_window_days)
        if self.batch_size <= 0:
            raise ValueError(f"--batch-size must be positive, got {self.batch_size}")
        if self.source != "-" and not Path(self.source).is_file():
            raise ValueError(f"no such file: {self.source} (give a JSON Lines file, or - for stdin)")
        if self.budgets:
            from .insights.budgets import load_budgets

            load_budgets(self.budgets)

    @property
    def ts_window(self) -> TsWindow:
        return parse_ts_window_days(self.ts_window_days)


def run_replay(settings: ReplaySettings, *, stdin: IO[bytes] | None = None, stdout: IO[str] | None = None) -> int:
    """Replay `settings.source` into the store, run the insights, print the outcome. Returns the exit status."""
    stdout = stdout or sys.stdout
    from tokentrail.redaction import load_key

    key = load_key(allow_ephemeral=True)
    check_key_for_store(settings.clickhouse, key)  # an ephemeral key only for an embedded store
    client, sink = open_store(settings.clickhouse)

    def replay(stream: IO[bytes], name: str) -> RunStats:
        return replay_source(
            stream,
            name,
            client,
            sink,
            prices=settings.prices,
            batch_size=settings.batch_size,
            ts_window=settings.ts_window,
            redaction_key=key,
        )

    if settings.source == "-":
        stats = replay(stdin or sys.stdin.buffer, "stdin")
    else:
        path = Path(settings.source)
        with open(path, "rb") as stream:
            stats = replay(stream, path.name)
    finish_run(client, budgets=settings.budgets)
    if settings.report_json:
        from .report import build_report

        report = build_report(client, stats.read)
        if stats.otlp:
            report["otlp"] = stats.otlp  # what the OTLP lines held (docs/otlp.md)
        json.dump(report, stdout, indent=2, sort_keys=True)
        stdout.write("\n")
    else:
        print(
            f"read {stats.read} lines: {stats.accepted} accepted, {stats.duplicates} duplicates, "
            f"{stats.deadletter} dead letters ({stats.store_rejected} refused by the store)"
            + (_otlp_summary(stats.otlp) if stats.otlp else ""),
            file=sys.stderr,
        )
    return 0


def _otlp_summary(counts: dict[str, int]) -> str:
    """The OTLP lines' share of the summary: spans in, events out, and what was skipped."""
    return (
        f"; {counts['messages']} OTLP lines: {counts['spans']} spans -> {counts['events']} events, "
        f"{counts['not_genai']} not GenAI, {counts['agent_context']} agent spans"
    )
