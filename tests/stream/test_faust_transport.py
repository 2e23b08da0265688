"""The transport's hand-off: a delivery started inline and continued under a task behaves as a task
would, and stream messages wait out a rebalance.

Every worker test exercises the fast path (each message delivered); these pin down the slow path,
a delivery that blocks after its first step, which only a full buffer or a rebalance produces.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from tokentrail.stream.faust_worker.transport import TRANSPORT_SCHEME, Consumer, Transport, _Resumed, broker_url


async def doubled(future: asyncio.Future) -> int:
    return 2 * await future


def test_a_blocked_delivery_continues_where_it_stopped():
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        coro = doubled(future)
        pending = coro.send(None)  # what the fast path does: run up to the first suspension
        assert pending is future
        task = asyncio.ensure_future(_Resumed(coro, pending))
        loop.call_later(0.01, future.set_result, 21)
        return await task

    assert asyncio.run(scenario()) == 42


def test_cancelling_a_resumed_delivery_cancels_the_delivery_itself():
    seen: list[str] = []

    async def delivery(future: asyncio.Future) -> None:
        try:
            await future
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    async def scenario() -> None:
        future = asyncio.get_running_loop().create_future()
        coro = delivery(future)
        task = asyncio.ensure_future(_Resumed(coro, coro.send(None)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert seen == ["cancelled inside"]


def test_errors_after_resuming_reach_the_awaiter():
    async def fails(future: asyncio.Future) -> None:
        await future
        raise LookupError("no callback for this partition")

    async def scenario() -> None:
        future = asyncio.get_running_loop().create_future()
        coro = fails(future)
        task = asyncio.ensure_future(_Resumed(coro, coro.send(None)))
        future.set_result(None)
        await task

    with pytest.raises(LookupError):
        asyncio.run(scenario())


def test_the_worker_url_selects_this_transport():
    from faust.transport import by_url

    assert broker_url("k1:9092,k2:9092") == f"{TRANSPORT_SCHEME}://k1:9092,k2:9092"
    assert by_url(broker_url("k1:9092")) is Transport


class _Event:
    def __init__(self) -> None:
        self.flag = False

    def is_set(self) -> bool:
        return self.flag


def _consumer_during_recovery() -> tuple[SimpleNamespace, list[str]]:
    delivered: list[str] = []

    async def conductor(message: SimpleNamespace) -> None:
        delivered.append(message.topic)

    recovery = SimpleNamespace(completed=_Event())
    app = SimpleNamespace(
        rebalancing=True, tables=SimpleNamespace(recovery=recovery, changelog_topics={"w-loop-state-changelog"})
    )
    return SimpleNamespace(app=app, _conductor_callback=conductor, _first_offsets={}), delivered


def test_stream_messages_wait_for_the_rebalance_to_end_changelog_messages_do_not():
    """faust clears the agents' buffers at the end of a recovery, after seeking back: a stream
    message delivered before that would be lost for good (faust-streaming #596)."""
    consumer, delivered = _consumer_during_recovery()

    async def scenario() -> None:
        message = SimpleNamespace(topic="events", tp=("events", 0), offset=7)
        stream = asyncio.ensure_future(Consumer._deliver(consumer, message))
        await Consumer._deliver(
            consumer, SimpleNamespace(topic="w-loop-state-changelog", tp=("w-loop-state-changelog", 0), offset=3)
        )  # recovery reads its changelog
        await asyncio.sleep(0.12)
        assert delivered == ["w-loop-state-changelog"]  # the stream message is still held
        consumer.app.tables.recovery.completed.flag = True
        await asyncio.sleep(0.12)
        assert delivered == ["w-loop-state-changelog"]  # recovered, but the rebalance is not over yet
        consumer.app.rebalancing = False
        await asyncio.wait_for(stream, 1)

    asyncio.run(scenario())
    assert delivered == ["w-loop-state-changelog", "events"]
    assert consumer._first_offsets[("events", 0)] == 7  # the head a commit must not pass (test_commit_head.py)
