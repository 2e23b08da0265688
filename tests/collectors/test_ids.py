"""Ids in real hosts: a host that seeds `random` neither collides its replicas' ids nor sees its sequence move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A host that seeds the global generator right after configuring tokentrail, records one model
# call, and prints what it sent plus the next draws of its own seeded sequence.
SEEDED_HOST = textwrap.dedent(
    """
    import json, random, sys
    import tokentrail.collectors as tt

    tt.init(service="replica", jsonl_path=sys.argv[1])
    random.seed(0)
    with tt.model_call(provider="openai", model="m", messages=[{"role": "user", "content": "hi"}], feature="f") as c:
        c.finish(output="x")
    assert tt.flush(5)
    tt.close()
    print(json.dumps([random.random() for _ in range(5)]))
    """
)


def run_seeded_host(path: Path) -> tuple[list[dict[str, object]], list[float]]:
    out = subprocess.run([sys.executable, "-c", SEEDED_HOST, str(path)], check=True, capture_output=True, text=True)
    events = [json.loads(line) for line in path.read_bytes().splitlines()]
    return events, json.loads(out.stdout)


def test_two_replicas_that_seed_random_emit_distinct_ids(tmp_path):
    """Two processes that each call random.seed(0) after init emit different trace, span and event ids."""
    first, _ = run_seeded_host(tmp_path / "a.jsonl")
    second, _ = run_seeded_host(tmp_path / "b.jsonl")
    assert [e["type"] for e in first] == [e["type"] for e in second] == ["prompt", "output"]
    assert first[0]["trace_id"] != second[0]["trace_id"]
    assert first[0]["span_id"] != second[0]["span_id"]
    ids_a, ids_b = {e["event_id"] for e in first}, {e["event_id"] for e in second}
    assert len(ids_a) == len(ids_b) == 2 and not ids_a & ids_b
    # Beyond the millisecond timestamp (the first 13 hex digits), the random parts differ too.
    assert {str(i)[14:] for i in ids_a}.isdisjoint({str(i)[14:] for i in ids_b})


def test_emitting_leaves_the_host_seeded_sequence_unchanged(tmp_path):
    """After random.seed(0), the host draws exactly what Python's seed(0) gives, whatever tokentrail emitted."""
    import random

    _, after_emitting = run_seeded_host(tmp_path / "events.jsonl")
    reference = random.Random(0)
    assert after_emitting == [reference.random() for _ in range(5)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_children_draw_distinct_ids():
    """Children forked from one parent (whose generator state they copy) each draw their own ids."""
    code = textwrap.dedent(
        """
        import json, os
        from tokentrail.collectors.ids import new_span_id, new_trace_id, uuid7

        new_trace_id()  # the parent has drawn before forking: the children copy that state
        children = []
        for _ in range(3):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                os.write(write, json.dumps([new_trace_id(), new_span_id(), uuid7()[14:]]).encode())
                os._exit(0)
            os.close(write)
            with os.fdopen(read) as f:
                children.append(json.loads(f.read()))
            os.waitpid(pid, 0)
        children.append([new_trace_id(), new_span_id(), uuid7()[14:]])
        print(json.dumps(children))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    draws = json.loads(out.stdout)
    assert len(draws) == 4
    for column in range(3):  # trace ids, span ids, event ids' random part: four distinct values each
        assert len({d[column] for d in draws}) == 4, draws
