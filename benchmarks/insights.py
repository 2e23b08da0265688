"""Time one run of the insights job (variance, changes, budgets) on stores of 1M and 10M calls, side by side.

Run: .venv/bin/python benchmarks/insights.py [--stores /var/tmp/tt-ins-1m /var/tmp/tt-ins-10m] [--runs 7]
     [--live-per-minute 1000]

Each store is a copy of a store seeded by benchmarks/dashboard_seed.py (the benchmark writes into
it: never point it at a store someone else reads). Seeded history alone is not what the job sees
each minute, so the benchmark plays the minutes after it: before each run it inserts one minute
of live calls (`--live-per-minute`, the same for both stores, so only the history differs) with
output texts (the seed has none; the similarity sample reads them), and from the third minute a
silent response_model swap, from the fifth a system-prompt edit without a version bump, and in
the fourth a call late by 7 minutes (within the job's lateness margin). Then one run of the job,
as the insights leader runs it: `run_from_watermark` at the simulated `now`.

Printed per store: the first run (no watermark: the catch-up, a day of variance, two days of
spend and the first-seen state from all calls) and the median of the steady runs after it, with
the median per part, the changes found, and the growth ratio 10M / 1M. The machine is shared:
the load average is printed too, and CPU seconds of the benchmark process (chDB runs in it),
which other processes' load moves far less than wall time; quote medians. Each store runs in its own process (chDB hosts
one engine per process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import log, median, print_table
from dashboard_seed import FEATURES, RATES, TENANTS

from tokentrail.sinks import ClickHouseSink, apply, connect
from tokentrail.stream.insights import BudgetConfig, run_from_watermark

GOAL_S = 2.0
PROTECTED = ("/var/tmp/tt-dash-",)  # the dashboard benchmark's stores: read by others, never written here
LIVE_SERVICE = "insights-bench-live"
STATE_TABLES = ("insights_watermark", "insights_first_seen", "insights_spend", "variance", "changes", "budget_breaches")
BUDGETS = BudgetConfig.from_dict(
    {
        "budgets": [
            {"scope": "tenant", "key": "*", "window": "hour", "warning": 5, "critical": 20},
            {"scope": "tenant", "key": "*", "window": "day", "warning": 100, "critical": 250},
            {"scope": "feature", "key": "*", "window": "day", "warning": 100, "critical": 200},
        ]
    }
)
WORDS = "the order was shipped refund approved please allow three days we could not find your account sorry".split()
SWAP_FROM_MINUTE, EDIT_FROM_MINUTE, LATE_MINUTE = 3, 5, 4


def _array(values: list[Any]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def insert_live_minute(client: Any, start: datetime, minute: int, calls: int, *, late: bool = False) -> None:
    """One minute of calls from `start` on, like the seed's but with output texts, the injected changes, and
    optionally one call 7 minutes late."""
    models = sorted(RATES)
    feature_models = [[m.split(":")[1] for m in f[4]] for f in FEATURES]
    feature_providers = [[m.split(":")[0] for m in f[4]] for f in FEATURES]
    swap = "1" if minute >= SWAP_FROM_MINUTE else "0"
    edit = "1" if minute >= EDIT_FROM_MINUTE else "0"
    lo = start - timedelta(minutes=7) if late else start
    span_ms = 1 if late else 60_000
    client.command(
        f"""
INSERT INTO tokentrail.calls (event_id, ts, received_at, trace_id, span_id, tenant, service, feature, provider,
    model, response_model, prompt_id, prompt_version, system_prompt_hash, input_tokens, output_tokens, cost_usd,
    priced, latency_ms, status, finish_reason, tool_call_count, tool_names, output_text, output_hash)
WITH
    number + {minute * 1_000_000 + (999_999 if late else 0)} AS i,
    {_array(TENANTS)}[1 + cityHash64(i, 1) % {len(TENANTS)}] AS tenant_,
    toUInt8(1 + cityHash64(i, 2) % {len(FEATURES)}) AS f,
    {_array([f[0] for f in FEATURES])}[f] AS feature_,
    {_array([f[2] for f in FEATURES])}[f] AS prompt_id_,
    {[f[3] for f in FEATURES]}[f] AS versions_,
    if(cityHash64(i, 3) % 10 < 7, 1, 2) AS m,
    arrayElement({feature_models}, f)[m] AS model_,
    arrayElement({feature_providers}, f)[m] AS provider_,
    indexOf({_array(models)}, model_) AS mi,
    toDateTime64({{lo:DateTime64(3, 'UTC')}}, 3, 'UTC') + toIntervalMillisecond(cityHash64(i, 5) % {span_ms}) AS ts_,
    toUInt32(20 + cityHash64(i, 6) % 400) AS output_,
    toUInt32(150 + cityHash64(i, 7) % 2000) AS input_,
    arrayStringConcat(arrayMap(k -> {_array(WORDS)}[1 + cityHash64(i % 40, k) % {len(WORDS)}],
        range(5 + output_ % 30)), ' ') AS text_
SELECT generateUUIDv4(i), ts_, ts_ + INTERVAL 1 SECOND, lower(hex(cityHash64(i, 8))), lower(hex(cityHash64(i, 9))),
    tenant_, '{LIVE_SERVICE}', feature_, provider_, model_,
    concat(model_, if({swap} AND tenant_ = 'acme' AND feature_ = 'order-support' AND model_ = 'gpt-4o',
        '-2024-11-20', '-2024-08-06')),
    prompt_id_, versions_[1 + i % length(versions_)],
    lower(hex(if({edit} AND prompt_id_ = 'kb_answer', cityHash64(prompt_id_, 'edit'), cityHash64(prompt_id_)))),
    input_, output_,
    toDecimal128(input_ * {_array([RATES[m][0] for m in models])}[mi]
        + output_ * {_array([RATES[m][2] for m in models])}[mi], 12),
    provider_ != 'vllm', toFloat64(200 + output_ * 12), 'ok', 'stop', 0, [], text_, lower(hex(cityHash64(text_)))
FROM numbers({1 if late else calls})""",
        parameters={"lo": lo},
    )


def reset(client: Any) -> datetime:
    """Empty the job's tables and drop earlier live calls; the simulated clock starts after the seeded history."""
    apply(client)
    for table in STATE_TABLES:
        client.command(f"TRUNCATE TABLE tokentrail.{table}")
    client.command(f"DELETE FROM tokentrail.calls WHERE service = '{LIVE_SERVICE}'")
    latest = client.query("SELECT max(ts) FROM tokentrail.calls").result_rows[0][0].replace(tzinfo=UTC)
    return latest.replace(second=0, microsecond=0) + timedelta(minutes=1)


def one_store(path: str, runs: int, per_minute: int) -> dict[str, Any]:
    """Run the benchmark on one store in this process; returns its figures."""
    client = connect(f"chdb://{path}")
    calls = client.query("SELECT count() FROM tokentrail.calls").result_rows[0][0]
    start = reset(client)
    sink = ClickHouseSink(client)  # one for all runs, as the worker's job keeps one
    timings: list[tuple[float, dict[str, float], dict[str, int]]] = []
    changes: list[str] = []
    cpu: list[float] = []  # CPU seconds of this process (chDB runs in it): less moved by other processes' load
    for minute in range(runs + 1):
        now = start + timedelta(minutes=minute)
        if minute:
            insert_live_minute(client, now - timedelta(minutes=1), minute, per_minute)
            if minute == LATE_MINUTE:
                insert_live_minute(client, now - timedelta(minutes=1), minute, per_minute, late=True)
        began, cpu_began = time.perf_counter(), time.process_time()
        result = run_from_watermark(client, now=now, budgets=BUDGETS, sink=sink)
        timings.append((time.perf_counter() - began, result.seconds, result.written))
        cpu.append(time.process_time() - cpu_began)
        changes += [f"{c.kind}:{c.from_value}->{c.to_value}" for c in result.changes]
        log(f"{path} minute {minute}: {timings[-1][0]:.3f}s {result.written}")
    steady = timings[1:]
    parts = sorted({part for _, seconds, _ in steady for part in seconds})
    return {
        "path": path,
        "calls": calls,
        "first_s": timings[0][0],
        "first_parts": timings[0][1],
        "steady_s": median(t for t, _, _ in steady),
        "steady_cpu_s": median(cpu[1:]),
        "first_cpu_s": cpu[0],
        "steady_max_s": max(t for t, _, _ in steady),
        "steady_parts": {part: median(s.get(part, 0.0) for _, s, _ in steady) for part in parts},
        "changes": changes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", nargs="+", default=["/var/tmp/tt-ins-1m", "/var/tmp/tt-ins-10m"])
    parser.add_argument("--runs", type=int, default=7, help="steady runs after the first (default 7)")
    parser.add_argument("--live-per-minute", type=int, default=1000, help="live calls inserted before each run")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: benchmark this store, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_store(args.one, args.runs, args.live_per_minute)))
        return
    for path in args.stores:
        if any(str(Path(path).resolve()).startswith(p) for p in PROTECTED) or not Path(path).is_dir():
            sys.exit(f"{path}: not a store copy this benchmark may write (copy one: cp -a /var/tmp/tt-dash-1m DIR)")
    load_before = os.getloadavg()
    results = []
    for path in args.stores:
        out = subprocess.run(
            [sys.executable, __file__, "--one", path, "--runs", str(args.runs), "--live-per-minute",
             str(args.live_per_minute)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        results.append(json.loads(out.strip().splitlines()[-1]))
    load_after = os.getloadavg()
    parts = sorted({p for r in results for p in (*r["first_parts"], *r["steady_parts"])})
    rows = [
        ["calls in store", *(f"{r['calls']:,}" for r in results)],
        ["first run (catch-up), s", *(f"{r['first_s']:.2f}" for r in results)],
        ["  CPU seconds", *(f"{r['first_cpu_s']:.2f}" for r in results)],
        *([f"  {p}", *(f"{r['first_parts'].get(p, 0):.2f}" for r in results)] for p in parts),
        [f"steady run, median of {args.runs}, s", *(f"{r['steady_s']:.3f}" for r in results)],
        ["  CPU seconds (median)", *(f"{r['steady_cpu_s']:.3f}" for r in results)],
        *([f"  {p}", *(f"{r['steady_parts'].get(p, 0):.3f}" for r in results)] for p in parts),
        ["steady run, slowest, s", *(f"{r['steady_max_s']:.3f}" for r in results)],
        ["changes found", *(str(len(r["changes"])) for r in results)],
    ]
    print_table(["", *(Path(r["path"]).name for r in results)], rows, right=range(1, len(results) + 1))
    if len(results) >= 2:
        first, last = results[0], results[-1]
        growth = last["calls"] / first["calls"]
        steady, catch_up = last["steady_s"] / first["steady_s"], last["first_s"] / first["first_s"]
        cpu = last["steady_cpu_s"] / first["steady_cpu_s"]
        print(f"growth {growth:.1f}x calls: steady run x{steady:.2f} (CPU x{cpu:.2f}), first run x{catch_up:.2f}")
    worst = max(r["steady_s"] for r in results)
    print(f"goal: steady run <= {GOAL_S:.0f} s: {'met' if worst <= GOAL_S else 'NOT met'} (worst median {worst:.3f} s)")
    print(
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f}, after {load_after[0]:.2f} "
        f"{load_after[1]:.2f} ({os.cpu_count()} CPUs, shared machine); live calls per minute {args.live_per_minute}"
    )
    for r in results:
        print(f"{Path(r['path']).name} changes: {', '.join(r['changes'])}")


if __name__ == "__main__":
    main()
