"""A bounded on-disk spool for events Kafka could not take, replayed oldest first when it is back.

Layout: one folder per collector, holding segment files named `<ns>-<pid>.<state>`:
`open` (being appended to by process `pid`), `closed` (ready to replay), `replaying` (claimed by
process `pid`). Renames are atomic, so several processes (or a forked child) can share a folder;
segments of a process that died are picked up by the next one. Each line is one event's JSON;
`json.dumps` escapes every newline, so lines never split. Replays may duplicate an event that was
in fact delivered; `event_id` makes that harmless downstream.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

SEGMENT_BYTES = 8 * 1024 * 1024


def _pid_of(path: Path) -> int:
    try:
        return int(path.stem.split("-")[1])
    except (IndexError, ValueError):
        return -1


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """Append-only segments bounded by `max_bytes` in total; beyond it `append` refuses (the caller counts)."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._open: IO[bytes] | None = None
        self._open_path: Path | None = None
        self._size = sum(p.stat().st_size for p in self.directory.glob("*-*.*") if p.is_file())

    @property
    def size_bytes(self) -> int:
        return self._size

    def append(self, values: Iterable[bytes]) -> tuple[int, int]:
        """Write events; returns (spooled, refused because the spool is full)."""
        spooled = refused = 0
        with self._lock:
            for value in values:
                line = value + b"\n"
                if self._size + len(line) > self.max_bytes:
                    refused += 1
                    continue
                out = self._segment_for_append()
                out.write(line)
                self._size += len(line)
                spooled += 1
            if self._open is not None:
                self._open.flush()
                if self._open.tell() >= SEGMENT_BYTES:
                    self._close_open()
        return spooled, refused

    def has_pending(self) -> bool:
        return self._size > 0

    def claim_oldest(self) -> Segment | None:
        """Take the oldest replayable segment for this process, or None. Closes our own open one first."""
        with self._lock:
            self._close_open()
            for path in sorted(self.directory.glob("*-*.*")):
                if path.suffix == ".closed" or (path.suffix in (".open", ".replaying") and not _alive(_pid_of(path))):
                    claimed = path.with_name(f"{path.stem.split('-')[0]}-{os.getpid()}.replaying")
                    try:
                        os.rename(path, claimed)
                    except FileNotFoundError:
                        continue  # another process claimed it first
                    return Segment(self, claimed)
        return None

    def close(self) -> None:
        with self._lock:
            self._close_open()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's open segment (the parent still owns it)."""
        self._lock = threading.Lock()
        self._open = None
        self._open_path = None

    def _segment_for_append(self) -> IO[bytes]:
        if self._open is None:
            self._open_path = self.directory / f"{time.time_ns():020d}-{os.getpid()}.open"
            self._open = open(self._open_path, "ab")
        return self._open

    def _close_open(self) -> None:
        if self._open is None or self._open_path is None:
            return
        self._open.close()
        if self._open_path.stat().st_size:
            os.rename(self._open_path, self._open_path.with_suffix(".closed"))
        else:
            self._open_path.unlink()
        self._open = None
        self._open_path = None

    def _forget(self, nbytes: int) -> None:
        with self._lock:
            self._size = max(0, self._size - nbytes)


class Segment:
    """A claimed segment: read its events, then `done()` deletes it or `release()` hands it back."""

    def __init__(self, spool: Spool, path: Path) -> None:
        self._spool = spool
        self.path = path

    def values(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):  # a torn last line from a crash is not an event
                    yield line[:-1]

    def done(self) -> None:
        size = self.path.stat().st_size
        self.path.unlink()
        self._spool._forget(size)

    def release(self) -> None:
        os.rename(self.path, self.path.with_suffix(".closed"))
