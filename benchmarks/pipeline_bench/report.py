"""The pipeline benchmark's printed report: a summary table against the goals, then the details."""

from __future__ import annotations

from typing import Any

from _common import print_table

GOAL_SUSTAINED = 5_000.0  # events/s, pattern-only redaction
GOAL_SUSTAINED_NER = 3_000.0  # events/s, with spaCy NER
GOAL_NER_FLOOR = 1.5  # what NER adds to Redact, over nlp.pipe alone on the same texts
GOAL_P99 = 2.0  # seconds, at GOAL_RATE
GOAL_RATE = 1_000  # events/s offered in the latency run
MIN_BATCHES = 5  # fewer, and a sustained rate is one or two batch intervals: noise, not a rate


def sustained_goal(nlp_model: str) -> float:
    """events/s: pattern-only redaction has one goal, NER another."""
    return GOAL_SUSTAINED if nlp_model == "none" else GOAL_SUSTAINED_NER


def report(r: dict[str, Any]) -> None:
    before, after = r["loadavg_before"][0], r["loadavg_after"][0]
    print(f"\nPipeline benchmark: {r['machine']}")
    print(f"{r['versions']}; redactor: {r['redactor']}")
    print(f"run took {r['elapsed_s']:.0f} s; load average (1 min) {before:.1f} before, {after:.1f} after\n")
    print_table(("what", "measured", "goal", "holds"), summary_rows(r))
    for key, title in (("sustained", "Sustained"), ("sustained_inline", "Sustained, --inline-pipeline")):
        if key in r:
            report_sustained(title, r[key])
    for lat in r.get("latency", []):
        report_latency(lat)
    if "replay" in r:
        report_replay(r["replay"])
    report_floor(r.get("ner_floor", {}))


def report_floor(floor: dict[str, Any]) -> None:
    if "skipped" in floor:
        print(f"\nNER floor: skipped ({floor['skipped']})")
    elif floor:
        print(
            f"\nNER floor, in this process on {floor['messages']:,} events' text ({floor['texts']:,} distinct strings, "
            f"model {floor['model']}), medians of 3 interleaved rounds, cold caches:\n"
            f"  Redact with NER {floor['ner_us']:.1f} us/message, pattern-only {floor['pattern_us']:.1f}, "
            f"nlp.pipe alone on the {floor['pieces']:,} pieces NER was sent {floor['floor_us']:.1f}\n"
            f"  the NER step inside Redact {floor['ner_step_us']:.1f} us/message: "
            f"{floor['ner_step_ratio']:.2f}x the floor; "
            f"(NER - pattern-only) / floor = {floor['ner_overhead_ratio']:.2f}x; "
            f"Redact with NER / floor = {floor['ratio']:.1f}x (pattern rules are most of Redact's cost)"
        )


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    if "sustained" in r:
        rate = r["sustained"]["messages_per_s"]
        goal = sustained_goal(r.get("nlp_model", "none"))
        holds = "yes" if rate >= goal else "NO"
        rows.append(("Sustained, Kafka -> worker -> ClickHouse", f"{rate:,.0f} events/s", f">= {goal:,.0f}", holds))
        with_startup = r["sustained"]["messages_per_s_with_startup"]
        rows.append(("  same, including worker start-up", f"{with_startup:,.0f} events/s", "", ""))
    if "sustained_inline" in r:
        rate = r["sustained_inline"]["messages_per_s"]
        rows.append(("  same, pipeline in the worker's process", f"{rate:,.0f} events/s", "", ""))
    for lat in r.get("latency", []):
        rows.append(
            (
                f"Latency p50 / p99 / max, --batch-within {lat['batch_within']}",
                f"{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['max']:.2f} s",
                f"p99 <= {GOAL_P99:.0f} s",
                "yes" if lat["p99"] <= GOAL_P99 else "NO",
            )
        )
    floor = r.get("ner_floor", {})
    if "ratio" in floor:
        overhead = floor["ner_step_ratio"]
        rows.append(
            (
                "Redact: the NER step over the NER floor",
                f"{overhead:.2f}x",
                f"<= {GOAL_NER_FLOOR}x",
                "yes" if overhead <= GOAL_NER_FLOOR else "NO",
            )
        )
        rows.append(("  (NER - pattern-only) over the floor", f"{floor['ner_overhead_ratio']:.2f}x", "", ""))
        rows.append(("  Redact with NER over the floor", f"{floor['ratio']:.1f}x", "", ""))
    if "replay" in r:
        rows.append(("Embedded replay (tokentrail replay path)", f"{r['replay']['lines_per_s']:,.0f} events/s", "", ""))
    return rows


def report_sustained(title: str, s: dict[str, Any]) -> None:
    expected = s["expected"]
    extra = f" {s['worker_extra']}" if s.get("worker_extra") else ""
    print(
        f"\n{title}: {s['lines']:,} lines ({expected['stored']:,} distinct events, {expected['dead']:,} malformed, "
        f"{expected['deliveries'] - expected['stored']:,} re-deliveries) pre-produced to {s['topic_partitions']} "
        f"partitions in {s['produce_s']:.1f} s; worker --batch-size {s['batch_size']} --batch-within "
        f"{s['batch_within']}{extra}; worker start-up to first stored batch {s['startup_s']:.1f} s, drained in "
        f"{s['drain_s']:.1f} s ({s['batches']} batches, median {s['batch_median']:,.0f} messages); "
        f"distinct events stored/s {s['events_per_s']:,.0f}."
    )
    if s["batches"] < MIN_BATCHES:
        print(
            f"  NOTE: only {s['batches']} batches; the rate rests on the {s['batches'] - 1} after the first. "
            "Use more --events for a figure worth quoting."
        )
    split = s["worker_cpu_split_us"]
    print(
        f"  worker CPU {s['worker_cpu_s']:.1f} s: {s['worker_cpu_share']:.0%} of one core over its lifetime, "
        f"{s['worker_cpu_share_draining']:.0%} while draining = {s['worker_cpu_us_per_msg']:.0f} us of CPU per "
        f"message (worker process {split['worker process']:.0f}, pipeline process {split['pipeline process']:.0f})"
    )
    per_msg = dict(s["per_msg_us"])
    if s["pipeline_process"]:
        busy = per_msg.pop("pipeline")
        print(
            "  worker process wall time per message: "
            + ", ".join(f"{k} {v:.0f} us" for k, v in per_msg.items())
            + f" (total {sum(per_msg.values()):.0f} us; 'kafka+faust' includes waiting for the pipeline process, "
            f"busy {busy:.0f} us per message in parallel)"
        )
    else:
        print(
            "  worker wall time per message: "
            + ", ".join(f"{k} {v:.0f} us" for k, v in per_msg.items())
            + f" (total {sum(per_msg.values()):.0f} us)"
        )
    print("  pipeline per message: " + ", ".join(f"{k} {v:.0f} us" for k, v in s["worker_stages_us"].items()))
    print(f"  store check: {s['store']} expected {expected}: {'exact' if s['exact'] else 'MISMATCH'}")


def report_latency(lat: dict[str, Any]) -> None:
    print(
        f"\nLatency, --batch-within {lat['batch_within']}: offered {lat['offered_rate']:,.0f} events/s "
        f"(pacing fell behind by at most {lat['pacing_lag_max_s'] * 1000:.0f} ms), {lat['events']:,} events "
        f"measured; until the worker took the batch p50 {lat['taken_p50']:.2f} s / p99 {lat['taken_p99']:.2f} s, "
        f"pipeline + insert p50 {lat['processing_p50']:.2f} s / p99 {lat['processing_p99']:.2f} s; "
        f"median batch {lat['batch_median']:,.0f} messages, {lat['batch_ms_median']:.0f} ms to process and store "
        f"(of which {lat['insert_ms_median']:.0f} ms in chDB inserts); "
        f"store check: {lat['stored_distinct']:,} distinct events {'(exact)' if lat['exact'] else '(MISMATCH)'}"
    )


def report_replay(rp: dict[str, Any]) -> None:
    print(
        f"\nEmbedded replay: {rp['lines']:,} lines in batches of {rp['batch_size']:,}, runs {rp['runs']} lines/s "
        f"(median {rp['lines_per_s']:,.0f}; {rp['lines_per_s_after_build']:,.0f} without the "
        f"{rp['build_s']:.1f} s spent building the pipeline)"
    )
    print("Cost per inbound message, in-process (no Kafka), microseconds, median of the replay runs:")
    for name, us in rp["stages_us"].items():
        print(f"  {name:<24} {us:8.1f}")
    print(f"  {'pipeline total':<24} {sum(rp['stages_us'].values()):8.1f}")
    print(f"  {'sink: normalise values':<24} {rp['normalise_us']:8.1f}")
    print(f"  {'sink: chDB insert':<24} {rp['insert_us']:8.1f}")
    print(f"  {'replay, all in':<24} {rp['total_us']:8.1f}")
