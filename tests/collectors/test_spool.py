"""The on-disk spool: bounded, oldest first, shared safely between processes, survives restarts (same PID too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tokentrail.collectors import spool as spool_mod
from tokentrail.collectors.spool import LOCKS, Spool

CHILD = Path(__file__).with_name("spool_child.py")


def drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while (segment := spool.claim_oldest()) is not None:
        out.extend(segment.values())
        segment.done()
    return out


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file())


class OtherProcess:
    """A real second process using the same spool folder (tests/collectors/spool_child.py)."""

    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(directory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.ask(None) == "ready"

    def ask(self, command: str | None) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def exit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_append_and_replay_oldest_first(tmp_path, monkeypatch):
    """Events come back in the order they were spooled, across segment rotation."""
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 64)
    spool = Spool(tmp_path, max_bytes=10_000)
    values = [f'{{"n":{i}}}'.encode() for i in range(50)]
    for i in range(0, 50, 5):
        assert spool.append(values[i : i + 5]) == (5, 0)
    assert len(segments(tmp_path)) > 2  # rotated into several segments
    assert drain(spool) == values
    assert not spool.has_pending() and segments(tmp_path) == [] and spool.size_bytes == 0


def test_bounded_by_bytes(tmp_path):
    """Past max_bytes, append refuses and says how many it refused."""
    spool = Spool(tmp_path, max_bytes=100)
    assert spool.append([b"x" * 40, b"y" * 40, b"z" * 40]) == (2, 1)
    assert spool.size_bytes == 82


def test_torn_last_line_is_skipped(tmp_path):
    """A line cut short by a crash is not replayed as a broken event."""
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append([b'{"a":1}'])
    spool.close()
    (segment,) = tmp_path.glob("*.closed")
    with open(segment, "ab") as f:
        f.write(b'{"b":')
    assert drain(Spool(tmp_path, max_bytes=10_000)) == [b'{"a":1}']


def test_dead_incarnation_with_our_pid_is_replayed(tmp_path):
    """Segments a killed process left (`.open` and `.replaying`) are replayed by a new process with the same PID.

    A new process cannot be handed a dead one's PID on demand, so the equality is made from the
    other side: a real child spools one event, claims it for replay (`.replaying`), spools a second
    (`.open`) and is killed with SIGKILL, so its flock dies with it as in a crash. Its files are then
    renamed to carry this process's PID: what a container restarted as the same PID (PID 1, or under
    a supervisor) finds on its volume. A segment in the previous naming format (`<ns>-<pid>.open`)
    with our PID is replayed too.
    """
    other = OtherProcess(tmp_path)
    other.ask("append first")
    assert other.ask("claim").endswith(".replaying")
    other.ask("append second")
    assert len(other.ask("hold")) == 3  # .replaying, .open and the lock file
    child_pid = other.proc.pid
    other.kill()
    for path in [*tmp_path.iterdir(), *(tmp_path / LOCKS).iterdir()]:
        if f"{child_pid}_" in path.name:
            path.rename(path.with_name(path.name.replace(f"{child_pid}_", f"{os.getpid()}_")))
    (tmp_path / f"{1:020d}-{os.getpid()}.open").write_bytes(b"legacy\n")
    assert sorted(p.suffix for p in tmp_path.glob(f"*-{os.getpid()}*")) == [".open", ".open", ".replaying"]

    spool = Spool(tmp_path, max_bytes=10_000)
    assert spool.has_pending() and spool.size_bytes == len(b"legacy\nfirst\nsecond\n")
    assert drain(spool) == [b"legacy", b"first", b"second"]  # oldest first
    assert segments(tmp_path) == [] and spool.size_bytes == 0 and not spool.has_pending()
    assert [p.stem for p in (tmp_path / LOCKS).iterdir()] == [spool.writer]  # the dead writer's lock is cleaned up


def test_two_live_processes_never_read_each_others_open_segment(tmp_path):
    """Two live processes share one folder: each replays only its own open segment, until the other closes it."""
    other = OtherProcess(tmp_path)
    here = Spool(tmp_path, max_bytes=10_000)
    try:
        assert other.ask("append from-other") == [1, 0]
        assert here.append([b"from-here"]) == (1, 0)
        assert other.ask("drain") == ["from-other"]  # not ours: our open segment stays put
        assert segments(tmp_path) and all(here.writer in name for name in segments(tmp_path))
        other.ask("append other-again")
        assert drain(here) == [b"from-here"]  # not the other's open segment
        assert any(".open" in name and here.writer not in name for name in segments(tmp_path))
        assert here.size_bytes == len(b"other-again\n") and not here.has_pending()
        other.ask("close")  # its segment is now closed: anyone may replay it
        assert drain(here) == [b"other-again"]
    finally:
        other.exit()


def test_live_process_with_a_claimed_segment_keeps_it(tmp_path):
    """A segment another live process is replaying (`.replaying`) is not taken from it."""
    other = OtherProcess(tmp_path)
    try:
        other.ask("append busy")
        other.ask("claim")
        assert drain(Spool(tmp_path, max_bytes=10_000)) == []
    finally:
        other.exit()


def test_byte_cap_counts_only_pending_bytes(tmp_path, monkeypatch):
    """Bytes another process replayed and deleted stop counting, so the cap admits new events again
    (once the rescan interval has passed: a full spool does not list the folder on every batch)."""
    now = [1000.0]
    monkeypatch.setattr(spool_mod, "time", SimpleNamespace(monotonic=lambda: now[0], time_ns=time.time_ns))
    writer = Spool(tmp_path, max_bytes=1_000)
    assert writer.append([b"x" * 899]) == (1, 0)
    assert writer.append([b"y" * 200]) == (0, 1)  # 900 + 201 > 1,000
    writer.close()
    replayer = Spool(tmp_path, max_bytes=1_000)  # another writer (its own flock), as another process would be
    assert drain(replayer) == [b"x" * 899]
    assert writer.append([b"y" * 200]) == (0, 1)  # no second look within the interval
    now[0] += spool_mod.RESCAN_INTERVAL
    assert writer.append([b"y" * 200]) == (1, 0)  # the writer learns the folder emptied
    assert writer.size_bytes == 201  # lock files (writers/) are not counted


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_is_a_writer_of_its_own(tmp_path):
    """After fork the child neither replays the parent's open segment nor shares its name."""
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append([b"parent"])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            spool.after_fork()  # what the exporter's at-fork hook calls through the transport
            spool.append([b"child"])
            got = [v.decode() for v in drain(spool)]
            os.write(write, json.dumps([spool.writer, got]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child_writer, child_got = json.loads(f.read())
    os.waitpid(pid, 0)
    assert child_got == ["child"] and child_writer != spool.writer
    assert drain(spool) == [b"parent"]
