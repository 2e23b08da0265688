"""Time every dashboard panel query (and every alert and variable query) on 10 million calls in embedded ClickHouse.

Run: .venv/bin/python benchmarks/dashboards.py [--calls 10000000] [--path DIR] [--repeat 5] [--range default|24h|7d]
     [--compare REV [--markdown]]

The store is seeded in SQL (benchmarks/dashboard_seed.py: 10M calls over 7 days, plus receipts,
dead letters, PII findings, loops, variance, changes and breaches in proportion, and 1% of calls
re-delivered into their own part so FINAL has duplicates to collapse; events derived from the
calls). `--path` keeps the store between runs: seeding is skipped when it already holds exactly
`--calls` calls, and a store seeded for another count is emptied and seeded afresh. Each query is the exact SQL
Grafana would send: variables set to "All", macros expanded for the range (`default` = each
dashboard's own default range, 6h, or 1h for Pipeline health), one warm-up run, then the median
of `--repeat` runs, in wall time and in CPU time of this process (chDB runs in it: CPU time moves
far less with other processes' load). Goal: every panel <= 300 ms median. `--compare REV` times
each panel's SQL as git revision REV generated it against the working tree's, alternately
(benchmarks/dashboards_compare.py): the before/after figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path

from _common import cpu_seconds, median, print_table
from dashboard_seed import DAYS, seed_calls, seed_events, seed_side_tables
from dashboards_compare import compare

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.build import variable_query
from tokentrail.dashboards.catalog import DASHBOARDS
from tokentrail.dashboards.macros import TimeRange, expand_macros, render
from tokentrail.dashboards.queries import Selection, last, panel_sql, variable_options
from tokentrail.dashboards.spec import FILTER_VARIABLES
from tokentrail.sinks import apply, close_embedded, connect
from tokentrail.sinks.rollups import ROLLUPS, TRACE_TOTALS, refresh

GOAL_MS = 300.0
SEEDED_TABLES = (
    "calls",
    "events",
    "receipts",
    "deadletter",
    "pii_findings",
    "loop_detections",
    "variance",
    "changes",
    "budget_breaches",
)
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=DAYS)}


def _duration(text: str) -> timedelta:
    number, unit = int(text[4:-1]), text[-1]  # "now-6h"
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: number})


def timed(client, sql: str, repeat: int) -> tuple[float, float, int]:
    """Median wall and process CPU milliseconds of `repeat` runs after a warm-up, and the row count."""
    rows = len(client.query(sql).result_rows)  # warm-up (and the row count)
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, started = cpu_seconds(os.getpid()), time.perf_counter()
        client.query(sql)
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((cpu_seconds(os.getpid()) - cpu) * 1000)
    return median(walls), median(cpus), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--path", type=Path, default=None, help="store directory to create or reuse")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--range", choices=("default", *RANGES), default="default")
    parser.add_argument("--top", type=int, default=15, help="how many of the slowest queries to print")
    parser.add_argument("--compare", metavar="REV", help="time each panel's SQL at git revision REV against now")
    parser.add_argument("--markdown", action="store_true", help="with --compare: print a Markdown table")
    args = parser.parse_args(argv)

    path = args.path or Path(tempfile.mkdtemp(prefix="tt-dash-bench-"))
    close_embedded()
    client = connect(f"chdb://{path.resolve()}")
    apply(client)
    # Distinct ids: the seed adds 1% re-delivered duplicates on purpose.
    have = client.query("SELECT uniqExact(event_id) FROM tokentrail.calls").result_rows[0][0]
    if have != args.calls:
        # Every seeded table goes, not only calls: side tables and events are derived from the count.
        for table in SEEDED_TABLES:
            client.command(f"TRUNCATE TABLE IF EXISTS tokentrail.{table}")
        print(f"seeding {args.calls:,} calls in {path} ...", file=sys.stderr)
        calls_s = seed_calls(client, args.calls)
        print(f"  calls: {calls_s:.1f}s; other tables: {seed_side_tables(client, args.calls):.1f}s", file=sys.stderr)
    if client.query("SELECT count() FROM tokentrail.events").result_rows[0][0] == 0:
        print(f"  events: {seed_events(client):.1f}s", file=sys.stderr)
    # The rollups the wide-range panels read (sinks/migrations/0008_rollups.sql): built in full on a
    # fresh store, incremental afterwards, as the insights leader runs it each minute.
    for done in refresh(client):
        kind = "full build" if done.full else "refresh"
        print(f"  {done.rollup}: {kind} of {done.buckets:,} bucket(s) in {done.seconds:.1f}s", file=sys.stderr)
    # Superseded rollup rows (a rebuild's old computations; the trace totals' deleted rows) go as background
    # merges would remove them by then.
    for table in (*(level.table for rollup in ROLLUPS for level in rollup.levels), TRACE_TOTALS):
        client.command(f"OPTIMIZE TABLE tokentrail.{table} FINAL")
    counts = {
        t: client.query(f"SELECT count() FROM tokentrail.{t}").result_rows[0][0]
        for t in ("calls", "events", "receipts", "deadletter", "pii_findings", "variance", "loop_detections")
    }
    parts = client.query(
        "SELECT count() FROM system.parts WHERE database = 'tokentrail' AND table = 'calls' AND active"
    ).result_rows[0][0]
    print(f"store: {', '.join(f'{t} {n:,}' for t, n in counts.items())}; calls in {parts} active parts")

    # Ranges end at the newest call, not at the clock: a store seeded hours ago still has data in
    # the default ranges (1-6 h), and the Trace dashboard finds a trace in the last hour.
    newest = client.query("SELECT max(ts) FROM tokentrail.calls").result_rows[0][0]
    now = min(last(timedelta(0)).end, newest.replace(tzinfo=UTC) + timedelta(seconds=1))
    print(f"ranges end at {now:%Y-%m-%d %H:%M:%S} UTC (the newest call)")
    time_ranges = {}
    for dashboard in DASHBOARDS:
        time_range = last(RANGES.get(args.range) or _duration(dashboard.time_from), now)
        options = {name: variable_options(client, name, time_range) for name in FILTER_VARIABLES}
        time_ranges[dashboard.uid] = (time_range, options)
    if args.compare:
        print(f"range={args.range}; {args.repeat} alternating runs per panel")
        status = compare(client, args.compare, time_ranges, args.repeat, markdown=args.markdown)
        close_embedded()
        return status

    load_before = os.getloadavg()
    results: list[tuple[float, float, str, int]] = []
    for dashboard in DASHBOARDS:
        time_range, options = time_ranges[dashboard.uid]
        selection = Selection(time_range)
        for name in dashboard.variables:
            ms, cpu, rows = timed(client, render(variable_query(name), time_range, 60_000), args.repeat)
            results.append((ms, cpu, f"{dashboard.uid} / variable {name}", rows))
        for panel in dashboard.panels:
            ms, cpu, rows = timed(client, panel_sql(dashboard, panel, selection, options), args.repeat)
            results.append((ms, cpu, f"{dashboard.uid} / {panel.title}", rows))
    for rule in RULES:
        window = TimeRange(now - timedelta(seconds=rule.window_seconds), now)
        for ref, sql in (("A", rule.sql), *rule.extras):
            ms, cpu, rows = timed(client, expand_macros(sql, window, rule.interval_ms), args.repeat)
            results.append((ms, cpu, f"alert {rule.uid} [{ref}]", rows))
    load_after = os.getloadavg()

    results.sort(reverse=True)
    panels = [r for r in results if "/ variable" not in r[2] and not r[2].startswith("alert")]
    print(
        f"\n{len(results)} queries ({len(panels)} panels), range={args.range}, median of {args.repeat}, "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; slowest {args.top}:"
    )
    print_table(
        ("median", "CPU", "query", "rows"),
        [(f"{ms:.1f} ms", f"{cpu:.0f} ms", name, str(rows)) for ms, cpu, name, rows in results[: args.top]],
        right=(0, 1, 3),
    )
    over = [r for r in panels if r[0] > GOAL_MS]
    print(
        f"\npanels over {GOAL_MS:.0f} ms: {len(over)} of {len(panels)}; median panel "
        f"{median(r[0] for r in panels):.1f} ms; slowest panel {panels[0][0]:.1f} ms ({panels[0][2]})"
    )
    close_embedded()
    return 0


if __name__ == "__main__":
    sys.exit(main())
