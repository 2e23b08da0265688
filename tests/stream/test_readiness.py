"""The readiness rules (stream/faust_worker/readiness.py) on a fake clock: each turns /ready red
exactly when its condition has held for its threshold, and a healthy worker's ups and downs never do."""

from __future__ import annotations

import pytest

from tokentrail.stream.faust_worker.readiness import Readiness, Signals, Thresholds


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def readiness(clock: Clock, sink: float = 60, lag: float = 100) -> Readiness:
    return Readiness(Thresholds(sink_failing_seconds=sink, lag_growing_seconds=lag), clock=clock)


def test_a_started_worker_with_a_healthy_store_is_ready(clock):
    """No failure, no lag history yet: ready, with no reasons."""
    verdict = readiness(clock).check(Signals(started=True, pipeline_alive=True))
    assert verdict.ready and verdict.reasons == ()
    assert verdict.as_json() == {"ready": True, "reasons": [], "lag": {}}


def test_not_ready_while_starting_or_when_the_pipeline_process_is_gone(clock):
    """Starting is not ready; a dead pipeline process is not ready whatever else holds."""
    r = readiness(clock)
    assert r.check(Signals(started=False)).reasons[0].startswith("starting")
    gone = r.check(Signals(started=True, pipeline_alive=False))
    assert not gone.ready and gone.reasons == ("the pipeline process is gone",)
    assert r.check(Signals(started=True, pipeline_alive=None)).ready, "inline stages: no process to lose"


def test_store_failing_turns_red_only_after_the_threshold(clock):
    """Failing for 59 s of a 60 s threshold is still ready; at 60 s it is not, and the reason says how long."""
    r = readiness(clock, sink=60)
    since = clock.now
    clock.now += 59
    assert r.check(Signals(store_failing_since=since)).ready
    clock.now += 1
    verdict = r.check(Signals(store_failing_since=since))
    assert not verdict.ready and verdict.reasons == ("the store has been failing for 60s",)


def test_a_hung_insert_turns_red_after_the_threshold(clock):
    """An insert that neither succeeds nor fails (a stalled connection) counts like a failing store."""
    r = readiness(clock, sink=30)
    started = clock.now
    clock.now += 29
    assert r.check(Signals(store_busy_since=started)).ready
    clock.now += 2
    assert r.check(Signals(store_busy_since=started)).reasons == ("an insert into the store has been running for 31s",)


def feed(r: Readiness, clock: Clock, lags: list[int], committed: list[int | None] | None = None, step: float = 10):
    """One sample per `step` seconds of partition t/0's lag (and committed offset)."""
    committed = committed or list(range(len(lags)))
    for lag, offset in zip(lags, committed, strict=True):
        r.sample_lag({"t/0": (lag, offset)})
        clock.now += step


def test_lag_growing_for_the_whole_window_turns_red(clock):
    """Lag rising sample after sample for 100 s: not ready, naming the partition and the growth."""
    r = readiness(clock, lag=100)
    feed(r, clock, [100 * i + 50 for i in range(11)])  # 0 s .. 100 s
    clock.now -= 10  # judged right after the last sample
    verdict = r.check(Signals())
    assert not verdict.ready
    assert verdict.reasons == ("consumer lag of t/0 grew from 50 to 1050 over 100s",)
    assert verdict.details["lag"] == {"t/0": 1050}


def test_lag_growing_for_less_than_the_window_is_still_ready(clock):
    """90 s of growth against a 100 s window: not yet."""
    r = readiness(clock, lag=100)
    feed(r, clock, [100 * i + 50 for i in range(10)])
    clock.now -= 10
    assert r.check(Signals()).ready


def test_a_healthy_worker_whose_lag_goes_up_and_down_stays_ready(clock):
    """Batches make the lag saw-tooth (and commits move): never flagged, however long it runs."""
    r = readiness(clock, lag=100)
    feed(r, clock, [4000, 200, 3000, 50, 5000, 10, 2500, 300, 4500, 100, 3500, 20, 4000] * 3)
    clock.now -= 10
    assert r.check(Signals()).ready


def test_lag_standing_still_above_zero_with_nothing_committed_turns_red(clock):
    """A stuck consumer with no new traffic: lag constant, committed offset constant: not ready."""
    r = readiness(clock, lag=100)
    feed(r, clock, [700] * 11, committed=[42] * 11)
    clock.now -= 10
    assert r.check(Signals()).reasons == ("nothing committed on t/0 for 100s while 700 messages wait",)


def test_an_idle_worker_with_no_lag_stays_ready(clock):
    """Nothing to consume: lag 0 throughout is fine, committed offset unchanged or not."""
    r = readiness(clock, lag=100)
    feed(r, clock, [0] * 20, committed=[42] * 20)
    clock.now -= 10
    assert r.check(Signals()).ready


def test_a_partition_moved_to_another_worker_is_forgotten(clock):
    """After a rebalance, a partition this worker no longer samples has no say in its readiness."""
    r = readiness(clock, lag=100)
    feed(r, clock, [100 * i + 50 for i in range(11)])
    r.sample_lag({"t/1": (0, 5)})
    clock.now -= 10
    assert r.check(Signals()).ready


def test_a_verdict_on_lag_lapses_when_sampling_stops(clock):
    """The broker cannot be read (no samples): a growth seen before keeps the worker red only while its
    last sample is within the window; after that the lag has no say (no sample, no verdict on lag)."""
    r = readiness(clock, lag=100)
    feed(r, clock, [100 * i + 50 for i in range(11)])
    clock.now -= 10
    assert not r.check(Signals()).ready
    clock.now += 99
    assert not r.check(Signals()).ready, "the last sample is 99 s old: still within the window"
    clock.now += 1
    assert r.check(Signals()).ready


def test_lag_check_off_with_a_zero_window(clock):
    """--ready-lag-growing-seconds 0: samples are ignored and the verdict carries no lag."""
    r = readiness(clock, lag=0)
    feed(r, clock, [100 * i + 50 for i in range(50)])
    verdict = r.check(Signals())
    assert verdict.ready and "lag" not in verdict.as_json()


def test_live_follows_the_event_loops_heartbeat_timer():
    """/live: alive while the heartbeat timer runs, 503 after 30 s without it, alive again at the next beat.
    The lag sampler does not beat the heart: a round that cannot reach the broker leaves it as it was
    (the consumer below, which raises as a restarting one does, is the one stand-in)."""
    import asyncio
    import time
    from types import SimpleNamespace

    from tokentrail.stream.faust_worker import parse_args
    from tokentrail.stream.faust_worker.app import Outputs
    from tokentrail.stream.faust_worker.metrics import WorkerMetrics
    from tokentrail.stream.faust_worker.probe import LIVE_SILENT_SECONDS, WorkerProbe

    def assignment() -> set:
        raise RuntimeError("the consumer is restarting")

    app = SimpleNamespace(consumer=SimpleNamespace(assignment=assignment))
    outputs = Outputs(sink=None, deadletters=None, alerts=None, control=None)
    probe = WorkerProbe(app, parse_args(["--kafka", "127.0.0.1:1"]), WorkerMetrics(), outputs)
    assert probe.live()[0]
    probe.heartbeat = time.monotonic() - LIVE_SILENT_SECONDS - 1
    asyncio.run(probe.sample())
    alive, silent = probe.live()
    assert not alive and silent > LIVE_SILENT_SECONDS
    asyncio.run(probe.beat())
    assert probe.live()[0]
