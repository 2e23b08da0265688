"""The on-disk spool: bounded, oldest first, shared safely between processes, survives restarts."""

from __future__ import annotations

import os

from tokentrail.collectors import spool as spool_mod
from tokentrail.collectors.spool import Spool


def drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while (segment := spool.claim_oldest()) is not None:
        out.extend(segment.values())
        segment.done()
    return out


def test_append_and_replay_oldest_first(tmp_path, monkeypatch):
    """Events come back in the order they were spooled, across segment rotation."""
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 64)
    spool = Spool(tmp_path, max_bytes=10_000)
    values = [f'{{"n":{i}}}'.encode() for i in range(50)]
    for i in range(0, 50, 5):
        assert spool.append(values[i : i + 5]) == (5, 0)
    assert len(list(tmp_path.iterdir())) > 2  # rotated into several segments
    assert drain(spool) == values
    assert not spool.has_pending() and list(tmp_path.iterdir()) == []


def test_bounded_by_bytes(tmp_path):
    """Past max_bytes, append refuses and says how many it refused."""
    spool = Spool(tmp_path, max_bytes=100)
    assert spool.append([b"x" * 40, b"y" * 40, b"z" * 40]) == (2, 1)
    assert spool.size_bytes == 82


def test_survives_a_restart(tmp_path):
    """Segments written by an earlier process (even still 'open' when it died) are replayed by the next."""
    first = Spool(tmp_path, max_bytes=10_000)
    first.append([b'{"a":1}'])
    # Simulate a crash: the segment stays ".open" under a pid that no longer exists.
    (open_segment,) = tmp_path.iterdir()
    dead = open_segment.with_name(open_segment.name.replace(f"-{os.getpid()}.", "-999999999."))
    os.rename(open_segment, dead)
    second = Spool(tmp_path, max_bytes=10_000)
    assert second.has_pending()
    assert drain(second) == [b'{"a":1}']


def test_torn_last_line_is_skipped(tmp_path):
    """A line cut short by a crash is not replayed as a broken event."""
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append([b'{"a":1}'])
    spool.close()
    (segment,) = tmp_path.iterdir()
    with open(segment, "ab") as f:
        f.write(b'{"b":')
    assert drain(Spool(tmp_path, max_bytes=10_000)) == [b'{"a":1}']


def test_another_live_process_open_segment_is_left_alone(tmp_path):
    """An open segment of a process that is still alive is not claimed."""
    (tmp_path / f"{1:020d}-{os.getppid()}.open").write_bytes(b'{"mine":0}\n')
    assert Spool(tmp_path, max_bytes=10_000).claim_oldest() is None
