"""The worker's loop-state table adapter: (tenant, trace) states under the raw trace_id key."""

from __future__ import annotations

from tokentrail.stream.detectors import state_key
from tokentrail.stream.faust_worker.loop_state import MAX_TENANTS_PER_TRACE, TraceKeyedTable


def test_two_tenants_share_a_table_key_but_not_a_state():
    """Both tenants' states sit under the trace id's bytes (the events' partition key), apart."""
    table: dict = {}
    state = TraceKeyedTable(table)
    state[state_key("acme", "t1")] = {"tenant": "acme", "events": 3}
    state[state_key("globex", "t1")] = {"tenant": "globex", "events": 1}
    assert list(table) == [b"t1"]
    assert state[state_key("acme", "t1")]["events"] == 3 and state[state_key("globex", "t1")]["events"] == 1
    assert sorted(state) == sorted([state_key("acme", "t1"), state_key("globex", "t1")]) and len(state) == 2
    del state[state_key("acme", "t1")]
    assert state_key("acme", "t1") not in state and state[state_key("globex", "t1")]["events"] == 1
    del state[state_key("globex", "t1")]
    assert table == {}  # the last tenant gone: the key goes (a changelog tombstone)


def test_seeds_give_every_tenants_state_for_the_batch_keys():
    """What the pipeline process is seeded with: keyed by state_key, from the message keys only."""
    table: dict = {
        b"t1": {"tenants": {"acme": {"n": 1}, "globex": {"n": 2}}},
        b"t2": {"tenants": {"acme": {"n": 3}}},
    }
    seeds = TraceKeyedTable(table).seeds([b"t1", b"t1", b"absent"])
    assert seeds == {state_key("acme", "t1"): {"n": 1}, state_key("globex", "t1"): {"n": 2}}


def test_a_value_written_before_tenants_were_kept_apart_is_its_own_tenants():
    """A restored changelog value in the old form (one state) belongs to the tenant it names, and only to it."""
    table: dict = {b"t1": {"tenant": "acme", "last_ms": 1, "events": 4}}
    state = TraceKeyedTable(table)
    assert state[state_key("acme", "t1")]["events"] == 4
    assert state.get(state_key("globex", "t1")) is None
    state[state_key("globex", "t1")] = {"tenant": "globex", "events": 1}
    assert set(table[b"t1"]["tenants"]) == {"acme", "globex"}


def test_tenants_per_trace_are_bounded_least_recently_seen_first():
    """A writer inventing tenants for one trace id cannot grow a table value without bound."""
    table: dict = {}
    state = TraceKeyedTable(table)
    for i in range(MAX_TENANTS_PER_TRACE + 3):
        state[state_key(f"tenant-{i}", "t1")] = {"seen_ms": i}
    kept = table[b"t1"]["tenants"]
    assert (
        len(kept) == MAX_TENANTS_PER_TRACE and "tenant-0" not in kept and f"tenant-{MAX_TENANTS_PER_TRACE + 2}" in kept
    )
