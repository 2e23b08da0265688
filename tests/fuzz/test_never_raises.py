"""Property: no input stops the pipeline, every line is accounted for, and good events around bad ones are stored.

Each example is one batch: a fresh valid event, the hostile line(s), another fresh valid event,
run by the embedded driver of `tokentrail replay` into a real chDB store (fuzz_harness.py).
"""

from __future__ import annotations

from fuzz_harness import check_accounting, one_line, run_lines, stored_event_ids
from fuzz_strategies import encode, event_shaped_json, good_lines, json_values, mutated_events
from hypothesis import given
from hypothesis import strategies as st


def _event_id(line: bytes) -> str:
    import json

    return str(json.loads(line)["event_id"])


def check_around(fuzz_pipeline, fuzz_store, hostile: list[bytes], before: bytes, after: bytes) -> None:
    outcome = run_lines(fuzz_pipeline, fuzz_store.sink, [before, *hostile, after])
    check_accounting(outcome)
    stored = stored_event_ids(outcome)
    assert {_event_id(before), _event_id(after)} <= stored, "a hostile line cost a good event its place"


@given(
    hostile=st.lists(st.binary(max_size=300).map(one_line), min_size=1, max_size=3), before=good_lines, after=good_lines
)
def test_arbitrary_bytes(fuzz_pipeline, fuzz_store, hostile, before, after):
    """Arbitrary byte strings (invalid UTF-8, NULs, half JSON) never raise and never cost a good neighbour."""
    check_around(fuzz_pipeline, fuzz_store, hostile, before, after)


@given(
    hostile=st.lists((json_values | event_shaped_json()).map(encode).map(one_line), min_size=1, max_size=3),
    before=good_lines,
    after=good_lines,
)
def test_arbitrary_json(fuzz_pipeline, fuzz_store, hostile, before, after):
    """Arbitrary JSON, and objects that carry the event's field names with arbitrary values."""
    check_around(fuzz_pipeline, fuzz_store, hostile, before, after)


@given(hostile=st.lists(mutated_events().map(one_line), min_size=1, max_size=3), before=good_lines, after=good_lines)
def test_mutated_valid_events(fuzz_pipeline, fuzz_store, hostile, before, after):
    """Valid synthetic events with wrong types, huge numbers, NaN, deep nesting, control/bidi characters,
    long strings, missing and extra fields, far dates: never raise, always accounted, always storable."""
    check_around(fuzz_pipeline, fuzz_store, hostile, before, after)
