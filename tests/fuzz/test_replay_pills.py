"""Issue 11's "done when", for `tokentrail replay`: a file mixing good events with every poison pill exits 0,
accounts for every line, stores every good event, and leaves no planted value in any table."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pills import PII_NEEDLES, event_ids, expected, good_events, interleave, poison_pills
from store_check import read_back

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_replay_of_every_pill(tmp_path):
    """Replay (a real `tokentrail replay` process) of 500 good events around the pills into a fresh chDB store."""
    now = datetime.now(UTC)
    pills = poison_pills(now)
    good = good_events(500)
    source = tmp_path / "pills.jsonl"
    source.write_bytes(b"\n".join(interleave(good, pills)) + b"\n")
    store = tmp_path / "store"

    done = subprocess.run(
        [sys.executable, "-m", "tokentrail.stream.cli", "replay", str(source), "--clickhouse", f"chdb://{store}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    counts = re.search(r"read (\d+) lines: (\d+) accepted, (\d+) duplicates, (\d+) dead letters", done.stderr)
    assert counts, done.stderr[-3000:]
    read, accepted, duplicates, dead = map(int, counts.groups())
    valid_pills, dead_by_reason = expected(pills, now)
    assert read == len(good) + len(pills) == accepted + duplicates + dead
    assert (accepted, duplicates, dead) == (len(good) + valid_pills, 0, sum(dead_by_reason.values()))
    contents = read_back(store, PII_NEEDLES)
    assert event_ids(good) <= contents.event_ids, "every good event is stored"
    assert len(contents.event_ids) == len(good) + valid_pills
    assert dict(contents.dead_reasons) == dead_by_reason
    assert not contents.leaks, f"planted values found in tables: {contents.leaks}"
