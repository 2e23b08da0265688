"""The pipeline process: the same rows as the pipeline in-process, loop state handed over, no orphans."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import pytest
from child_processes import child_pids, is_running
from loop_scenarios import all_traces

from tokentrail.stream.detectors import state_key
from tokentrail.stream.embedded import batch_token
from tokentrail.stream.faust_worker.config import parse_args
from tokentrail.stream.pipeline_process import PipelineProcess, PipelineSettings, StateCache
from tokentrail.stream.runtime import make_pipeline
from tokentrail.stream.stages import Inbound
from tokentrail.stream.synthetic import GeneratorConfig, Truth, iter_lines

T0 = datetime(2026, 11, 20, tzinfo=UTC)
KEY = secrets.token_bytes(32)


def generated(events: int) -> list[Inbound]:
    config = GeneratorConfig(seed=5, events=events)
    return [
        Inbound(f"gen:{i}", line.encode(), T0)
        for i, line in enumerate(iter_lines(config, Truth(config.seed, config.events)))
    ]


def as_inbound(events: list[dict], start: int = 0) -> list[Inbound]:
    return [Inbound(f"s:{start + i}", json.dumps(e).encode(), T0) for i, e in enumerate(events)]


@pytest.fixture
def engine():
    started = PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY))
    started.wait_started()
    yield started
    started.close()


def test_same_rows_and_detections_as_in_process(engine):
    """Redacted text, prices, dead letters, loop detections: the child's batch equals the in-process one."""
    inbound = generated(3000)
    local = make_pipeline(prices=None, allow_ephemeral_key=False, redaction_key=KEY)
    expected = [local.process(inbound[i : i + 1000]) for i in range(0, len(inbound), 1000)]
    got = [engine.submit(inbound[i : i + 1000], {}).result(60) for i in range(0, len(inbound), 1000)]
    for want, have in zip(expected, got, strict=True):
        assert have.rows == want.rows
        assert have.detections == want.detections
    assert sum(len(b.rows["deadletter"]) for b in got) > 0 and sum(len(b.rows["calls"]) for b in got) > 0
    assert any(b.rows["pii_findings"] for b in got), "the generator's PII was found in the child"
    assert set(got[-1].stage_seconds) >= {"Validate", "Redact", "BuildRows", "LoopDetector"}


def test_loop_state_hands_over_through_seeds(engine):
    """What the child changed, seeded into a fresh child (a restarted worker), continues the same loop."""
    stuck = all_traces()[0][0]  # the same tool call, again and again: detected at the 5th
    first, second = stuck.events[:12], stuck.events[12:]
    before = engine.submit(as_inbound(first), {}).result(60)
    assert not before.rows["loop_detections"]
    assert set(before.state_changes) == {state_key("acme", stuck.trace_id)}  # keyed by (tenant, trace)

    fresh = PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY))
    try:
        seeded = fresh.submit(as_inbound(second, 12), dict(before.state_changes)).result(60)
        unseeded = PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY))
        try:
            cold = unseeded.submit(as_inbound(second, 12), {}).result(60)
        finally:
            unseeded.close()
    finally:
        fresh.close()
    # Seeded: the loop counted from its first call (10 repeats, first seen at 09:00:06); a child
    # without the seed would see only the second half (6 repeats, first seen 24 s later).
    assert [(d["kind"], d["repeats"]) for d in seeded.rows["loop_detections"]][-1] == ("repeated_tool_call", 10)
    assert seeded.rows["loop_detections"][-1]["first_seen"] < cold.rows["loop_detections"][-1]["first_seen"]
    assert cold.rows["loop_detections"][-1]["repeats"] == 6


def test_the_childs_newer_state_wins_over_a_stale_seed_until_it_is_told_to_forget(engine):
    stuck = all_traces()[0][0]
    first = engine.submit(as_inbound(stuck.events[:8]), {}).result(60)
    key = state_key("acme", stuck.trace_id)
    stale = {key: {**first.state_changes[key], "events": 0}}
    second = engine.submit(as_inbound(stuck.events[8:10], 8), stale).result(60)
    assert second.state_changes[key]["events"] == 10  # its own state, not the stale seed
    engine.forget_state()
    third = engine.submit(as_inbound(stuck.events[10:12], 10), stale).result(60)
    assert third.state_changes[key]["events"] == 2  # after a rebalance: the table's word


def test_state_cache_records_changes_not_evictions():
    cache = StateCache(capacity=2)
    cache.seed({"a": {"n": 1}})
    assert cache.take_changes() == {}
    cache["b"] = {"n": 2}
    cache["c"] = {"n": 3}  # evicts "a", the least recently written
    assert "a" not in cache and len(cache) == 2
    del cache["b"]
    assert cache.take_changes() == {"b": None, "c": {"n": 3}}
    cache.seed({"c": {"n": 0}, "d": {"n": 4}})  # a seed never replaces what the child has
    assert cache["c"] == {"n": 3} and cache["d"] == {"n": 4}


def keyed_partition(item: Inbound, partitions: int = 4) -> int:
    """The partition Kafka's producer would pick for the message (keyed by trace id): one per trace."""
    try:
        trace = json.loads(item.raw).get("trace_id", "")
    except (ValueError, AttributeError):  # the generator's malformed lines: any partition
        trace = ""
    return int(hashlib.blake2b(str(trace).encode(), digest_size=4).hexdigest(), 16) % partitions


def canonical(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)


def test_two_children_split_by_partition_store_what_one_pipeline_stores():
    """A batch split by partition over two children: the same rows, dead letters, findings and loop
    detections as one pipeline over the whole batch (re-deliveries caught, loops followed across
    batches), the whole batch's dedup token, and every child's stage times added up."""
    inbound = generated(4000)
    loops = 0
    local = make_pipeline(prices=None, allow_ephemeral_key=False, redaction_key=KEY)
    engine = PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY), processes=2)
    try:
        engine.wait_started()
        for start in range(0, len(inbound), 1000):
            batch = inbound[start : start + 1000]
            want = local.process(batch)
            have = engine.submit(batch, {}, [keyed_partition(i) for i in batch]).result(60)
            assert set(have.rows) == set(want.rows)
            for table in want.rows:
                assert canonical(have.rows[table]) == canonical(want.rows[table]), table
            assert canonical(have.detections) == canonical(want.detections)
            assert have.token == batch_token(batch)
            loops += len(have.rows["loop_detections"])
        assert loops > 0, "the generator's loops were detected (a trace split over children would miss them)"
        assert engine.alive()
        children = engine._stage_seconds
        assert all(child.get("Validate", 0) > 0 for child in children), "both children had work"
        assert have.stage_seconds["Validate"] == pytest.approx(sum(child["Validate"] for child in children))
    finally:
        engine.close()


def test_several_children_need_each_messages_partition_and_at_least_one_child():
    with pytest.raises(ValueError, match="at least 1"):
        PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY), processes=0)
    engine = PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY), processes=2)
    try:
        with pytest.raises(ValueError, match="needs its partition"):
            engine.submit(generated(3), {})
    finally:
        engine.close()
    with pytest.raises(ValueError, match="--pipeline-processes must be at least 1"):
        parse_args(["--kafka", "localhost:9092", "--pipeline-processes", "0"])


def test_closing_cancels_queued_batches_rather_than_failing_them():
    """A worker stopping shuts the children's pools down: a batch still queued comes back cancelled
    (the agent lets that through quietly), not as a failure that would be logged as a dead pipeline."""
    engine = PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY), processes=2)
    engine.wait_started()
    batch = generated(2000)
    partitions = [keyed_partition(i) for i in batch]
    futures = [engine.submit(batch, {}, partitions) for _ in range(4)]
    engine.close()
    concurrent.futures.wait(futures, timeout=120)
    assert futures[-1].cancelled()
    assert all(f.cancelled() or f.exception() is None for f in futures)


def test_alive_until_any_child_dies():
    engine = PipelineProcess(PipelineSettings(prices=None, redaction_key=KEY), processes=2)
    try:
        engine.wait_started()
        assert engine.alive()
        victim = next(iter(engine._executors[1]._processes.values()))
        victim.kill()
        victim.join(10)
        wait = time.monotonic() + 10
        while engine.alive() and time.monotonic() < wait:
            time.sleep(0.05)
        assert not engine.alive()
        # The dead child was idle: its pool refuses the next batch at once. That must come back as the
        # batch's failure (which stops the worker), not as an exception out of submit (which faust
        # would answer by restarting the agent, leaving a worker with a dead pipeline).
        batch = generated(50)
        failed = engine.submit(batch, {}, [keyed_partition(i) for i in batch])
        concurrent.futures.wait([failed], timeout=60)
        assert isinstance(failed.exception(), BrokenProcessPool)
    finally:
        engine.close()


def test_a_pipeline_that_cannot_be_built_fails_at_start(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("this: [is not a price list")
    broken = PipelineProcess(PipelineSettings(prices=str(prices), redaction_key=KEY))
    try:
        with pytest.raises(ValueError, match="pipeline process could not build the pipeline"):
            broken.wait_started()
    finally:
        broken.close()


def test_the_child_leaves_when_its_worker_is_killed(tmp_path):
    """SIGKILL gives the worker no chance to stop its child: the child must notice on its own."""
    script = (
        "import secrets, sys, time\n"
        "from tokentrail.stream.pipeline_process import PipelineProcess, PipelineSettings\n"
        "p = PipelineProcess(PipelineSettings(prices=None, redaction_key=secrets.token_bytes(32)))\n"
        "p.wait_started()\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "started"
        children = child_pids(parent.pid)
        assert children and all(map(is_running, children))  # the pipeline process (and multiprocessing's tracker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(is_running, children)):
            time.sleep(0.1)
        assert not any(map(is_running, children)), "the pipeline process outlived its killed worker"
    finally:
        if parent.poll() is None:
            parent.kill()
