"""What recording one model call costs the caller: tokentrail vs the OpenTelemetry SDK vs Langfuse.

    .venv/bin/python benchmarks/collector_overhead.py              # starts a local Kafka broker
    .venv/bin/python benchmarks/collector_overhead.py --kafka 127.0.0.1:9092 --calls 50000

One "model call" is a prompt (about 1.5 KB of chat messages) and its output (a few hundred bytes),
recorded the way each SDK is meant to be used:

- tokentrail: `collector.model_call(...)` + `call.finish(...)`, Kafka transport to a real broker.
- OpenTelemetry SDK: one span with the `gen_ai.*` attributes (messages as JSON strings, as the
  GenAI semantic conventions require), BatchSpanProcessor, an exporter that does nothing.
- Langfuse SDK: one generation with the same input, output, model and usage, exporting to a
  host that refuses connections (127.0.0.1:9).

Each contender runs in its own subprocess (so no SDK's background threads run during another's
measurement), warms up, then records `--calls` calls back to back. Rounds rotate the order, and
the figures are medians of the per-round figures, so machine noise falls on everyone alike.

Per call we report the caller-thread wall time (median, p99 and mean; `perf_counter_ns` around the
whole call) and process CPU: every thread's CPU from the start of the loop until the SDK has done
the background work for those calls (a flush), divided by the number of calls, split into the
caller thread's share and the deferred (background) share. `--pause-us` sleeps between calls, as a
service does between model calls, to show the cost with cold caches. Exit status 1 if a goal is
missed or a contender lost a call.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

Contender = tuple[Callable[[], None], Callable[[], None], Callable[[], dict]]  # one_call, drain, report

REPO = Path(__file__).resolve().parent.parent
CONTENDERS = ("tokentrail", "opentelemetry", "langfuse")
LABELS = {"tokentrail": "tokentrail (Kafka)", "opentelemetry": "OpenTelemetry SDK", "langfuse": "Langfuse SDK"}
GOALS = {"opentelemetry": 5.0, "langfuse": 15.0}  # tokentrail's median must be <= 1/x of theirs
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connect() is refused

# -- the model call every contender records ------------------------------------------------------

SYSTEM = (
    "You are Northwind's order-support assistant. Answer questions about orders, shipping and returns using only "
    "the tools provided. Never promise refunds above the policy limit; escalate to a human agent when the customer "
    "asks for one or is clearly upset. Keep answers under 120 words and cite the order number you looked up. "
    "Today's date is 2026-11-26; the customer is signed in as a Gold member, which allows one free redirect per "
    "order and refunds of shipping fees without a supervisor's approval."
)
CHAT = (
    ("user", "Hi, my order #A-20931 was supposed to arrive on Tuesday and it still hasn't shown up. Where is it now?"),
    (
        "assistant",
        "I'm sorry about the delay. I looked up order #A-20931: it left our Rotterdam warehouse on Monday "
        "and the carrier scanned it in Utrecht yesterday evening. The tracking page shows an updated delivery window "
        "of Thursday between 09:00 and 13:00.",
    ),
    (
        "user",
        "Thursday doesn't work for me, I'm away until Saturday. Can you have it delivered to the pickup point "
        "at the Albert Heijn on Oudegracht instead, or hold it at the depot until I'm back? I'm in Utrecht centrum. "
        "Also, if it's going to be this late, I'd like the shipping fee refunded, I paid for express delivery "
        "specifically because I needed it before the weekend.",
    ),
    ("assistant", "Let me check the redirect options and the express-shipping refund policy for order #A-20931."),
)
MESSAGES = [{"role": "system", "content": SYSTEM}] + [{"role": role, "content": text} for role, text in CHAT]
OUTPUT = (
    "I've redirected order #A-20931 to the PostNL pickup point at Albert Heijn, Oudegracht 158. It will be ready "
    "from Friday 12:00 and held for 7 days, so Saturday is fine. Because the express delivery missed its promised "
    "date, I've refunded the €6.95 shipping fee to your original payment method; it should appear within 3-5 "
    "business days."
)
USAGE = {"input_tokens": 412, "output_tokens": 96}
PROVIDER, MODEL, RESPONSE_MODEL, FEATURE = "openai", "gpt-4o", "gpt-4o-2024-08-06", "order-support"


# -- contenders: one_call() is timed; drain() ends the background work; report() accounts for calls


def setup_tokentrail(args: argparse.Namespace) -> Contender:
    from tokentrail.collectors import Collector, CollectorSettings, KafkaSettings
    from tokentrail.collectors.kafka import KafkaTransport

    spool = tempfile.mkdtemp(prefix="tokentrail-bench-spool-")
    transport = KafkaTransport(KafkaSettings(bootstrap_servers=args.kafka, topic=args.topic, spool_dir=Path(spool)))
    # Two events per call; a queue that holds them all, so the figures never hide a drop.
    settings = CollectorSettings(max_queue=2 * (args.calls + args.warmup) + 1024)
    collector = Collector(service="bench-agent", transport=transport, settings=settings, register_atexit=False)

    def one_call() -> None:
        with collector.model_call(provider=PROVIDER, model=MODEL, messages=MESSAGES, feature=FEATURE) as call:
            call.finish(response_model=RESPONSE_MODEL, output=OUTPUT, usage=USAGE, finish_reason="stop")

    def drain() -> None:
        if not collector.flush(timeout=60.0):
            print("tokentrail: flush did not finish within 60 s", file=sys.stderr)

    def report() -> dict:
        st = collector.stats()
        collector.close(timeout=30.0)
        shutil.rmtree(spool, ignore_errors=True)
        emitted, delivered, dropped, spooled = (
            st.get("emitted"),
            st.get("delivered"),
            st.get("dropped"),
            st.get("spooled", 0),
        )
        return {
            "complete": emitted == 2 * (args.calls + args.warmup)
            and delivered == emitted
            and not dropped
            and not spooled,
            "text": f"emitted {emitted}, delivered {delivered}, dropped {dropped or 0}, spooled {spooled}, "
            f"queued {st.get('queued')}, in flight {st.get('in_flight')}",
        }

    return one_call, drain, report


def setup_opentelemetry(args: argparse.Namespace) -> Contender:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    class CountingNoOpExporter(SpanExporter):
        """Accepts every batch and sends it nowhere; counts spans so a drop cannot go unnoticed."""

        exported = 0

        def export(self, spans: Any) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    exporter = CountingNoOpExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
    # Defaults except the queue, which holds every span (the default 2,048 would drop and log).
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=args.calls + args.warmup + 1024))
    tracer = provider.get_tracer("bench")

    def one_call() -> None:
        # What a GenAI instrumentation records. Span attributes are flat: messages go as JSON strings.
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": MODEL,
            "gen_ai.input.messages": json.dumps(MESSAGES),
        }
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT, attributes=attributes) as span:
            span.set_attributes(
                {
                    "gen_ai.response.model": RESPONSE_MODEL,
                    "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": OUTPUT}]),
                    "gen_ai.usage.input_tokens": USAGE["input_tokens"],
                    "gen_ai.usage.output_tokens": USAGE["output_tokens"],
                    "gen_ai.response.finish_reasons": ("stop",),
                }
            )

    def drain() -> None:
        provider.force_flush()

    def report() -> dict:
        provider.shutdown()
        calls = args.calls + args.warmup
        return {"complete": exporter.exported == calls, "text": f"spans {calls}, exported {exporter.exported}"}

    return one_call, drain, report


def setup_langfuse(args: argparse.Namespace) -> Contender:
    # Langfuse builds its own BatchSpanProcessor, which reads the queue size from here.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(args.calls + args.warmup + 1024)
    from langfuse import Langfuse
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    for name in ("langfuse", "opentelemetry"):  # one error line per failed batch otherwise
        logging.getLogger(name).setLevel(logging.CRITICAL)

    handed_over = [0]
    export = OTLPSpanExporter.export

    def counting_export(self: Any, spans: Any) -> Any:
        handed_over[0] += len(spans)
        return export(self, spans)

    OTLPSpanExporter.export = counting_export  # type: ignore[method-assign]

    # timeout=1: each export to the dead host gives up after ~1 s instead of 5 s, so the drain
    # after the loop ends in seconds; it changes nothing on the caller's path.
    langfuse = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=UNREACHABLE, timeout=1)

    def one_call() -> None:
        with langfuse.start_as_current_observation(
            name=f"chat {MODEL}", as_type="generation", model=MODEL, input=MESSAGES
        ) as generation:
            generation.update(
                output={"role": "assistant", "content": OUTPUT},
                usage_details={"input": USAGE["input_tokens"], "output": USAGE["output_tokens"]},
            )

    def drain() -> None:
        langfuse.flush()

    def report() -> dict:
        langfuse.shutdown()
        calls = args.calls + args.warmup
        text = f"generations {calls}, handed to the exporter {handed_over[0]} (all refused by the host)"
        return {"complete": handed_over[0] == calls, "text": text}

    return one_call, drain, report


SETUPS = {"tokentrail": setup_tokentrail, "opentelemetry": setup_opentelemetry, "langfuse": setup_langfuse}


# -- one contender, one round (runs in a subprocess) -----------------------------------------------


def watch_caller_connects() -> list[int]:
    """Count socket connects on the main thread while `state[1]` is set: [connects, timing].

    Proof that no SDK does network I/O on the caller's thread in the timed loop (librdkafka connects
    from its own C threads, which this cannot see and does not need to).
    """
    state = [0, 0]
    connect = socket.socket.connect

    def watched_connect(self: socket.socket, address: Any) -> Any:
        if state[1] and threading.current_thread() is threading.main_thread():
            state[0] += 1
        return connect(self, address)

    socket.socket.connect = watched_connect  # type: ignore[method-assign]
    return state


def run_child(args: argparse.Namespace) -> dict:
    """One contender, one round, in this (fresh) process."""
    connects = watch_caller_connects()
    one_call, drain, report = SETUPS[args.child](args)
    for _ in range(args.warmup):
        one_call()
    drain()
    time.sleep(0.2)  # let background threads settle before the clock starts

    n, clock, pause = args.calls, time.perf_counter_ns, args.pause_us / 1e6
    samples = [0] * n
    gc.collect()
    connects[1] = 1
    cpu0, caller0 = time.process_time_ns(), time.thread_time_ns()
    for i in range(n):
        t0 = clock()
        one_call()
        samples[i] = clock() - t0
        if pause:
            time.sleep(pause)
    caller_cpu = time.thread_time_ns() - caller0
    connects[1] = 0
    drain()
    cpu = time.process_time_ns() - cpu0
    if pause:  # the sleeps' own CPU (syscalls, wake-ups) is not the SDK's: measure it and take it out
        k = min(n, 2_000)
        sleep_cpu0, sleep_caller0 = time.process_time_ns(), time.thread_time_ns()
        for _ in range(k):
            time.sleep(pause)
        caller_cpu -= (time.thread_time_ns() - sleep_caller0) * n // k
        cpu -= (time.process_time_ns() - sleep_cpu0) * n // k
    rep = report()
    rep["complete"] = rep["complete"] and connects[0] == 0
    rep["text"] += f"; caller-thread connects while timed: {connects[0]}"
    return {"samples": samples, "cpu_ns": cpu, "caller_cpu_ns": caller_cpu, "report": rep}


# -- orchestration -------------------------------------------------------------------------------


def p99(sorted_values: list[int]) -> int:
    """Nearest-rank 99th percentile of an already sorted list."""
    return sorted_values[max(0, math.ceil(0.99 * len(sorted_values)) - 1)]


def summarize(rounds: list[dict], calls: int) -> dict:
    """Median over rounds of each per-round figure, in microseconds."""
    per_round: dict[str, list[float]] = {"median": [], "p99": [], "mean": [], "cpu": [], "caller": []}
    for r in rounds:
        s = sorted(r["samples"])
        for key, value in (
            ("median", statistics.median(s)),
            ("p99", p99(s)),
            ("mean", statistics.fmean(s)),
            ("cpu", r["cpu_ns"] / calls),
            ("caller", r["caller_cpu_ns"] / calls),
        ):
            per_round[key].append(value / 1000)
    summary: dict[str, Any] = {key: statistics.median(values) for key, values in per_round.items()}
    summary["complete"] = all(r["report"]["complete"] for r in rounds)
    return summary


def timer_floor_ns(n: int) -> float:
    """Median cost of the measuring itself: two clock reads around a call that does nothing."""
    clock, samples = time.perf_counter_ns, []
    noop = lambda: None  # noqa: E731
    for _ in range(n):
        t0 = clock()
        noop()
        samples.append(clock() - t0)
    return statistics.median(samples)


def spawn(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--calls", str(args.calls), "--warmup", str(args.warmup)]
    cmd += ["--pause-us", str(args.pause_us), "--kafka", args.kafka or "", "--topic", args.topic or ""]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"the {name} run failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> str:
    names = ("tokentrail", "opentelemetry-sdk", "langfuse", "confluent-kafka")
    return ", ".join(f"{name} {metadata.version(name)}" for name in names) + f"; tokentrail encodes with {encoder()}"


def encoder() -> str:
    """Which JSON encoder tokentrail's exporter uses here (the `orjson` extra, or the standard library)."""
    try:
        from tokentrail.collectors import encoding
    except ImportError:
        return "the standard library's json"
    if encoding.dumps is encoding.dumps_stdlib:
        return "the standard library's json"
    return f"orjson {metadata.version('orjson')}"


def run_parent(args: argparse.Namespace) -> int:
    payload = len(json.dumps(MESSAGES).encode())
    output = len(json.dumps([{"role": "assistant", "content": OUTPUT}], ensure_ascii=False).encode())
    print(f"python {platform.python_version()}, {versions()}")
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"one call = {payload} B of input messages + {output} B of output")
    print(f"{args.calls} timed calls x {args.rounds} rounds per contender, after {args.warmup} warm-up calls")
    if args.pause_us:
        print(f"paced: {args.pause_us:g} us of sleep after each call (not timed; its CPU is measured and subtracted)")
    print(f"timer floor (two perf_counter_ns reads around a no-op call): {timer_floor_ns(args.calls):.0f} ns")

    sys.path.insert(0, str(REPO / "scripts"))
    broker = None
    if "tokentrail" in args.contenders and not args.kafka:
        from kafka_broker import KafkaBroker

        print("starting a local Kafka broker (scripts/kafka_broker.py) ...", flush=True)
        broker = KafkaBroker().start()
        args.kafka = broker.bootstrap
    results: dict[str, list[dict]] = {name: [] for name in args.contenders}
    try:
        if "tokentrail" in args.contenders:
            from kafka_broker import create_topic

            args.topic = create_topic(args.kafka, f"tokentrail.bench.{uuid.uuid4().hex[:8]}")
            print(f"Kafka at {args.kafka}, topic {args.topic}")
        for r in range(args.rounds):
            shift = r % len(args.contenders)
            for name in args.contenders[shift:] + args.contenders[:shift]:
                res = spawn(name, args)
                results[name].append(res)
                s = sorted(res["samples"])
                print(
                    f"  round {r + 1} {name:<13} median {statistics.median(s) / 1000:7.2f} us  "
                    f"p99 {p99(s) / 1000:8.2f} us  "
                    f"cpu/call {res['cpu_ns'] / args.calls / 1000:7.2f} us | {res['report']['text']}",
                    flush=True,
                )
    finally:
        if broker is not None:
            broker.close()
    return print_table(args, {name: summarize(rounds, args.calls) for name, rounds in results.items()})


def print_table(args: argparse.Namespace, summary: dict[str, dict]) -> int:
    print()
    print(f"Cost of one model call, us (median of {args.rounds} per-round figures, {args.calls} calls each)")
    print(f"{'':<20} {'--- caller-thread wall ---':>28}   {'------ process CPU ------':>26}   median")
    print(f"{'':<20} {'median':>8} {'p99':>9} {'mean':>9}   {'total':>8} {'caller':>8} {'deferred':>8}   vs tokentrail")
    base = summary.get("tokentrail")
    for name, s in summary.items():
        ratio = f"{s['median'] / base['median']:.1f}x" if base else ""
        print(
            f"{LABELS[name]:<20} {s['median']:8.2f} {s['p99']:9.1f} {s['mean']:9.1f}   "
            f"{s['cpu']:8.1f} {s['caller']:8.1f} {s['cpu'] - s['caller']:8.1f}   {ratio:>6}"
        )
    ok = True
    for name, factor in GOALS.items():
        if base and name in summary:
            ratio = summary[name]["median"] / base["median"]
            ok &= ratio >= factor
            verdict = "met" if ratio >= factor else "MISSED"
            print(f"goal: tokentrail median <= 1/{factor:.0f} of {LABELS[name]}'s: it is 1/{ratio:.1f} -> {verdict}")
    incomplete = [LABELS[name] for name, s in summary.items() if not s["complete"]]
    if incomplete:
        print(f"WARNING: not every call was accounted for in: {', '.join(incomplete)} (see the round lines)")
    return 0 if ok and not incomplete else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per contender per round (default 20000)")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed calls before each timed loop (default 2000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds; the contender order rotates each round (default 3)"
    )
    parser.add_argument(
        "--pause-us", type=float, default=0.0, help="untimed sleep after each call (default 0: back to back)"
    )
    parser.add_argument(
        "--kafka",
        default=os.environ.get("TOKENTRAIL_BENCH_KAFKA"),
        help="broker host:port (default: $TOKENTRAIL_BENCH_KAFKA, else a local broker is started)",
    )
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1 or args.warmup < 0 or args.pause_us < 0:
        parser.error("--calls and --rounds must be positive, --warmup and --pause-us non-negative")
    if args.child:
        print(json.dumps(run_child(args)))
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
