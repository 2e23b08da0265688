"""Throughput and latency of the stream pipeline: real Kafka -> `tokentrail worker` -> ClickHouse (embedded chDB).

    .venv/bin/python benchmarks/pipeline.py            # starts a local Kafka broker (scripts/kafka_broker.py)
    .venv/bin/python benchmarks/pipeline.py --kafka 127.0.0.1:9092 --events 100000 --latency-seconds 30
    TOKENTRAIL_BENCH_KAFKA=127.0.0.1:9092 .venv/bin/python benchmarks/pipeline.py --json out.json
    .venv/bin/python benchmarks/pipeline.py --skip latency --profile-worker worker.prof  # where the worker's time goes
    .venv/bin/python benchmarks/pipeline.py --events 2000 --replay-lines 1000 --replay-runs 1 \
        --skip inline --latency-seconds 2 --batch-within 0.2   # a quick check that it all still runs

What it measures, in this order (figures and their reading in docs/performance.md, "Pipeline"):

1. Embedded replay rate and per-stage cost: `replay_source` (what `tokentrail replay` runs:
   EmbeddedRunner, batches of 5,000) over the first `--replay-lines` generator lines into a fresh
   embedded store, `--replay-runs` times; lines/s (median). Each pipeline stage (Validate, Dedupe,
   Redact, PriceCalls, BuildRows and whatever detectors the pipeline has) is timed inside those
   runs, as are the sink's own work (``write_batch`` minus chDB's insert) and chDB's insert:
   microseconds per inbound line.
2. Sustained throughput: `--events` generator lines (with the generator's 1% malformed lines and
   1% re-deliveries) are produced into a fresh topic with `--partitions` partitions *before* the
   worker starts, so the worker drains a backlog as fast as it can. The worker is the real one
   (`build_app` + `faust.Worker`, run as a child process `pipeline.py _worker ...`, which starts
   its own pipeline process) with an instrumented sink: after each `write_batch` returns (the
   insert is synchronous, so the rows are visible) it appends the wall time, row counts and stage
   times to a record file. Sustained rate = messages in all batches but the first / (last batch
   time - first batch time); the rate including the worker's start-up, the CPU per message of
   the worker process and of its pipeline process, and a per-message breakdown of the worker's
   wall time are also given. Afterwards the store must hold exactly the generator's distinct
   events, dead letters and deliveries. Then the same drain once more with `--inline-pipeline`
   (the stages in the worker's own process), side by side (`--skip inline` leaves it out).
3. End-to-end latency: a `Collector` with the Kafka transport records model calls (a prompt and
   an output event each) at `--rate` events/s, paced by a deadline loop, for `--latency-seconds`.
   Latency of an event = time its batch was stored - the event's `ts` (set by the collector when
   the call is entered and finished). Reported: p50/p99/max, split into "until the worker took
   the batch" (collector buffering, Kafka, the worker's batch window) and "pipeline + insert".
   Run once per `--batch-within` value (default: the worker's default, 0.2, and 0.1).

The worker runs with the worker's own defaults (`WorkerConfig`: `--batch-size` 5000, and for the
sustained run `--batch-within` 0.2) unless overridden here, and with the same process settings as
`tokentrail worker` (no faust spinner, `runtime.tune_gc()`).

The parts live in ``benchmarks/pipeline_bench/`` (traffic and store checks, the instrumented
worker, replay, sustained, latency, report); this script is the command line.

Goals (issue): >= 5,000 events/s sustained, p99 <= 2 s at 1,000 events/s, on a 2-core machine
without NER (so `--nlp-model none` is the default here); with NER (`--nlp-model auto`) >= 3,000
events/s sustained, and Redact's cost against the NER floor: spaCy's `nlp.pipe` alone on exactly
the texts Redact sent it (benchmarks/redaction_eval/ner_floor.py; the NER step timed inside Redact,
goal within 1.5x of the floor). Absolute rates move with the machine's load: compare revisions
side by side with benchmarks/compare_revisions.py. The latency goal holds if the p99 of at
least one `--batch-within` run is within it. Exit status 1 if a goal is missed or a store check
fails (a benchmark that loses events is not measuring the pipeline). Everything shares the
machine's cores with the broker (and with the collector, in the latency run): that is the
deployment being measured, on a small box.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from _common import kafka, log, machine, versions
from pipeline_bench.latency import latency
from pipeline_bench.replay import embedded_replay
from pipeline_bench.report import GOAL_NER_FLOOR, GOAL_P99, GOAL_RATE, report, sustained_goal
from pipeline_bench.sustained import sustained
from pipeline_bench.traffic import ENV_NLP, generate_lines, redactor_description
from pipeline_bench.worker import worker_main

ENV_KAFKA = "TOKENTRAIL_BENCH_KAFKA"
ENV_KEY = "TOKENTRAIL_REDACTION_KEY"
ENV_EVIDENCE_KEY = "TOKENTRAIL_EVIDENCE_KEY"


def ner_floor_report(model: str, events: int, seed: int) -> dict[str, Any]:
    """Redact's µs per message with NER against spaCy's own `nlp.pipe` time on what it was sent
    (benchmarks/redaction_eval/ner_floor.py), on this run's traffic, in this process."""
    from redaction_eval import ner_floor

    from tokentrail.redaction import RedactionConfig, Redactor

    key = secrets.token_bytes(32)
    ner = Redactor(RedactionConfig(nlp_model=model), key)
    if ner.detector.pattern_only:
        return {"skipped": f"no spaCy model for --nlp-model {model}: nothing to compare with"}
    pattern = Redactor(RedactionConfig(nlp_model=None), key)
    report = ner_floor.measure(ner, pattern, ner_floor.pipeline_values(events, seed), rounds=3)
    return {
        **dataclasses.asdict(report),
        "ratio": report.ratio,
        "ner_overhead_ratio": report.ner_overhead_ratio,
        "ner_step_ratio": report.ner_step_ratio,
    }


def main(argv: list[str]) -> int:
    from tokentrail.stream.faust_worker import WorkerConfig  # the worker's defaults are the benchmark's defaults

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kafka", default=os.environ.get(ENV_KAFKA), help=f"broker to use (default ${ENV_KAFKA}, else start one)"
    )
    parser.add_argument("--events", type=int, default=50_000, help="generator events for the sustained run")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=WorkerConfig.batch_size,
        help="the worker's --batch-size (default: its default)",
    )
    parser.add_argument(
        "--pipeline-processes",
        type=int,
        default=WorkerConfig.pipeline_processes,
        help="the sustained run's worker --pipeline-processes (default: its default)",
    )
    parser.add_argument("--rate", type=int, default=GOAL_RATE, help="offered load of the latency run, events/s")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--batch-within",
        type=float,
        nargs="+",
        default=[WorkerConfig.batch_within, 0.1],
        help="one latency run per value (default: the worker's default and 0.1)",
    )
    parser.add_argument(
        "--sustained-batch-within",
        type=float,
        default=WorkerConfig.batch_within,
        help="the sustained run's --batch-within (default: the worker's default)",
    )
    parser.add_argument(
        "--replay-lines",
        type=int,
        default=10_000,
        help="replay (and per-stage profile) over the first N generated lines",
    )
    parser.add_argument("--replay-runs", type=int, default=3)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["replay", "sustained", "inline", "latency"],
        help="inline: the second sustained run, with the pipeline in the worker's process (--inline-pipeline)",
    )
    parser.add_argument(
        "--nlp-model",
        default="none",
        help=f"{ENV_NLP} for this run and its worker: none (the goals' setting, pattern-only redaction), auto, "
        "or a spaCy model",
    )
    parser.add_argument(
        "--profile-worker",
        metavar="FILE",
        help="cProfile the sustained run's worker (event-loop thread) into FILE (slows it)",
    )
    parser.add_argument(
        "--floor-events",
        type=int,
        default=20_000,
        help="with NER: the generated events whose text Redact is timed on against nlp.pipe alone (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    os.environ[ENV_NLP] = args.nlp_model  # inherited by the worker processes
    if not os.environ.get(ENV_KEY) and not os.environ.get(ENV_KEY + "_FILE"):
        os.environ[ENV_KEY] = secrets.token_hex(32)  # a throwaway pseudonym key (no ephemeral-key warnings)
    if not os.environ.get(ENV_EVIDENCE_KEY) and not os.environ.get(ENV_EVIDENCE_KEY + "_FILE"):
        os.environ[ENV_EVIDENCE_KEY] = secrets.token_hex(32)  # the worker refuses to start without one
    results: dict[str, Any] = {
        "machine": machine(),
        "versions": versions("faust-streaming", "aiokafka", "chdb", "clickhouse-connect", "confluent-kafka"),
        "redactor": redactor_description(),
        "nlp_model": args.nlp_model,
        "loadavg_before": os.getloadavg(),
    }
    started = time.monotonic()
    log(f"generating {args.events:,} events (seed {args.seed})")
    lines, truth = generate_lines(args.events, args.seed)

    if "replay" not in args.skip:
        log(f"embedded replay x{args.replay_runs}")
        whole = args.replay_lines >= len(lines)
        results["replay"] = embedded_replay(
            lines[: args.replay_lines], args.replay_runs, 5_000, truth.valid_events if whole else None
        )

    needs_kafka = not {"sustained", "latency"} <= set(args.skip)
    with kafka(args.kafka) if needs_kafka else contextlib.nullcontext("") as bootstrap:
        drain = {
            "partitions": args.partitions,
            "batch_size": args.batch_size,
            "batch_within": args.sustained_batch_within,
            "timeout": max(120.0, len(lines) / 200),
        }
        if "sustained" not in args.skip:
            processes = ("--pipeline-processes", str(args.pipeline_processes))
            results["sustained"] = sustained(
                bootstrap, lines, truth, profile=args.profile_worker, extra=processes, **drain
            )
            if "inline" not in args.skip:  # side by side: what the pipeline process buys
                results["sustained_inline"] = sustained(bootstrap, lines, truth, extra=("--inline-pipeline",), **drain)
        if "latency" not in args.skip:
            results["latency"] = [
                latency(
                    bootstrap,
                    rate=args.rate,
                    seconds=args.latency_seconds,
                    batch_within=w,
                    partitions=args.partitions,
                    batch_size=args.batch_size,
                )
                for w in args.batch_within
            ]
    if args.nlp_model != "none" and args.floor_events:
        log(f"NER floor: Redact with NER, pattern-only and nlp.pipe alone on {args.floor_events:,} events' text")
        results["ner_floor"] = ner_floor_report(args.nlp_model, args.floor_events, args.seed)
    results["elapsed_s"] = time.monotonic() - started
    results["loadavg_after"] = os.getloadavg()
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    exact = (
        results.get("sustained", {}).get("exact", True)
        and results.get("sustained_inline", {}).get("exact", True)
        and results.get("replay", {}).get("exact", True)
        and all(r["exact"] for r in results.get("latency", []))
    )
    goal_rate = sustained_goal(args.nlp_model)
    goals = (
        results.get("sustained", {}).get("messages_per_s", goal_rate) >= goal_rate
        and min((r["p99"] for r in results.get("latency", [])), default=0.0) <= GOAL_P99
        and results.get("ner_floor", {}).get("ner_step_ratio", 0.0) <= GOAL_NER_FLOOR
    )
    if not exact:
        print("\nFAILED: the store does not hold exactly the events sent (see the store checks above)")
    return 0 if exact and goals else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        worker_main(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
