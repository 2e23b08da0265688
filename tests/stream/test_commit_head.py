"""The worker's consumer never commits past a message that was not acknowledged.

faust-streaming 0.15's `Consumer._new_offset` commits past exactly one missing message at the head
of a partition, and past any number while the partition has no committed offset; the worker's
transport (stream/faust_worker/transport.py) closes both. These tests drive that method on a
consumer built without a broker (only its offset bookkeeping is under test); the message it must
not skip is the one a rebalance can drop from faust's buffers (seen once in CI: one of 20,000
events stored by neither of two workers).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from tokentrail.stream.faust_worker import transport
from tokentrail.stream.faust_worker.transport import Consumer

P = TP("tokentrail.events", 0)


def consumer(committed: int | None, acked: list[int], first: int | None = None) -> Consumer:
    c = Consumer.__new__(Consumer)  # offset bookkeeping only: no app, no broker
    c._acked, c._acked_index = defaultdict(list), defaultdict(set)
    c._gap = defaultdict(IntervalTree)
    c._committed_offset = defaultdict(lambda: None)
    c._committed_offset[P] = committed
    c._acked[P].extend(acked)
    c._acked_index[P].update(acked)
    c._first_offsets = {} if first is None else {P: first}
    c._head_missing_since = {}
    return c


@pytest.mark.parametrize(
    ("committed", "acked", "first", "expected"),
    [
        (32, list(range(32, 41)), None, 41),  # the head acked: commit through the run
        (32, list(range(33, 41)), None, None),  # 32 missing: faust alone commits 41 and loses it
        (32, list(range(34, 41)), None, None),  # two missing: faust refuses too
        (None, list(range(0, 6)), 0, 6),  # nothing committed yet, the first delivery acked
        (None, list(range(1, 6)), 0, None),  # ... and the first delivery missing: faust alone commits 6
        (None, list(range(101, 106)), 100, None),  # log start after retention: the same at offset 100
        (None, list(range(3, 6)), None, 6),  # no delivery recorded (never happens): faust's answer
    ],
)
def test_no_commit_past_an_unacknowledged_head(committed, acked, first, expected):
    """The next offset to commit is the end of the acked run that starts at the head, or nothing."""
    assert consumer(committed, acked, first)._new_offset(P) == expected


def test_an_offset_faust_records_as_holding_no_message_is_not_waited_for():
    """A transaction marker or compacted offset at the head (faust's `_gap`) counts as done."""
    c = consumer(32, list(range(33, 41)))
    c._gap[P].addi(32, 33)
    assert c._new_offset(P) == 41


def test_a_head_missing_for_long_is_read_again(monkeypatch):
    """Missing past HEAD_LOST_SECONDS: the partition is read again from the head (once), and the
    commit follows once the head is acked; a head missing for a moment (a batch in the pipeline) is not."""
    clock = [1000.0]
    monkeypatch.setattr(transport.time, "monotonic", lambda: clock[0])
    c = consumer(32, list(range(33, 41)))
    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    c.seek = seek  # type: ignore[method-assign]

    async def scenario() -> None:
        assert c._new_offset(P) is None
        clock[0] += transport.HEAD_LOST_SECONDS / 2
        assert c._new_offset(P) is None
        await asyncio.sleep(0)
        assert seeks == []  # still a batch in progress, as far as anyone can tell
        clock[0] += transport.HEAD_LOST_SECONDS / 2
        assert c._new_offset(P) is None
        await asyncio.sleep(0)
        assert seeks == [(P, 32)]
        c._acked[P].append(32)  # read again and processed
        assert c._new_offset(P) == 41

    asyncio.run(scenario())
