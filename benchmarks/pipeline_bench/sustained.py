"""Measurement 2: sustained throughput, the worker draining a backlog produced before it started."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from _common import log, median, new_topic

from .traffic import STORE_CHECKS, expected_store, produce_lines, read_store
from .worker import WorkerProcess


def sustained(
    bootstrap: str,
    lines: list[bytes],
    truth: Any,
    *,
    partitions: int,
    batch_size: int,
    batch_within: float,
    timeout: float,
    profile: str | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Produce ``lines`` to a fresh topic, start the worker on the backlog, measure its drain."""
    topic = new_topic(bootstrap, "bench-sustained", partitions)
    mode = " " + " ".join(extra) if extra else ""
    log(f"sustained{mode}: producing {len(lines):,} lines into {topic} ({partitions} partitions)")
    produce_s = produce_lines(bootstrap, topic, lines)
    with tempfile.TemporaryDirectory(prefix="tt-bench-sustained-") as tmp:
        log("sustained: starting the worker on the backlog")
        worker = WorkerProcess(
            bootstrap,
            topic,
            Path(tmp),
            batch_size=batch_size,
            batch_within=batch_within,
            record_ts=False,
            profile=profile,
            extra=extra,
        )
        try:
            worker.wait_inbound(1, 120, "the first batch")
            cpu_first, t_cpu_first = worker.cpu_seconds(), time.time()
            worker.wait_inbound(len(lines), timeout, "the backlog to be stored")
            cpu_last, t_cpu_last = worker.cpu_seconds(), time.time()
        finally:
            worker.stop()
        counts = read_store(worker.store, STORE_CHECKS)
    result = drain_figures(worker.batches, worker.started, (cpu_first, t_cpu_first), (cpu_last, t_cpu_last))
    expected = expected_store(truth)
    return {
        "topic_partitions": partitions,
        "batch_size": batch_size,
        "batch_within": batch_within,
        "worker_extra": " ".join(extra),
        "lines": len(lines),
        "produce_s": produce_s,
        **result,
        "store": counts,
        "expected": expected,
        "exact": counts == expected,
    }


def drain_figures(
    batches: list[dict[str, Any]],
    started: float,
    cpu_first: tuple[tuple[float, float], float],
    cpu_last: tuple[tuple[float, float], float],
) -> dict[str, Any]:
    """Rates, CPU and the per-message breakdown from the recorded batches.

    The first batch only starts the clock (it includes the worker's start-up); every figure per
    message is over the batches after it. ``cpu_*`` are ((worker, its children) CPU seconds, wall
    time) read when the first batch and the last were seen.
    """
    first, last = batches[0], batches[-1]
    messages = sum(b["inbound"] for b in batches)
    events = sum(b["events"] for b in batches)
    span = last["t"] - first["t"]
    measured = messages - first["inbound"]
    rest = batches[1:]
    ((own_first, children_first), t_first), ((own, children), t_last) = cpu_first, cpu_last
    total_first, total = own_first + children_first, own + children
    parallel = children - children_first > 0.05 * (own - own_first)  # the pipeline ran in its own process
    per_msg = {
        "pipeline": sum(b["pipeline_s"] for b in rest) / measured * 1e6,
        "normalise": sum(b["write_s"] - b["insert_s"] for b in rest) / measured * 1e6,
        "insert": sum(b["insert_s"] for b in rest) / measured * 1e6,
    }
    # The rest of the worker's wall time: faust/Kafka, and (pipeline process) waiting for its results.
    on_worker_path = sum(b["write_s"] for b in rest) / measured * 1e6 + (0 if parallel else per_msg["pipeline"])
    per_msg["kafka+faust"] = span / measured * 1e6 - on_worker_path
    return {
        "batches": len(batches),
        "batch_median": median(b["inbound"] for b in batches),
        "messages_per_s": measured / span,
        "events_per_s": (events - first["events"]) / span,
        "messages_per_s_with_startup": messages / (last["t"] - started),
        "startup_s": first["t"] - started,
        "drain_s": span,
        "pipeline_process": parallel,
        "worker_cpu_s": total,
        "worker_cpu_share": total / (t_last - started),
        "worker_cpu_share_draining": (total - total_first) / (t_last - t_first),
        # CPU per message is steadier than wall time on a shared machine: it ignores time spent
        # runnable but not running.
        "worker_cpu_us_per_msg": (total - total_first) / measured * 1e6,
        "worker_cpu_split_us": {
            "worker process": (own - own_first) / measured * 1e6,
            "pipeline process": (children - children_first) / measured * 1e6,
        },
        # Where one batch's wall time goes (per message, batches after the first).
        "per_msg_us": per_msg,
        "worker_stages_us": {
            name: (last["stages_s"][name] - first["stages_s"].get(name, 0.0)) / measured * 1e6
            for name in last["stages_s"]
        },
    }
