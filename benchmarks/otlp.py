"""OTLP spans vs v1 events through the real worker, in one run: the same calls both ways.

    .venv/bin/python benchmarks/otlp.py                       # starts a local Kafka broker
    .venv/bin/python benchmarks/otlp.py --kafka 127.0.0.1:9092 --events 6000 --rounds 2 --json out.json

The synthetic generator's valid events (model calls: a prompt and its output; tool calls) are
turned into the OpenTelemetry GenAI spans that would have carried them (a `chat` span per call,
an `execute_tool` span per tool call, current conventions, content in `gen_ai.input.messages` /
`gen_ai.output.messages`), one serialized `ExportTraceServiceRequest` per trace keyed by trace id,
as the collector's kafka exporter writes them with `partition_traces_by_id`. Then, on one broker:

1. mapping cost, in process: decoding the protobuf and mapping the spans (`OtlpExpand`, the
   stage the worker runs first), microseconds per span and per event;
2. v1 drain: the v1 lines of those events in a fresh topic, the real worker (benchmarks/
   pipeline_bench/worker.py, instrumented sink) draining the backlog: events/s;
3. OTLP drain: the spans in a fresh OTLP topic, the same worker with `--otlp-topic`: events/s and
   spans/s, and the ratio to the v1 run. Goal (issue 13): OTLP events/s >= 80% of v1 events/s.
   Then the same spans one per message (a trace's spans exported in different batches): the
   worst case. Steps 2 and 3 alternate `--rounds` times (the machine's load changes); the median
   ratios count.

Both stores must hold exactly the events sent (the same count, the same total cost). Figures and
their reading: docs/otlp.md, "Throughput".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import kafka, log, machine, median, median_item, new_topic, print_table, versions
from pipeline_bench.sustained import drain_figures
from pipeline_bench.traffic import ENV_NLP, generate_lines, produce_lines, read_store
from pipeline_bench.worker import WorkerProcess

GOAL_RATIO = 0.8
ENV_KEY = "TOKENTRAIL_REDACTION_KEY"
CHECKS = {
    "stored": "SELECT count() FROM tokentrail.events FINAL",
    "calls": "SELECT count() FROM tokentrail.calls FINAL",
    "cost": "SELECT toString(sum(cost_usd)) FROM tokentrail.calls FINAL",
    "tool_calls": "SELECT count() FROM tokentrail.tool_calls FINAL",
}


# -- the same traffic as spans ----------------------------------------------------------------


def valid_calls(lines: list[bytes]) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The generator's distinct valid events that make whole spans (a prompt with its output, or a
    tool call): their v1 lines, and the events as dicts."""
    from tokentrail.collectors.events import InvalidEvent, decode_event

    seen, docs, raw = set(), [], {}
    for line in lines:
        event = decode_event(line)
        if isinstance(event, InvalidEvent) or event.event_id in seen:
            continue
        seen.add(event.event_id)
        doc = event.model_dump(mode="json")
        docs.append(doc)
        raw[doc["event_id"]] = line
    kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
    for doc in docs:
        kinds[(doc["trace_id"], doc["span_id"])].add(doc["type"])
    whole = [
        d for d in docs if d["type"] == "tool_call" or kinds[(d["trace_id"], d["span_id"])] == {"prompt", "output"}
    ]
    return [raw[d["event_id"]] for d in whole], whole


def _hex(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def _ns(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e9)


def to_requests(events: list[dict[str, Any]], *, per_span: bool = False) -> list[tuple[bytes, bytes]]:
    """(trace id hex, serialized ExportTraceServiceRequest) per trace, spans in the current conventions.

    `per_span`: one message per span instead, as when a trace's spans end in different export
    batches (long agent runs; the real-collector test sees this): the worst case for the worker.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, bool) or not isinstance(value, int | float | list):
            return KeyValue(key=key, value=AnyValue(string_value=str(value)))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, float):
            return KeyValue(key=key, value=AnyValue(double_value=value))
        out = KeyValue(key=key)
        out.value.array_value.values.extend(AnyValue(string_value=str(v)) for v in value)
        return out

    prompts = {(e["trace_id"], e["span_id"]): e for e in events if e["type"] == "prompt"}
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["type"] != "prompt":
            by_trace[e["trace_id"]].append(e)
    out = []
    for trace, items in by_trace.items():
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        first = items[0]
        resource_spans.resource.attributes.extend(
            [kv("service.name", first["service"]), kv("deployment.environment.name", first["environment"])]
        )
        scope = resource_spans.scope_spans.add()
        trace_id = _hex(trace, 16)
        for e in items:
            s = scope.spans.add()
            s.trace_id, s.span_id = trace_id, _hex(e["span_id"], 8)
            if e.get("parent_span_id"):
                s.parent_span_id = _hex(e["parent_span_id"], 8)
            attrs = {"tokentrail.tenant": e["tenant"], "tokentrail.feature": e["feature"]}
            end = _ns(e["ts"])
            if e["type"] == "output":
                p = prompts[(e["trace_id"], e["span_id"])]
                s.name, s.start_time_unix_nano, s.end_time_unix_nano = f"chat {e['model']}", _ns(p["ts"]), end
                system = [{"type": "text", "content": m["content"]} for m in p["messages"] if m["role"] == "system"]
                inputs = [
                    {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                    for m in p["messages"]
                    if m["role"] != "system"
                ]
                parts = [{"type": "text", "content": m["content"]} for m in e["output"]]
                parts += [{"type": "tool_call", **t} for t in e["tool_calls"]]
                u = e["usage"]
                attrs |= {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": e["provider"],
                    "gen_ai.request.model": e["model"],
                    "gen_ai.response.model": e.get("response_model") or e["model"],
                    "gen_ai.usage.input_tokens": u["input_tokens"],
                    "gen_ai.usage.output_tokens": u["output_tokens"],
                    "gen_ai.usage.cache_read.input_tokens": u["cached_input_tokens"],
                    "gen_ai.response.finish_reasons": [e.get("finish_reason") or "stop"],
                    "gen_ai.system_instructions": json.dumps(system),
                    "gen_ai.input.messages": json.dumps(inputs),
                    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": parts}]),
                }
                if e.get("error"):
                    attrs["error.type"] = e["error"]["type"]
                    s.status.code = 2
            else:
                tool = e["tool"]
                duration = int((tool.get("duration_ms") or 0) * 1e6)
                s.name, s.start_time_unix_nano, s.end_time_unix_nano = (
                    f"execute_tool {tool['name']}",
                    end - duration,
                    end,
                )
                attrs |= {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": tool["name"],
                    "gen_ai.tool.call.id": tool.get("call_id") or "",
                    "gen_ai.tool.call.arguments": json.dumps(tool.get("arguments")),
                    "gen_ai.tool.call.result": json.dumps(tool.get("result")),
                }
                if tool.get("status") == "error":
                    attrs["error.type"] = "tool_error"
                    s.status.code = 2
            s.attributes.extend(kv(k, v) for k, v in attrs.items())
        if not per_span:
            out.append((trace_id.hex().encode(), request.SerializeToString()))
            continue
        for s in list(scope.spans):  # the same resource, one span each
            del scope.spans[:]
            scope.spans.append(s)
            out.append((trace_id.hex().encode(), request.SerializeToString()))
    return out


# -- measurements -----------------------------------------------------------------------------


def mapping_cost(requests: list[tuple[bytes, bytes]], runs: int = 3) -> dict[str, float]:
    """Decode + map (OtlpExpand) in this process: the fastest of `runs`, per span and per event."""
    from tokentrail.stream.batch import Batch, Inbound, now_utc
    from tokentrail.stream.otlp import OtlpExpand, OtlpSettings, decode_request

    spans = sum(len(decode_request(value)) for _, value in requests)
    best_decode = best_expand = float("inf")
    events = 0
    for _ in range(runs):
        started = time.perf_counter()
        for _, value in requests:
            decode_request(value, "proto")
        best_decode = min(best_decode, time.perf_counter() - started)
        batch = Batch([Inbound(f"otlp/0@{i}", value, now_utc()) for i, (_, value) in enumerate(requests)])
        stage = OtlpExpand(OtlpSettings(topics=frozenset({"otlp"})))
        started = time.perf_counter()
        stage(batch)
        best_expand = min(best_expand, time.perf_counter() - started)
        events = len(batch.inbound)
    return {
        "spans": spans,
        "events": events,
        "decode_us_per_span": best_decode / spans * 1e6,
        "expand_us_per_span": best_expand / spans * 1e6,
        "expand_us_per_event": best_expand / events * 1e6,
    }


def drain(
    bootstrap: str, args: argparse.Namespace, events: int, otlp: list[tuple[bytes, bytes]] | None, lines: list[bytes]
) -> dict[str, Any]:
    """The worker draining a backlog of v1 lines (otlp None) or of OTLP messages; figures from its batches."""
    from confluent_kafka import Producer

    events_topic = new_topic(bootstrap, "bench-otlp-events", args.partitions)
    extra: tuple[str, ...] = ()
    if otlp is None:
        produce_lines(bootstrap, events_topic, lines)
    else:
        otlp_topic = new_topic(bootstrap, "bench-otlp-spans", args.partitions)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
        for key, value in otlp:
            producer.produce(otlp_topic, value, key)
            producer.poll(0)
        producer.flush(60)
        extra = ("--otlp-topic", otlp_topic)
    with tempfile.TemporaryDirectory(prefix="tt-bench-otlp-") as tmp:
        worker = WorkerProcess(
            bootstrap,
            events_topic,
            Path(tmp),
            batch_size=args.batch_size,
            batch_within=0.2,
            record_ts=False,
            extra=extra,
        )
        try:
            worker.wait_inbound(1, 120, "the first batch")
            first = worker.cpu_seconds(), time.time()
            worker.wait_inbound(events, max(300.0, events / 10), "the backlog to be stored")
            last = worker.cpu_seconds(), time.time()
        finally:
            worker.stop()
        store = read_store(worker.store, CHECKS)
    figures = drain_figures(worker.batches, worker.started, first, last)
    return {**figures, "store": store}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", default=os.environ.get("TOKENTRAIL_BENCH_KAFKA"))
    parser.add_argument("--events", type=int, default=10_000, help="generator events (before filtering)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternated v1 / OTLP drains (median reported)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--nlp-model", default="none", help=f"{ENV_NLP} for the workers (as benchmarks/pipeline.py)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    os.environ[ENV_NLP] = args.nlp_model
    os.environ.setdefault(ENV_KEY, secrets.token_hex(32))

    log(f"generating {args.events:,} events (seed {args.seed}) and their spans")
    lines, _ = generate_lines(args.events, args.seed)
    v1_lines, events = valid_calls(lines)
    requests = to_requests(events)
    single = to_requests(events, per_span=True)
    results: dict[str, Any] = {
        "machine": machine(),
        "versions": versions("faust-streaming", "opentelemetry-proto", "protobuf", "chdb"),
        "events": len(events),
        "traces": len(requests),
    }
    results["mapping"] = mapping_cost(requests)
    spans = results["mapping"]["spans"]
    v1_runs, otlp_runs, single_runs = [], [], []
    with kafka(args.kafka) as bootstrap:
        for round_ in range(1, args.rounds + 1):  # alternated, so every path sees the same machine load
            log(f"round {round_}: v1 drain of {len(v1_lines):,} events")
            v1_runs.append(drain(bootstrap, args, len(v1_lines), None, v1_lines))
            log(
                f"round {round_}: OTLP drain of {spans:,} spans in {len(requests):,} messages -> {len(events):,} events"
            )
            otlp_runs.append(drain(bootstrap, args, len(events), requests, []))
            log(f"round {round_}: OTLP drain, one span per message ({len(single):,} messages)")
            single_runs.append(drain(bootstrap, args, len(events), single, []))
    for run in otlp_runs + single_runs:
        run["spans_per_s"] = run["events_per_s"] * spans / len(events)
    ratios = [o["events_per_s"] / v["events_per_s"] for v, o in zip(v1_runs, otlp_runs, strict=True)]
    single_ratios = [o["events_per_s"] / v["events_per_s"] for v, o in zip(v1_runs, single_runs, strict=True)]
    results["rounds"] = [
        {"v1": v, "otlp": o, "otlp_per_span": p, "ratio": r, "ratio_per_span": q}
        for v, o, p, r, q in zip(v1_runs, otlp_runs, single_runs, ratios, single_ratios, strict=True)
    ]
    results["ratio"], results["ratio_per_span"] = median(ratios), median(single_ratios)
    v1 = median_item(v1_runs, key=lambda r: r["events_per_s"])
    otlp = median_item(otlp_runs, key=lambda r: r["events_per_s"])
    per_span = median_item(single_runs, key=lambda r: r["events_per_s"])
    results["v1"], results["otlp"], results["otlp_per_span"] = v1, otlp, per_span
    stores = [r["store"] for r in v1_runs + otlp_runs + single_runs]
    exact = all(store == stores[0] for store in stores) and stores[0]["stored"] == len(events)
    print(f"\n{results['machine']}\n{results['versions']}")
    print(f"{len(events):,} events = {spans:,} spans in {len(requests):,} OTLP messages (one per trace)\n")
    m = results["mapping"]
    print(
        f"mapping in process: decode {m['decode_us_per_span']:.1f} us/span, "
        f"decode + map (OtlpExpand) {m['expand_us_per_span']:.1f} us/span = {m['expand_us_per_event']:.1f} us/event\n"
    )
    print_table(
        ["path", "events/s", "spans/s", "worker CPU us/event", "OtlpExpand us/event", "stored", "cost"],
        [
            [
                name,
                f"{r['events_per_s']:,.0f}",
                f"{r['spans_per_s']:,.0f}" if "spans_per_s" in r else "",
                f"{r['worker_cpu_us_per_msg']:.0f}",
                f"{r['worker_stages_us'].get('OtlpExpand', 0.0):.1f}",
                str(r["store"]["stored"]),
                r["store"]["cost"],
            ]
            for name, r in (("v1", v1), ("otlp, one message per trace", otlp), ("otlp, one message per span", per_span))
        ],
        right=range(1, 7),
    )
    per_round = ", ".join(f"{r:.0%}" for r in ratios)
    per_span_rounds = ", ".join(f"{r:.0%}" for r in single_ratios)
    print(
        f"\nOTLP / v1 events/s, median of {len(ratios)} alternated rounds: {results['ratio']:.0%} ({per_round}); "
        f"one span per message: {results['ratio_per_span']:.0%} ({per_span_rounds}); "
        f"goal >= {GOAL_RATIO:.0%}; every store identical and complete: {exact}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0 if exact and min(results["ratio"], results["ratio_per_span"]) >= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
