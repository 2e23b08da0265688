"""Detectors in the worker on a real broker: the kill switch stops a looping agent, and a restart keeps loop state."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from kafka_harness import consume_all, produce, read_store, start_worker, stop, wait_caught_up, wait_until
from loop_scenarios import all_traces

import tokentrail.collectors as tt
from tokentrail.collectors.kafka import KafkaTransport

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _wait_ready(tmp_path, group: str, worker) -> None:
    """Until the worker has built its pipeline process and joined its group (faust logs "Ready"):
    on a loaded machine that takes far longer than any fixed pause, and the agent would run ahead."""

    def ready() -> bool:
        return any(b"[^Worker]: Ready" in log.read_bytes() for log in tmp_path.glob(f"worker-{group}-*.log"))

    wait_until(ready, 300, "the worker to be ready", worker)


def test_kill_switch_stops_a_looping_agent(kafka_bootstrap, new_topic, tmp_path):
    """An agent stuck calling the same tool is halted (TraceHalted) within a few steps of the detection."""
    topic = new_topic(partitions=2)
    control = f"{topic}.control"
    store = tmp_path / "store"
    worker = start_worker(
        kafka_bootstrap,
        topic,
        store,
        group="halt",
        batch_size=200,
        extra=[
            "--halt-on",
            "repeated_tool_call",
            "--batch-within",
            "0.2",
            "--control-topic",
            control,
            "--alerts-topic",
            f"{topic}.alerts",
        ],
    )
    transport = KafkaTransport(
        tt.KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, spool_dir=tmp_path / "spool")
    )
    collector = tt.Collector(
        service="agent", transport=transport, register_atexit=False, settings=tt.CollectorSettings(flush_interval=0.05)
    )
    collector.enable_kill_switch(kafka_bootstrap, topic=control)
    _wait_ready(tmp_path, "halt", worker)  # the agent's steps are timed from the detection on

    steps, halted = 0, None
    try:
        with collector.trace(feature="order-support", tenant="acme") as scope:
            messages = [{"role": "user", "content": "Where is order 7781?"}]
            while steps < 120:
                with collector.model_call(provider="openai", model="gpt-4o", messages=messages) as call:
                    call.finish(
                        tool_calls=[{"id": f"c{steps}", "name": "get_order_status", "arguments": {"order_id": "7781"}}],
                        usage={"input_tokens": 300 + 20 * steps, "output_tokens": 12},
                        finish_reason="tool_calls",
                    )
                with collector.tool_call("get_order_status", arguments={"order_id": "7781"}) as tool:
                    tool.set_result({"status": "label_created"})
                steps += 1
                messages = messages + [{"role": "tool", "content": '{"status": "label_created"}'}]
                time.sleep(0.25)
    except tt.TraceHalted as exc:
        halted = exc
    finally:
        collector.close()
        stop(worker)
    assert halted is not None, f"the agent ran {steps} steps without being halted"
    assert halted.trace_id == scope.trace_id and halted.record["kind"] == "repeated_tool_call"
    detected_at_step = 5  # the default threshold: the 5th identical call
    print(f"\nkill switch: detection at step {detected_at_step}, halted at step {steps + 1}")
    assert steps + 1 - detected_at_step <= 12, f"halted {steps + 1 - detected_at_step} steps after the detection"
    alerts = consume_all(kafka_bootstrap, f"{topic}.alerts", 1, timeout=20)
    assert any(json.loads(v)["trace_id"] == scope.trace_id for _, v in alerts)


def test_worker_restart_mid_loop_keeps_the_state(kafka_bootstrap, new_topic, tmp_path):
    """Half a loop, worker stopped and restarted (state restored from the table's changelog), other half: detected."""
    loops, _ = all_traces()
    stuck = loops[0]  # 10 identical tool steps; detection needs 5
    topic = new_topic(partitions=2)
    store = tmp_path / "store"
    first_half, second_half = stuck.events[:12], stuck.events[12:]  # 4 identical calls, then 6 more
    produce(kafka_bootstrap, topic, [json.dumps(e).encode() for e in first_half])
    worker = start_worker(kafka_bootstrap, topic, store, group="restart")
    wait_caught_up(kafka_bootstrap, topic, "restart", worker)
    stop(worker)
    assert read_store(store, {"n": "SELECT count() FROM tokentrail.loop_detections"})["n"] == [(0,)]

    produce(kafka_bootstrap, topic, [json.dumps(e).encode() for e in second_half])
    worker = start_worker(kafka_bootstrap, topic, store, group="restart")
    wait_caught_up(kafka_bootstrap, topic, "restart", worker)
    stop(worker)
    rows = read_store(store, {"d": "SELECT kind, repeats, first_seen FROM tokentrail.loop_detections FINAL"})["d"]
    assert [(kind, repeats) for kind, repeats, _ in rows] == [("repeated_tool_call", 10)]


def _tool_step(collector, step: int, order_id: str = "7781") -> None:
    """One agent step: the model asks for the same tool (with the context grown by the previous
    results, so no prompt repeats), the tool returns the same result."""
    result = {"role": "tool", "content": '{"status": "label_created"}'}
    messages = [{"role": "user", "content": "Where is order 7781?"}] + [result] * step
    with collector.model_call(provider="openai", model="gpt-4o", messages=messages) as call:
        call.finish(
            tool_calls=[{"id": f"c{step}", "name": "get_order_status", "arguments": {"order_id": order_id}}],
            usage={"input_tokens": 300 + 20 * step, "output_tokens": 12},
            finish_reason="tool_calls",
        )
    with collector.tool_call("get_order_status", arguments={"order_id": order_id}) as tool:
        tool.set_result({"status": "label_created"})


def test_a_halt_stops_only_the_looping_tenants_trace(kafka_bootstrap, new_topic, tmp_path):
    """Two tenants, one trace id: globex makes 4 identical calls (below the bar of 5), acme loops.

    Only acme's trace is detected and halted; globex's collector sees the halt record on the control
    topic but ignores it (another tenant's trace), and its next call in the same trace id goes ahead.
    Keyed by trace alone, 4 + 1 calls would have crossed the bar and halted both."""
    topic = new_topic(partitions=2)
    control = f"{topic}.control"
    store = tmp_path / "store"
    worker = start_worker(
        kafka_bootstrap,
        topic,
        store,
        group="halt-tenants",
        batch_size=200,
        extra=["--halt-on", "repeated_tool_call", "--batch-within", "0.2", "--control-topic", control],
    )

    def collector_for(tenant: str) -> tt.Collector:
        transport = KafkaTransport(
            tt.KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, spool_dir=tmp_path / f"spool-{tenant}")
        )
        collector = tt.Collector(
            service="agent",
            tenant=tenant,
            transport=transport,
            register_atexit=False,
            settings=tt.CollectorSettings(flush_interval=0.05),
        )
        collector.enable_kill_switch(kafka_bootstrap, topic=control)
        return collector

    acme, globex = collector_for("acme"), collector_for("globex")
    shared = uuid.uuid4().hex
    _wait_ready(tmp_path, "halt-tenants", worker)
    halted = None
    try:
        with globex.trace(feature="order-support", trace_id=shared):
            for step in range(4):
                _tool_step(globex, step)
        globex.flush()
        time.sleep(2)  # globex's calls are in the worker's state before acme's
        steps = 0
        try:
            with acme.trace(feature="order-support", trace_id=shared):
                while steps < 400:  # a loaded machine may take a while to start the worker
                    _tool_step(acme, steps)
                    steps += 1
                    time.sleep(0.25)
        except tt.TraceHalted as exc:
            halted = exc
        assert halted is not None and halted.record["tenant"] == "acme", f"acme ran {steps} steps unhalted"
        assert steps >= 5, f"acme was halted after {steps} calls: globex's calls were counted with acme's"
        wait_until(lambda: globex.halted(shared, tenant="acme") is not None, 30, "globex's listener reads the halt")
        assert globex.halted(shared) is None  # its own tenant's trace is not halted
        with globex.trace(feature="order-support", trace_id=shared):
            _tool_step(globex, 4, order_id="7782")  # raises TraceHalted if the halt is honoured
    finally:
        acme.close()
        globex.close()
        stop(worker)
    rows = read_store(store, {"d": "SELECT DISTINCT tenant, trace_id, kind FROM tokentrail.loop_detections FINAL"})
    assert rows["d"] == [("acme", shared, "repeated_tool_call")]
