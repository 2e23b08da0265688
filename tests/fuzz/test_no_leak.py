"""Property: a planted PII value, anywhere in an event, is found nowhere in the rows handed to the store.

"Anywhere" is split by region so a failure says which part of the processor lets it through:
free text and free-form values at any depth, JSON keys, numbers, identifiers, labels and ids, and
dead letters (the same event made invalid). Each example runs one event through the replay
pipeline into chDB (fuzz_harness.py); the rows of every table are searched for the needle.
"""

from __future__ import annotations

from typing import Any

from fuzz_harness import Outcome, check_accounting, run_lines
from fuzz_strategies import encode
from hypothesis import given
from hypothesis import strategies as st
from pii_plants import identifier_in_event, key_in_event, label_in_event, number_in_event, text_in_event


def leaks(outcome: Outcome, needle: str) -> list[str]:
    """The tables whose rows hold `needle` (case-insensitive), with the first matching column."""
    found = []
    for table in sorted({table for batch in outcome.sink.batches for table in batch}):
        for row in outcome.sink.rows(table):
            column = next((c for c, v in row.items() if needle.lower() in str(v).lower()), None)
            if column:
                found.append(f"{table}.{column}")
                break
    return found


def run_planted(fuzz_pipeline: Any, fuzz_store: Any, where: str, doc: dict[str, Any], needle: str) -> Outcome:
    raw = encode(doc)
    assert needle.encode() in raw, "the plant is in the event"
    outcome = run_lines(fuzz_pipeline, fuzz_store.sink, [raw])
    check_accounting(outcome)
    return outcome


def check_valid_and_clean(fuzz_pipeline: Any, fuzz_store: Any, planted: tuple[str, dict[str, Any], str]) -> None:
    where, doc, needle = planted
    outcome = run_planted(fuzz_pipeline, fuzz_store, where, doc, needle)
    dead = [(row["reason"], row["field"]) for row in outcome.sink.rows("deadletter")]
    assert outcome.stats.accepted == 1, f"the planted event is valid (planted at {where}); dead letters: {dead}"
    assert not leaks(outcome, needle), f"{needle!r} planted at {where} reached {leaks(outcome, needle)}"


@given(planted=text_in_event())
def test_text_and_free_form_values(fuzz_pipeline, fuzz_store, planted):
    """Message, output and error text; attributes values; params, tool arguments and results at any depth."""
    check_valid_and_clean(fuzz_pipeline, fuzz_store, planted)


@given(planted=key_in_event())
def test_json_keys(fuzz_pipeline, fuzz_store, planted):
    """PII used as a JSON key in attributes, params, tool arguments and results, at any depth."""
    check_valid_and_clean(fuzz_pipeline, fuzz_store, planted)


@given(planted=number_in_event())
def test_numbers(fuzz_pipeline, fuzz_store, planted):
    """A Luhn-valid card as a JSON number (any key), a phone number as a number under a key that names it."""
    check_valid_and_clean(fuzz_pipeline, fuzz_store, planted)


@given(planted=identifier_in_event())
def test_identifiers(fuzz_pipeline, fuzz_store, planted):
    """session_id and user_id: pseudonymised, so neither PII nor a plain opaque id is stored as sent."""
    check_valid_and_clean(fuzz_pipeline, fuzz_store, planted)


@given(planted=label_in_event())
def test_labels_and_ids(fuzz_pipeline, fuzz_store, planted):
    """Labels and ids (tenant, service, model, trace_id, tool names, error type, ...) are strings that leave
    the processor too: PII put there must not be stored as sent."""
    check_valid_and_clean(fuzz_pipeline, fuzz_store, planted)


BREAKS = ["schema_version", "truncate", "tokens", "far_future", "bad_utf8", "wrong_type"]


@given(
    planted=text_in_event() | key_in_event() | number_in_event() | identifier_in_event(),
    how=st.sampled_from(BREAKS),
)
def test_dead_letters(fuzz_pipeline, fuzz_store, planted, how):
    """The same planted events made invalid: the dead letter's payload is redacted like a valid event
    (as JSON when it parses, as text when not), identifiers pseudonymised."""
    where, doc, needle = planted
    if how == "schema_version":
        doc["schema_version"] = 2
    elif how == "tokens":
        doc["usage"] = {"input_tokens": 5_000_000_000_000, "output_tokens": 1}
        doc["type"] = "output"
    elif how == "far_future":
        doc["ts"] = "9999-12-31T23:59:59Z"
    elif how == "wrong_type":
        doc["trace_id"] = 42
    raw = encode(doc)
    if how == "truncate":
        raw = raw[:-1]
    elif how == "bad_utf8":
        raw = raw[:-1] + b"\xff}"
    outcome = run_lines(fuzz_pipeline, fuzz_store.sink, [raw])
    check_accounting(outcome)
    assert outcome.stats.deadletter == 1, f"the broken event ({how}) is a dead letter"
    assert not leaks(outcome, needle), (
        f"{needle!r} planted at {where}, broken by {how}, reached {leaks(outcome, needle)}"
    )
