"""A service killed while Kafka was unreachable, restarted with the same PID: its spooled events reach the broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from kafka_helpers import consume_events

import tokentrail.collectors as tt
from tokentrail.collectors.spool import LOCKS

pytestmark = pytest.mark.kafka

# A service whose broker is unreachable: it emits, waits until every event is in the spool, says
# so, then waits to be killed.
CRASHING_SERVICE = textwrap.dedent(
    """
    import json, sys, time
    import tokentrail.collectors as tt

    settings = tt.KafkaSettings(
        bootstrap_servers="127.0.0.1:9", topic="unused", spool_dir=sys.argv[1], message_timeout_ms=1000
    )
    from tokentrail.collectors.kafka import KafkaTransport

    c = tt.Collector(service="order-agent", transport=KafkaTransport(settings), register_atexit=False)
    for i in range(int(sys.argv[2])):
        with c.model_call(provider="openai", model="m", messages=[{"role": "user", "content": str(i)}]) as call:
            call.finish(output=f"answer {i}")
    deadline = time.monotonic() + 60
    while c.stats().get("spooled", 0) < 2 * int(sys.argv[2]) and time.monotonic() < deadline:
        c.flush(0.5)
    print(json.dumps(c.stats()), flush=True)
    time.sleep(600)
    """
)


def test_events_spooled_by_a_killed_process_with_our_pid_are_delivered(kafka_bootstrap, new_topic, tmp_path):
    """What a SIGKILLed incarnation spooled (open segment included) is replayed to Kafka by the next, same PID.

    The dead incarnation is a real process; since a new process cannot be handed its PID, its
    files are renamed to carry this process's PID after it is killed: the state a container
    restarted as the same PID finds (see tests/collectors/test_spool.py for the same at file level).
    """
    topic = new_topic(kafka_bootstrap)
    spool_dir = tmp_path / "spool"
    calls = 50
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SERVICE, str(spool_dir), str(calls)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        stats = json.loads(proc.stdout.readline())
        assert stats["spooled"] == 2 * calls and stats["broker_up"] is False
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert list(spool_dir.glob("*.open")), "the killed process left its open segment"
    for path in [*spool_dir.iterdir(), *(spool_dir / LOCKS).iterdir()]:
        if f"{proc.pid}_" in path.name:
            path.rename(path.with_name(path.name.replace(f"{proc.pid}_", f"{os.getpid()}_")))

    kafka = tt.KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, spool_dir=spool_dir)
    from tokentrail.collectors.kafka import KafkaTransport

    restarted = tt.Collector(service="order-agent", transport=KafkaTransport(kafka), register_atexit=False)
    deadline = time.monotonic() + 60
    while not restarted.flush(2) and time.monotonic() < deadline:
        pass
    after = restarted.stats()
    restarted.close()
    assert after["replayed"] == 2 * calls and after["spool_bytes"] == 0 and after["dropped"] == {}
    events = [event for _, event in consume_events(kafka_bootstrap, topic, 2 * calls)]
    assert sorted(e["type"] for e in events).count("output") == calls
    assert len({e["event_id"] for e in events}) == 2 * calls
    assert not [p for p in spool_dir.iterdir() if p.is_file()]
