"""faust's Kafka transport with a cheaper hand-off of each fetched message to the agents.

faust's fetch loop (`Consumer._drain_messages`) delivers every message through
`wait_first(callback(message), suspend_flow.wait())`: four tasks and an `asyncio.wait` per
message, so that a delivery blocked on a full buffer or on suspended flow can be abandoned
when a rebalance stops the flow. Almost every delivery does not block at all. Here the delivery
runs inline up to its first suspension; if it finishes there (the common case), nothing else is
created; if it blocks, it continues under faust's own `wait_first`, with the same race against
the suspend, stop and crash events as before. benchmarks/faust_handoff.py drains a backlog with
both transports side by side: 1.76x the messages per second with this one (docs/performance.md).

Delivering that much faster exposed a race in faust's recovery (faust-streaming #596, see
`Consumer._deliver`): stream messages fetched at the end of a rebalance could be cleared from the
agents' buffers after the fetch position had moved past them, leaving a restarted worker idle
with a backlog. Stream messages now wait until the rebalance is over.

Registered as the URL scheme `tokentrail+kafka://` (see `TRANSPORT_SCHEME`); everything but
the hand-off is faust's aiokafka transport.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Generator
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as _aiokafka
from mode.services import WaitResults

__all__ = ["Consumer", "Transport", "TRANSPORT_SCHEME", "broker_url"]

TRANSPORT_SCHEME = "tokentrail+kafka"
# A partition's next offset unacknowledged this long while later ones are: it was dropped, read it again.
HEAD_LOST_SECONDS = 30.0

log = logging.getLogger("tokentrail.worker")


class _Resumed:
    """An awaitable that goes on driving a coroutine which has already run to a suspension.

    The coroutine yielded `pending` (an asyncio future) on its first step, taken outside any
    task; whoever awaits this object now waits for that future and resumes the coroutine, and
    exceptions thrown in (cancellation) are thrown into the coroutine, as a task would.
    """

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Any, pending: Any) -> None:
        self.coro, self.pending = coro, pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except BaseException as exc:
                step = coro.throw
                arg: Any = exc
            else:
                step = coro.send
                arg = sent
            try:
                pending = step(arg)
            except StopIteration as stop:
                return stop.value


class Consumer(_aiokafka.Consumer):
    """faust's aiokafka consumer; `wait_first` has a fast path for a delivery that does not block,
    and stream messages wait while a rebalance is in progress (see `_deliver`).

    faust 0.15 calls the consumer's `wait_first` in one place only, the fetch loop, as
    `wait_first(callback(message), self.suspend_flow.wait())`; anything else takes faust's path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conductor_callback, self.callback = self.callback, self._deliver
        # Per partition, the first offset delivered since the last seek: the head a commit must not
        # pass while the partition has no committed offset (see `_new_offset`).
        self._first_offsets: dict[Any, int] = {}
        self._head_missing_since: dict[Any, float] = {}

    async def perform_seek(self) -> None:
        self._first_offsets.clear()  # positions go back to the committed offsets: deliveries start again
        await super().perform_seek()

    def _new_offset(self, tp: Any) -> int | None:
        """faust's next offset to commit, without its two holes at the head of a partition.

        faust-streaming 0.15 refuses to commit over a missing first message only when
        `min(acked) - committed > 1`, while `committed` is already the next offset to read, so it
        commits past exactly one missing message; and it checks nothing while the partition has no
        committed offset (None, or 0). A message dropped at the head (faust clears the agents'
        buffers at the end of a rebalance) was then skipped for good by the next commit: one event
        of 20,000 lost, seen in CI with two workers (tests/stream/test_insights_leader_workers.py).
        Here nothing is committed while the next offset to read is neither acked nor in faust's
        record of offsets that hold no message (`_gap`, e.g. transaction markers). A batch still in
        the pipeline is such a head for a moment; one still missing after HEAD_LOST_SECONDS was
        dropped, and the partition is read again from it (the messages after it come twice; the
        store keeps one of each).
        """
        acked = self._acked[tp]
        if acked:
            committed = self._committed_offset[tp]
            head = committed if committed is not None else self._first_offsets.get(tp)
            if head is not None and min(acked) > head and not self._gap[tp].overlaps(head):
                self._read_again_if_lost(tp, head)
                return None
        self._head_missing_since.pop(tp, None)
        offset: int | None = super()._new_offset(tp)
        return offset

    def _read_again_if_lost(self, tp: Any, head: int) -> None:
        now = time.monotonic()
        since = self._head_missing_since.setdefault(tp, now)
        if now - since >= HEAD_LOST_SECONDS:
            del self._head_missing_since[tp]
            log.warning("%s offset %d was never processed (dropped in a rebalance): reading from it again", tp, head)
            asyncio.ensure_future(self.seek(tp, head))  # commits run in the event loop

    async def _deliver(self, message: Any) -> Any:
        """Hold a stream message until faust's rebalance is over, then hand it to the conductor.

        After recovering its tables, faust resumes the stream partitions, seeks them back to
        the committed offsets and only then clears the agents' buffers (`flow_control.resume()`).
        A message fetched in between lands in a buffer that is then cleared, while the fetch
        position has already moved past it: it is never processed and the committed offset
        stops there for good (faust-streaming issue #596). faust's four tasks per message made
        that window rarely hit; delivering inline hit it in a third of the restarts in
        tests/stream/test_kill_switch.py. Changelog messages (the recovery itself) pass.
        """
        self._first_offsets.setdefault(message.tp, message.offset)
        app = self.app
        tables: Any = app.tables  # faust's TableManager: its type stub lacks `recovery`
        if app.rebalancing or not tables.recovery.completed.is_set():
            if message.topic not in tables.changelog_topics:
                while app.rebalancing or not tables.recovery.completed.is_set():
                    await asyncio.sleep(0.05)
        return await self._conductor_callback(message)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        flagged = self._stopped.is_set() or self._crashed.is_set() or self.suspend_flow.is_set()
        if flagged or len(coros) != 2 or timeout is not None or not inspect.iscoroutine(coros[0]):
            return await super().wait_first(*coros, timeout=timeout)
        delivery, other = coros
        try:
            pending = delivery.send(None)
        except StopIteration as done:  # delivered without blocking: what faust's race would also report
            _discard(other)
            return WaitResults([delivery], [done.value], False)
        except BaseException:
            _discard(other)
            raise
        return await super().wait_first(_Resumed(delivery, pending), other)


def _discard(waitable: Any) -> None:
    """Close an un-awaited coroutine (the event wait faust passed in), so Python does not warn about it."""
    close = getattr(waitable, "close", None)
    if inspect.iscoroutine(waitable) and close is not None:
        close()


class Transport(_aiokafka.Transport):
    Consumer = Consumer


def broker_url(bootstrap: str) -> str:
    """The faust broker URL that selects this transport for `host:port[,host:port]`."""
    return f"{TRANSPORT_SCHEME}://{bootstrap}"


drivers.TRANSPORTS.aliases.setdefault(TRANSPORT_SCHEME, f"{__name__}:Transport")
