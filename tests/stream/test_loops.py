"""The loop detector on the scenario suite: zero misses, zero false alarms, and the detection delay."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from loop_scenarios import all_traces

from tokentrail.stream.detectors import LoopConfig, LoopDetector
from tokentrail.stream.pricing import PriceBook
from tokentrail.stream.stages import Inbound, build_pipeline

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def run(traces, detector: LoopDetector | None = None, batch_size: int = 7):
    """Feed the traces' events (interleaved, as a topic would deliver them) through the real pipeline."""
    detector = detector or LoopDetector()
    pipeline = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True, detectors=[detector])
    events = []
    for i in range(max(len(t.events) for t in traces)):
        events += [t.events[i] for t in traces if i < len(t.events)]
    rows = []
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        batch = pipeline.process([Inbound(f"s:{start + i}", json.dumps(e).encode(), T0) for i, e in enumerate(chunk)])
        rows += batch.rows["loop_detections"]
    return rows


def test_every_loop_is_caught_with_its_kind_and_nothing_else():
    """Every loop scenario is detected with the right kind, and no legitimate repetition is flagged."""
    loops, legit = all_traces()
    assert len(loops) >= 10 and len({t.name for t in legit}) >= 10
    rows = run(loops + legit)
    found = {(r["trace_id"], r["kind"]) for r in rows}
    expected = {(t.trace_id, t.kind) for t in loops}
    assert found == expected, {"missed": expected - found, "false alarms": found - expected}


def test_detection_delay(capsys):
    """Each loop is caught within a few events of its start; the delays are printed for the record."""
    loops, _ = all_traces()
    rows = run(loops)
    first = {}
    for r in rows:
        first.setdefault(r["trace_id"], r)
    delays = {}
    for t in loops:
        detection = first[t.trace_id]
        index = next(i for i, e in enumerate(t.events) if e["event_id"] == str(detection["event_id"]))
        delays[t.name] = index - t.loop_start + 1
    with capsys.disabled():
        print("\nloop detection delay (events from loop start to detection):")
        for name, delay in sorted(delays.items(), key=lambda kv: kv[1]):
            print(f"  {name:32s} {delay:3d}")
    # A tool step is 3 events (prompt, output, tool_call). The slowest shape by design is a
    # period-4 cycle: 3 full cycles of 4 steps, 36 events. Retry storms and echoed answers
    # need 5 and 4 calls (2 events each) of the loop.
    assert max(delays.values()) <= 36
    assert delays["retry-storm-429"] <= 10 and delays["self-feeding-answer"] <= 8 and delays["stuck-order-status"] <= 15


def test_detections_carry_evidence_and_spend():
    """A detection names the pattern, counts the repeats, and the tokens and cost burned so far."""
    loops, _ = all_traces()
    stuck = loops[0]
    rows = [r for r in run([stuck]) if r["kind"] == "repeated_tool_call"]
    latest = max(rows, key=lambda r: r["version"])
    evidence = json.loads(latest["evidence"])
    assert evidence["tool"] == "get_order_status" and "7781" in evidence["arguments"]
    assert latest["repeats"] == 10 and latest["tokens"] > 0 and latest["cost_usd"] > 0
    assert latest["first_seen"] <= latest["detected_at"]
    assert len({r["detection_id"] for r in rows}) == 1  # one detection, updated


def test_state_survives_a_handover():
    """Detector state is plain data: a new detector on the same state continues the count.

    (A restart with a restored table.)"""
    loops, _ = all_traces()
    stuck = loops[0]
    state: dict = {}
    first_half = type(stuck)(stuck.name, stuck.kind)
    first_half.events, first_half.trace_id = stuck.events[:8], stuck.trace_id  # 4 identical calls: below the bar
    assert run([first_half], LoopDetector(state=state)) == []
    json.loads(json.dumps(state))  # what a faust Table stores must be JSON
    rest = type(stuck)(stuck.name, stuck.kind)
    rest.events, rest.trace_id = stuck.events[8:], stuck.trace_id
    rows = run([rest], LoopDetector(state=state))
    assert rows and rows[0]["kind"] == "repeated_tool_call"


def test_expiry_bounds_the_state():
    """Traces idle longer than the TTL (event time) are dropped."""
    loops, _ = all_traces()
    detector = LoopDetector(LoopConfig(trace_ttl_s=60))
    run(loops, detector)
    assert len(detector.state) == len(loops)
    assert detector.expire(int(T0.timestamp() * 1000) + 10**9) == len(loops)
    assert detector.state == {}


def test_a_trace_idle_past_the_ttl_starts_afresh_even_before_a_sweep():
    """State handed back after its TTL (a seed from the worker's table, a sweep not yet run) is not continued."""
    stuck = all_traces()[0][0]  # detected at the 5th identical call
    first, second = stuck.events[:12], stuck.events[12:]
    detector = LoopDetector(LoopConfig(trace_ttl_s=3600))
    run([_shifted(first, 0)], detector)
    assert stuck.trace_id in detector.state
    late = run([_shifted(second, 2 * 3600)], detector)  # the same trace, two hours of event time later
    continued = run([_shifted(second, 60)], LoopDetector(LoopConfig(trace_ttl_s=3600), dict(_state_after(first))))
    assert max(d["repeats"] for d in late) == 6  # only the second half counted
    assert max(d["repeats"] for d in continued) == 10  # within the TTL the loop continues


def _shifted(events: list, seconds: int) -> SimpleNamespace:
    from datetime import datetime as dt
    from datetime import timedelta

    out = []
    for e in events:
        ts = dt.fromisoformat(e["ts"].replace("Z", "+00:00")) + timedelta(seconds=seconds)
        out.append({**e, "ts": ts.isoformat().replace("+00:00", "Z")})
    return SimpleNamespace(events=out)


def _state_after(events: list) -> dict:
    detector = LoopDetector(LoopConfig(trace_ttl_s=3600))
    run([_shifted(events, 0)], detector)
    return dict(detector.state)


def test_bad_thresholds_fail_at_startup():
    """A threshold below 2 or an unknown halt kind is a configuration error."""
    with pytest.raises(ValueError, match="must be >= 2"):
        LoopConfig(repeated_prompt=1)
    with pytest.raises(ValueError, match="unknown detection kinds"):
        LoopConfig(halt_on=frozenset({"everything"}))
