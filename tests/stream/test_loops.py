"""The loop detector on the scenario suite: zero misses, zero false alarms, and the detection delay."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from loop_scenarios import all_traces

from tokentrail.stream.detectors import LoopConfig, LoopDetector
from tokentrail.stream.detectors.loops import detection_id, split_state_key, state_key
from tokentrail.stream.pricing import PriceBook
from tokentrail.stream.stages import Inbound, build_pipeline

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def run(traces, detector: LoopDetector | None = None, batch_size: int = 7, received: datetime = T0):
    """Feed the traces' events (interleaved, as a topic would deliver them) through the real pipeline,
    read by the processor at `received` (processing time)."""
    detector = detector or LoopDetector()
    pipeline = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True, detectors=[detector])
    events = []
    for i in range(max(len(t.events) for t in traces)):
        events += [t.events[i] for t in traces if i < len(t.events)]
    rows = []
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        batch = pipeline.process(
            [Inbound(f"s:{start + i}", json.dumps(e).encode(), received) for i, e in enumerate(chunk)]
        )
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
    """Traces the processor has not seen for longer than the TTL (processing time) are dropped."""
    loops, _ = all_traces()
    detector = LoopDetector(LoopConfig(trace_ttl_s=60))
    run(loops, detector)
    assert len(detector.state) == len(loops)
    assert detector.expire(int(T0.timestamp() * 1000) + 10**9) == len(loops)
    assert detector.state == {}


def test_a_trace_idle_past_the_ttl_starts_afresh_even_before_a_sweep():
    """State handed back after its TTL (a seed from the worker's table, a sweep not yet run) is not continued.

    Idle is processing time: the second half read two hours later starts afresh, while the same
    half read a minute later, or with event times two hours later but read at once, continues."""
    stuck = all_traces()[0][0]  # detected at the 5th identical call
    first, second = stuck.events[:12], stuck.events[12:]
    detector = LoopDetector(LoopConfig(trace_ttl_s=3600))
    run([_shifted(first, 0)], detector)
    assert state_key("acme", stuck.trace_id) in detector.state
    late = run([_shifted(second, 0)], detector, received=T0 + timedelta(hours=2))
    continued = run([_shifted(second, 60)], LoopDetector(LoopConfig(trace_ttl_s=3600), dict(_state_after(first))))
    ts_late = run([_shifted(second, 2 * 3600)], LoopDetector(LoopConfig(trace_ttl_s=3600), dict(_state_after(first))))
    assert max(d["repeats"] for d in late) == 6  # only the second half counted
    assert max(d["repeats"] for d in continued) == 10  # within the TTL the loop continues
    assert max(d["repeats"] for d in ts_late) == 10  # event time does not age a trace


def test_a_far_future_event_does_not_expire_other_traces():
    """Issue 11 §3: one event stamped as far ahead as the contract allows (received_at + 1 day) does
    not expire other traces' state, at a sweep or when their next event comes."""
    loops, _ = all_traces()
    stuck = loops[0]
    detector = LoopDetector(LoopConfig(trace_ttl_s=3600))
    detector.EXPIRE_EVERY = 1  # a sweep after every batch
    run([_shifted(stuck.events[:12], 0)], detector)  # 4 identical calls: below the bar
    read_at = T0 + timedelta(minutes=1)
    ahead = (read_at + timedelta(days=1) - timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    future = SimpleNamespace(events=[{**e, "trace_id": "far-future", "ts": ahead} for e in loops[1].events[:3]])
    assert run([future], detector, received=read_at) == []
    assert state_key("acme", "far-future") in detector.state  # accepted: inside the contract's window
    assert state_key("acme", stuck.trace_id) in detector.state
    assert detector.expire(int((T0 + timedelta(minutes=2)).timestamp() * 1000)) == 0
    rows = run([_shifted(stuck.events[12:], 120)], detector, received=T0 + timedelta(minutes=3))
    assert max(d["repeats"] for d in rows) == 10  # the loop's count went on


def test_expiry_keeps_at_most_max_traces_the_least_recently_seen_going_first():
    """Beyond max_traces a sweep drops the states the processor saw longest ago, whatever their event time."""
    loops, _ = all_traces()
    detector = LoopDetector(LoopConfig(max_traces=2))
    for minute, trace in enumerate(loops[:4]):
        run([trace], detector, received=T0 + timedelta(minutes=minute))
    assert detector.expire(int((T0 + timedelta(minutes=5)).timestamp() * 1000)) == 2
    assert set(detector.state) == {state_key("acme", t.trace_id) for t in loops[2:4]}


def _as_tenant(events: list, tenant: str, trace_id: str) -> SimpleNamespace:
    """The events as another tenant's (own event ids, so deduplication keeps both tenants' copies)."""
    return SimpleNamespace(
        events=[
            {
                **e,
                "tenant": tenant,
                "trace_id": trace_id,
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, tenant + e["event_id"])),
            }
            for e in events
        ]
    )


def test_tenants_reusing_a_trace_id_are_kept_apart():
    """Two tenants, one trace id: one loops, the other does not; only the looping tenant's trace is
    detected (its own detection id), and the other tenant's calls neither add to nor carry its count."""
    loops, legit = all_traces()
    stuck, pagination = loops[0], next(t for t in legit if t.name == "pagination")
    shared = stuck.trace_id
    rows = run([_as_tenant(stuck.events, "acme", shared), _as_tenant(pagination.events, "globex", shared)])
    assert rows and {r["tenant"] for r in rows} == {"acme"}
    assert {r["detection_id"] for r in rows} == {detection_id("acme", shared, "repeated_tool_call")}
    assert detection_id("acme", shared, "repeated_tool_call") != detection_id("globex", shared, "repeated_tool_call")
    # Half a loop each (4 identical calls, the bar is 5): together they would cross it, apart they do not.
    detector = LoopDetector()
    half = stuck.events[:12]
    assert run([_as_tenant(half, "acme", shared), _as_tenant(half, "globex", shared)], detector) == []
    assert set(detector.state) == {state_key("acme", shared), state_key("globex", shared)}
    assert detector.state[state_key("globex", shared)]["tenant"] == "globex"


def test_state_keys_split_back():
    """A state key is the (tenant, trace) pair, unambiguous whatever the trace id holds."""
    assert split_state_key(state_key("acme", "a\x00b")) == ("acme", "a\x00b")
    with pytest.raises(KeyError):
        split_state_key("no-tenant-here")


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
