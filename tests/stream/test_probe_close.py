"""The lag reader's consumer is closed exactly once, never under a read still running in its thread.

`WorkerProbe.close` runs when the worker stops, possibly while `_read_lags` waits on the broker in
the event loop's executor. The consumer is a stand-in here (closing a real confluent-kafka consumer
under a running call is what must not happen, and cannot be observed safely); the probe's own
locking is the code under test.
"""

from __future__ import annotations

import threading

from tokentrail.stream.faust_worker.probe import WorkerProbe


class _Consumer:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def _probe(consumer: _Consumer) -> WorkerProbe:
    probe = WorkerProbe.__new__(WorkerProbe)  # only the reader's state: no app, broker or store
    probe._offsets = consumer
    probe._offsets_lock = threading.Lock()
    probe._reading = probe._closed = False
    return probe


def test_close_during_a_read_waits_for_the_read_to_close_the_consumer() -> None:
    """close() while a read is in flight leaves the consumer to the reader, which closes it once on return."""
    consumer, entered, release = _Consumer(), threading.Event(), threading.Event()
    probe = _probe(consumer)

    def slow_read(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int | None]]:
        entered.set()
        release.wait(5)
        assert consumer.closed == 0  # still open while in use
        return {("t", 0): (3, 7)}

    probe._committed_lags = slow_read  # type: ignore[method-assign]
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(probe._read_lags([("t", 0)])))
    reader.start()
    assert entered.wait(5)
    probe.close()
    assert consumer.closed == 0
    release.set()
    reader.join(5)
    assert result == [{("t", 0): (3, 7)}] and consumer.closed == 1 and probe._offsets is None


def test_no_read_after_close_and_close_without_a_read_closes_at_once() -> None:
    """Closed with no read running: closed at once; a later read returns nothing and opens no consumer."""
    consumer = _Consumer()
    probe = _probe(consumer)
    probe.close()
    assert consumer.closed == 1
    assert probe._read_lags([("t", 0)]) == {} and probe._offsets is None
