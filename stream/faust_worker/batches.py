"""Batches from a faust stream, unacknowledged, the next one filling while the agent works on this one.

faust's `Stream.noack_take(max_, within)` stops filling its buffer for as long as the agent holds
a batch: the passive drainer waits at the first new message until the agent asks for the next
batch, and only then does the `within` timer start. The agent holds each batch while it waits for
the batch before to be stored, so under a backlog every batch was what the drainer could fill in
`within` seconds once the store was done (~1,000-1,500 messages of a 5,000 --batch-size on the
pipeline benchmark), and draining never overlapped storing.

Here the agent gets the buffer's messages and the drainer goes on at once into an empty buffer,
up to `max_` messages, where it waits for the agent as faust's does. A batch is handed over when
it is full or `within` seconds after its first message arrived (faust's timer starts when the
agent asks, which may be later): under a backlog batches come out full, at low traffic as soon
as before. Acknowledgement stays with the agent (nothing is acknowledged here), as with
`noack_take`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["unacked_batches"]


async def unacked_batches(stream: Any, max_: int, within: float) -> AsyncIterator[list[Any]]:
    """Lists of up to `max_` faust events of `stream`, each yielded at most `within` s after its first
    message arrived; the events are not acknowledged (the caller acks each once it is stored)."""
    buffer: list[Any] = []
    first_at = 0.0  # loop time when the buffer's first message arrived
    full = asyncio.Event()  # the buffer holds max_ messages: hand it over now
    room = asyncio.Event()  # the buffer has room: the drainer may add
    room.set()
    loop = asyncio.get_running_loop()

    async def add_to_buffer(value: Any) -> Any:
        nonlocal first_at
        try:
            while len(buffer) >= max_:
                room.clear()
                await stream.wait(room)
                if stream.should_stop:
                    return value
            # The stream is suspended in this processor, so its current event is this value's.
            event = stream.current_event
            if event is None:
                raise RuntimeError("batch buffer found current_event is None")
            if not buffer:
                first_at = loop.time()
            buffer.append(event)
            if len(buffer) >= max_:
                full.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to the batch buffer: %r", exc)
            await stream.crash(exc)
        return value

    acks_before = stream.enable_acks
    stream.enable_acks = False  # acknowledged by the caller, once stored
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))  # faust's own way to drain a stream into a processor
    try:
        while not stream.should_stop:
            if not full.is_set():
                # Empty: wait up to `within` for a first message; else until `within` after the first.
                wait = within if not buffer else first_at + within - loop.time()
                if wait > 0:
                    # mode reports a timeout as "stopped" too: the loop's condition tells them apart.
                    await stream.wait_for_stopped(full, timeout=wait)
                    continue  # look again: stopping, full, the first message's time up, or still empty
            if buffer:
                batch = buffer[:]
                buffer.clear()
                full.clear()
                room.set()
                yield batch
    finally:
        stream.enable_acks = acks_before
        stream._processors.remove(add_to_buffer)
