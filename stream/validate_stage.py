"""The first stages: decode and validate (invalid messages become dead letters), then drop duplicates."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tokentrail.collectors.event_bounds import DEFAULT_TS_WINDOW, TsWindow
from tokentrail.collectors.events import DEFAULT_MAX_EVENT_BYTES, InvalidEvent, decode_event

from .batch import Accepted, Batch, DeadLetter

__all__ = ["Dedupe", "Validate"]


class Validate:
    """Decode and validate; invalid messages become dead letters with a reason (docs/events.md, the validity rules).

    `ts` is checked against `ts_window` around each message's `received_at` (when the processor
    read it), never against other events' times: a backfill inside the window is accepted, an
    event from year 1 or 9999 is a dead letter (`ts_out_of_range`) and never reaches the store
    or the per-trace state.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_EVENT_BYTES, ts_window: TsWindow = DEFAULT_TS_WINDOW) -> None:
        self.max_bytes = max_bytes
        self.ts_window = ts_window

    def __call__(self, batch: Batch) -> None:
        for item in batch.inbound:
            result = decode_event(item.raw, self.max_bytes, received_at=item.received_at, ts_window=self.ts_window)
            if isinstance(result, InvalidEvent):
                batch.dead.append(DeadLetter(item, result, item.raw.decode("utf-8", "replace")))
                continue
            batch.accepted.append(Accepted(item, result, result.model_dump(mode="json")))
            # A receipt per delivery: duplicates are deliveries (distinct sources) beyond the first.
            batch.receipts.append({"event_id": result.event_id, "source": item.source, "received_at": item.received_at})


class Dedupe:
    """Drops events whose event_id this process has already seen (bounded LRU).

    Across processes and restarts the store is the backstop: rows are keyed by event_id.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[Any, None] = OrderedDict()

    def __call__(self, batch: Batch) -> None:
        kept = []
        for item in batch.accepted:
            key = item.event.event_id
            if key in self._seen:
                self._seen.move_to_end(key)
                batch.duplicates += 1
                continue
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            kept.append(item)
        batch.accepted = kept


DEFAULT_TS_WINDOW_DAYS = "400:1"


def parse_ts_window_days(text: str) -> TsWindow:
    """`BACK:AHEAD` in days (the `--ts-window-days` flag, e.g. `400:1`) -> a `TsWindow`.

    Raises ValueError naming the form: both numbers finite and >= 0, BACK + AHEAD > 0.
    """
    back_text, sep, ahead_text = str(text).partition(":")
    try:
        back, ahead = float(back_text), float(ahead_text)
    except ValueError:
        back = ahead = float("nan")
    if not sep or not (0 <= back < 1e6 and 0 <= ahead < 1e6) or back + ahead <= 0:
        raise ValueError(
            f"--ts-window-days expects BACK:AHEAD in days, each >= 0 and not both 0 (e.g. {DEFAULT_TS_WINDOW_DAYS}); "
            f"got {text!r}"
        )
    return TsWindow.of_days(back, ahead)
