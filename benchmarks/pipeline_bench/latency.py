"""Measurement 3: end-to-end latency, collector to store, at a paced offered rate."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from _common import log, median, new_topic, percentile

from .traffic import read_store
from .worker import WorkerProcess

SYSTEM = (
    "You are Northwind's order-support assistant. Answer questions about orders, shipping and returns "
    "using only the tools provided. Keep answers under 120 words and cite the order number you looked up."
)
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-0"), ("openai", "gpt-4o-mini")]
WARMUP_CALLS = 20  # two events each, stored before the clock starts


def make_call(collector: Any) -> Any:
    """One recorded model call (a prompt and an output event) per ``call(i)``."""

    def call(i: int) -> None:
        provider, model = MODELS[i % len(MODELS)]
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Where is order #{100000 + i}? It was due yesterday."},
        ]
        with collector.trace(feature=f"feature-{i % 5}", tenant=f"tenant-{i % 4}", user_id=f"user-{i % 97}"):
            with collector.model_call(provider=provider, model=model, messages=messages) as c:
                c.finish(
                    response_model=model,
                    output=f"Order #{100000 + i} left the warehouse today and arrives tomorrow.",
                    finish_reason="stop",
                    usage={"input_tokens": 400 + i % 300, "output_tokens": 30 + i % 60},
                )

    return call


def latency(
    bootstrap: str, *, rate: int, seconds: float, batch_within: float, partitions: int, batch_size: int
) -> dict[str, Any]:
    """Record calls at ``rate`` events/s for ``seconds`` through a real collector; time each event to the store."""
    import tokentrail.collectors as tt
    from tokentrail.collectors.kafka import KafkaTransport

    topic = new_topic(bootstrap, "bench-latency", partitions)
    warmup_events = 2 * WARMUP_CALLS
    with tempfile.TemporaryDirectory(prefix="tt-bench-latency-") as tmp:
        workdir = Path(tmp)
        worker = WorkerProcess(
            bootstrap, topic, workdir, batch_size=batch_size, batch_within=batch_within, record_ts=True
        )
        collector = tt.Collector(
            service="bench",
            transport=KafkaTransport(
                tt.KafkaSettings(bootstrap_servers=bootstrap, topic=topic, spool_dir=workdir / "spool")
            ),
            register_atexit=False,
            settings=tt.CollectorSettings(max_queue=100_000),
        )
        call = make_call(collector)
        try:
            # Warm-up: the worker has joined its group and written a batch before the clock starts.
            log(f"latency (--batch-within {batch_within}): waiting for the worker")
            for i in range(WARMUP_CALLS):
                call(i)
            collector.flush(30)
            worker.wait_inbound(warmup_events, 120, "the warm-up events")
            calls_wanted = int(rate * seconds / 2)  # a model call is two events
            interval = 2.0 / rate
            log(f"latency (--batch-within {batch_within}): {rate} events/s for {seconds:.0f} s")
            measure_from = time.time()
            t0 = time.perf_counter()
            lag_max = 0.0
            for i in range(calls_wanted):
                target = t0 + i * interval
                now = time.perf_counter()
                if target > now:
                    time.sleep(target - now)
                else:
                    lag_max = max(lag_max, now - target)
                call(1000 + i)
            emit_s = time.perf_counter() - t0
            collector.flush(30)
            delivered = collector.stats().get("delivered")
            worker.wait_inbound(warmup_events + 2 * calls_wanted, 120, "every measured event")
        finally:
            worker.stop()
            collector.close()
        stored = read_store(worker.store, {"distinct": "SELECT uniqExact(event_id) FROM tokentrail.events"})["distinct"]
    total, waiting, processing = [], [], []
    for b in worker.batches:
        for ts in b["ts"]:
            if ts >= measure_from - 0.01:  # ts is rounded to 0.1 ms; the warm-up ended seconds before
                total.append(b["t"] - ts)
                waiting.append(b["taken"] - ts)
                processing.append(b["t"] - b["taken"])
    measured = [b for b in worker.batches if b["ts"] and b["ts"][-1] >= measure_from - 0.01]
    return {
        "batch_within": batch_within,
        "batch_median": median(b["inbound"] for b in measured),
        "batch_ms_median": median((b["pipeline_s"] + b["write_s"]) * 1e3 for b in measured),
        "insert_ms_median": median(b["insert_s"] * 1e3 for b in measured),
        "offered_rate": 2 * calls_wanted / emit_s,
        "pacing_lag_max_s": lag_max,
        "events": len(total),
        "p50": percentile(total, 50),
        "p99": percentile(total, 99),
        "max": max(total),
        "taken_p50": percentile(waiting, 50),
        "taken_p99": percentile(waiting, 99),
        "processing_p50": percentile(processing, 50),
        "processing_p99": percentile(processing, 99),
        "delivered": delivered,
        "stored_distinct": stored,
        "exact": stored == warmup_events + 2 * calls_wanted and len(total) == 2 * calls_wanted,
    }
