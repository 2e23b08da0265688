"""The transport's hand-off: a delivery started inline and continued under a task behaves as a task would.

Every worker test exercises the fast path (each message delivered); these pin down the slow path,
a delivery that blocks after its first step, which only a full buffer or a rebalance produces.
"""

from __future__ import annotations

import asyncio

import pytest

from tokentrail.stream.kafka_transport import TRANSPORT_SCHEME, Transport, _Resumed, broker_url


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
