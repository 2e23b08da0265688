"""Insert throughput of ClickHouseSink into embedded chDB for `calls` rows.

Run: .venv/bin/python benchmarks/sink_insert.py [--sizes 1000 5000] [--batches 20] [--path DIR]

Reports rows/s for whole ``write_batch`` calls (value conversion + insert with a dedup token),
and the share of that time spent outside chDB's ``insert`` (converting values in Python), so a
regression can be placed on our side or the engine's. Uses a fresh temporary store unless --path
is given.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from _common import TimedClient, median

from tokentrail.sinks import ClickHouseSink, apply, close_embedded, connect

TENANTS = [f"tenant-{i}" for i in range(20)]
FEATURES = ["refund-drafts", "order-support", "search", "summarise", "triage"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash"]
WORDS = "the order shipped yesterday and should arrive within three business days please".split()


def make_rows(n: int, start: datetime) -> list[dict]:
    rng = random.Random(n)
    rows = []
    for i in range(n):
        model = rng.choice(MODELS)
        rows.append(
            {
                "event_id": uuid.uuid4(),
                "ts": start + timedelta(milliseconds=37 * i),
                "trace_id": uuid.uuid4().hex,
                "span_id": uuid.uuid4().hex[:16],
                "parent_span_id": "",
                "session_id": f"sess-{rng.randrange(1000)}",
                "tenant": rng.choice(TENANTS),
                "service": "order-agent",
                "environment": "production",
                "feature": rng.choice(FEATURES),
                "user": f"u_{rng.randrange(10**6):06x}",
                "provider": "openai",
                "model": model,
                "response_model": f"{model}-2024-08-06",
                "prompt_id": "order_assistant",
                "prompt_version": "v3",
                "system_prompt_hash": f"{rng.getrandbits(64):016x}",
                "prompt_hash": f"{rng.getrandbits(64):016x}",
                "input_tokens": rng.randrange(100, 8000),
                "cached_input_tokens": rng.randrange(0, 100),
                "output_tokens": rng.randrange(1, 800),
                "reasoning_tokens": 0,
                "cost_usd": Decimal(rng.randrange(1, 10**7)) / Decimal(10**9),
                "priced": True,
                "latency_ms": rng.uniform(200, 4000),
                "ttft_ms": rng.choice([None, rng.uniform(50, 500)]),
                "status": "ok",
                "finish_reason": "stop",
                "error_type": "",
                "tool_call_count": 1,
                "tool_names": ["search_orders"],
                "output_text": " ".join(rng.choices(WORDS, k=60)),
                "output_hash": f"{rng.getrandbits(64):016x}",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--batches", type=int, default=20, help="batches per size (after one warm-up)")
    parser.add_argument("--path", help="embedded store directory (default: a fresh temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tt-bench-") as tmp:
        client = TimedClient(connect(f"chdb://{args.path or tmp}"))
        apply(client, database="bench")
        client.command("TRUNCATE TABLE IF EXISTS bench.calls")
        sink = ClickHouseSink(client, database="bench", max_attempts=1)
        start = datetime.now(UTC)
        print(f"chDB {client.server_version}; table bench.calls; {args.batches} batches per size")
        for size in args.sizes:
            batches = [make_rows(size, start) for _ in range(args.batches + 1)]
            sink.write_batch({"calls": batches[0]}, token=f"warmup-{size}")
            totals, converts = [], []
            for i, rows in enumerate(batches[1:]):
                insert_before = client.insert_s
                t0 = time.perf_counter()
                sink.write_batch({"calls": rows}, token=f"bench-{size}-{i}")
                totals.append(time.perf_counter() - t0)
                converts.append(totals[-1] - (client.insert_s - insert_before))
            rate = size / median(totals)
            share = median(converts) / median(totals)
            print(
                f"batch {size:>6}: {rate:>9,.0f} rows/s (median of {len(totals)}; "
                f"best {size / min(totals):,.0f}); outside chDB's insert (value conversion) {share:.0%} of the time"
            )
        stored = client.command("SELECT count() FROM bench.calls")
        print(f"rows stored: {stored}")
        close_embedded()


if __name__ == "__main__":
    main()
