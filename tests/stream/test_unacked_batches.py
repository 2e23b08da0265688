"""`unacked_batches`: the next batch fills while the agent works on this one, and nothing is lost.

The stream here is a stand-in for faust's `Stream` with only what `unacked_batches` uses (processors,
the passive drainer, `current_event`, mode's `wait`/`wait_for_stopped`), so that the timing can be
controlled: a producer coroutine feeds messages at a set pace. With real Kafka and faust, the
worker's tests (test_worker_kafka.py, test_kill_switch.py, ...) run the same code end to end, and
the pipeline benchmark shows what it changes (full batches under a backlog).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tokentrail.stream.faust_worker.batches import unacked_batches


class _Waited:
    def __init__(self, stopped: bool) -> None:
        self.stopped = stopped


class FakeStream:
    """faust's Stream as unacked_batches sees it; messages come from `feed`, one at a time."""

    log = logging.getLogger("test")

    def __init__(self, drain_seconds: float = 0.0) -> None:
        self.drain_seconds = drain_seconds  # what handing one message to the processors takes
        self.enable_acks = True
        self._processors: list[Any] = []
        self.current_event: Any = None
        self.should_stop = False
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.drained: list[Any] = []  # every message the drainer passed through the processors
        self.crashed: BaseException | None = None

    def add_processor(self, processor: Any) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        self.drainer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while True:
            value = await self.queue.get()
            if self.drain_seconds:
                await asyncio.sleep(self.drain_seconds)
            self.current_event = value
            for processor in list(self._processors):
                value = await processor(value)
            self.drained.append(value)

    @property
    def channel(self) -> Any:
        return _EmptyAsyncIterable()

    async def wait(self, event: asyncio.Event) -> _Waited:
        await event.wait()
        return _Waited(False)

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float) -> bool:
        # mode reports a timeout as stopped as well (WaitResults([], [], True)).
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return True
        return False

    async def crash(self, exc: BaseException) -> None:
        self.crashed = exc


class _EmptyAsyncIterable:
    """The stream's channel: the stand-in's drainer reads `queue` instead."""

    def __aiter__(self) -> _EmptyAsyncIterable:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


async def _take(stream: FakeStream, batches: Any, n: int, hold: float) -> list[list[Any]]:
    """The first n batches, holding each for `hold` seconds as the agent does while the one before is stored."""
    taken = []
    async for batch in batches:
        taken.append(batch)
        if len(taken) == n:
            break
        await asyncio.sleep(hold)
    return taken


def test_the_next_batch_fills_while_the_agent_holds_one():
    """A backlog, handed to the processors at about one message per millisecond (faust's per-message
    path); batches of at most 100, `within` 20 ms; the agent holds each batch 0.5 s (as while the
    batch before is stored). The first batch goes after 20 ms with the ~20 messages drained by
    then; the next ones filled while the agent held a batch, so they are full. faust's noack_take
    stops draining while the agent holds a batch, and its next batch is again what drains in the
    20 ms after the agent asks (~20)."""

    async def scenario() -> tuple[list[list[int]], FakeStream]:
        stream = FakeStream(drain_seconds=0.001)
        for i in range(10_000):
            stream.queue.put_nowait(i)
        batches = unacked_batches(stream, 100, 0.02)
        taken = await _take(stream, batches, 3, hold=0.5)
        await batches.aclose()
        stream.drainer.cancel()
        return taken, stream

    taken, stream = asyncio.run(scenario())
    assert len(taken[0]) < 100
    assert [len(b) for b in taken[1:]] == [100, 100]
    assert [i for b in taken for i in b] == list(range(sum(map(len, taken))))  # in order, nothing lost or twice
    assert stream.crashed is None
    assert stream.enable_acks is True  # restored when the batches end


def test_a_batch_goes_within_its_time_of_the_first_message():
    """At low traffic a batch is handed over `within` after its first message, not after it fills."""

    async def scenario() -> tuple[list[tuple[float, int]], float]:
        stream = FakeStream()
        loop = asyncio.get_running_loop()
        batches = unacked_batches(stream, 1000, 0.1)
        start = loop.time()

        async def feed() -> None:
            for i in range(5):
                stream.queue.put_nowait(i)
                await asyncio.sleep(0.01)

        feeding = asyncio.ensure_future(feed())
        first = await batches.__anext__()
        handed = loop.time() - start
        await feeding
        await batches.aclose()
        stream.drainer.cancel()
        return [(handed, len(first))], handed

    [(handed, size)], _ = asyncio.run(scenario())
    assert size == 5
    assert 0.09 <= handed < 0.5


@pytest.mark.parametrize("max_", [1, 7])
def test_batches_never_exceed_max_and_keep_every_message(max_):
    async def scenario() -> list[list[int]]:
        stream = FakeStream()
        for i in range(50):
            stream.queue.put_nowait(i)
        batches = unacked_batches(stream, max_, 0.01)
        taken: list[list[int]] = []
        async for batch in batches:
            taken.append(batch)
            if sum(map(len, taken)) == 50:
                break
        await batches.aclose()
        stream.drainer.cancel()
        return taken

    taken = asyncio.run(scenario())
    assert max(map(len, taken)) <= max_
    assert [i for b in taken for i in b] == list(range(50))
