"""A bounded on-disk spool for events Kafka could not take, replayed oldest first when it is back.

Layout: one folder per collector. Segment files are named `<ns>-<writer>.<state>`: `open` (being
appended to by `writer`), `closed` (ready to replay), `replaying` (claimed by `writer`). Renames are
atomic, so several processes (or a forked child) can share a folder.

Ownership: a writer is one process incarnation, named `<pid>_<random hex>`, and it holds an
exclusive `flock` on `writers/<writer>.lock` for as long as it lives (the kernel drops the lock
when the process dies, however it dies). An `open` or `replaying` segment belongs to a live writer
exactly when its lock file is locked; otherwise its writer is gone and any process may replay it.
Neither a PID that is alive nor a PID equal to our own says anything: in a container a restarted
service often has the PID of the incarnation that crashed, and another PID namespace sharing the
volume has unrelated PIDs. Segments named by the previous format (`<ns>-<pid>.<state>`, no lock)
are replayed unless that PID is another live process.

Each line is one event's JSON; JSON escapes every newline, so lines never split. Replays may
duplicate an event that was in fact delivered; `event_id` makes that harmless downstream.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

SEGMENT_BYTES = 8 * 1024 * 1024
STATES = (".open", ".closed", ".replaying")
LOCKS = "writers"
RESCAN_INTERVAL = 5.0  # seconds between looks for other writers' segments that became replayable


def _writer_of(path: Path) -> str:
    return path.stem.partition("-")[2]


def _legacy_pid_alive(writer: str) -> bool:
    """A writer named by the pre-lock format (a bare PID): alive only if it is another live process."""
    pid = int(writer)
    if pid == os.getpid():
        return False  # this incarnation never writes bare-PID names: an earlier one with our PID did
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
        (self.directory / LOCKS).mkdir(exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._new_writer()
        self._size = 0  # bytes of every pending segment in the folder, as of the last scan plus our writes
        self._replayable = 0  # bytes this process could replay now, same accounting
        self._next_scan = 0.0
        with self._lock:
            self._rescan()

    def _new_writer(self) -> None:
        self.writer = f"{os.getpid()}_{os.urandom(6).hex()}"
        self._lock_fd: int | None = None  # taken on first use: only a process that spools needs one
        self._open: IO[bytes] | None = None
        self._open_path: Path | None = None

    @property
    def size_bytes(self) -> int:
        """Pending bytes in the folder: what the byte cap counts."""
        return self._size

    def append(self, values: Iterable[bytes]) -> tuple[int, int]:
        """Write events; returns (spooled, refused because the spool is full)."""
        lines = [value + b"\n" for value in values]
        with self._lock:
            if self._size + sum(map(len, lines)) > self.max_bytes and time.monotonic() >= self._next_scan:
                # Others may have replayed and deleted segments since we last looked. At most one
                # look per RESCAN_INTERVAL: a full spool during an outage refuses every batch.
                self._rescan()
            accepted: list[bytes] = []
            for line in lines:
                if self._size + len(line) > self.max_bytes:
                    continue
                accepted.append(line)
                self._size += len(line)
                self._replayable += len(line)
            if accepted:
                out = self._segment_for_append()
                out.write(b"".join(accepted))  # unbuffered, one write: a fork never copies half a batch
                if out.tell() >= SEGMENT_BYTES:
                    self._close_open()
        return len(accepted), len(lines) - len(accepted)

    def has_pending(self) -> bool:
        """True while this process has something to replay (its own events or a gone writer's).

        Other writers' segments become replayable when they close or die: while the folder holds
        any, look again every few seconds.
        """
        if self._replayable == 0 and self._size > 0 and time.monotonic() >= self._next_scan:
            with self._lock:
                self._rescan()
        return self._replayable > 0

    def claim_oldest(self) -> Segment | None:
        """Take the oldest replayable segment, or None. Closes our own open one first."""
        with self._lock:
            self._close_open()
            for path in self._rescan():
                claimed = path.with_name(f"{path.stem.partition('-')[0]}-{self.writer}.replaying")
                self._hold_writer_lock()  # before the name exists, so nobody sees it unowned
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
        """In a forked child: a writer of its own (the parent keeps its open segment and its lock)."""
        self._lock = threading.Lock()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing our copy keeps the parent's lock; flock(LOCK_UN) would drop it
        # The parent's open segment: dropping our (unbuffered) file object closes only our copy.
        # The counters stay as copied; the next scan corrects them.
        self._new_writer()

    # -- internals (called with self._lock held) -----------------------------------------------

    def _hold_writer_lock(self) -> None:
        while self._lock_fd is None:
            path = self.directory / LOCKS / f"{self.writer}.lock"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # a fresh random name: at most a scanner holds it, for a moment
            try:
                same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                self._lock_fd = fd
            else:  # a scanner took the unlocked file for a gone writer's and removed it: start over
                os.close(fd)
                self.writer = f"{os.getpid()}_{os.urandom(6).hex()}"

    def _writer_gone(self, writer: str, verdicts: dict[str, bool]) -> bool:
        if writer not in verdicts:
            if writer == self.writer:
                verdicts[writer] = False
            elif writer.isdigit():
                verdicts[writer] = not _legacy_pid_alive(writer)
            else:
                verdicts[writer] = not _lock_is_held(self.directory / LOCKS / f"{writer}.lock")
        return verdicts[writer]

    def _rescan(self) -> list[Path]:
        """Recount pending bytes from the folder; return the replayable segments, oldest first."""
        verdicts: dict[str, bool] = {}
        total = replayable_bytes = 0
        replayable: list[Path] = []
        for path in sorted(self.directory.glob("*-*.*")):
            if path.suffix not in STATES:
                continue
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # replayed and deleted by another process while we listed
            total += size
            if path == self._open_path:
                replayable_bytes += size
            elif path.suffix == ".closed" or self._writer_gone(_writer_of(path), verdicts):
                replayable.append(path)
                replayable_bytes += size
        self._remove_stale_locks()
        self._size, self._replayable = total, replayable_bytes
        self._next_scan = time.monotonic() + RESCAN_INTERVAL
        return replayable

    def _remove_stale_locks(self) -> None:
        """Delete the lock files no live writer holds (what dead writers leave); a missing one means gone too."""
        for lock_path in (self.directory / LOCKS).glob("*.lock"):
            if lock_path.stem == self.writer:
                continue
            try:
                fd = os.open(lock_path, os.O_WRONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock_path.unlink(missing_ok=True)  # while we hold it: a writer that lost the race retries
            except BlockingIOError:
                pass  # a live writer
            finally:
                os.close(fd)

    def _segment_for_append(self) -> IO[bytes]:
        if self._open is None:
            self._hold_writer_lock()
            self._open_path = self.directory / f"{time.time_ns():020d}-{self.writer}.open"
            self._open = open(self._open_path, "ab", buffering=0)
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
            self._replayable = max(0, self._replayable - nbytes)


def _lock_is_held(lock_path: Path) -> bool:
    """Whether a live process holds `lock_path`'s flock; a missing lock file means its writer is gone."""
    try:
        fd = os.open(lock_path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we just took it
    return False


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
