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
from hypothesis import example, given
from hypothesis import strategies as st
from pii_plants import (
    DIMENSION_LABELS,
    IDS_AND_NAMES,
    event_of,
    identifier_in_event,
    key_in_event,
    number_in_event,
    string_in,
    text_in_event,
)


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


@given(planted=string_in(IDS_AND_NAMES))
def test_ids_and_names(fuzz_pipeline, fuzz_store, planted):
    """trace/span/parent ids, tool-call ids, requested tool names, error type, message name: an ordinary id is
    kept as sent, but one that holds PII must not be stored as sent."""
    check_valid_and_clean(fuzz_pipeline, fuzz_store, planted)


@given(planted=string_in(DIMENSION_LABELS))
def test_dimension_labels(fuzz_pipeline, fuzz_store, planted):
    """tenant, service, environment, feature, provider, model, prompt id/version, finish reason, tool name:
    strings that leave the processor, so PII put there must not be stored as sent either."""
    check_valid_and_clean(fuzz_pipeline, fuzz_store, planted)


BREAKS = ["schema_version", "truncate", "tokens", "far_future", "bad_utf8", "wrong_type"]


def _plain_user_id() -> tuple[str, dict[str, Any], str]:
    doc = event_of("prompt")
    doc["user_id"] = "u-8812-jdoe"
    return "user_id", doc, "u-8812-jdoe"


@given(
    planted=text_in_event() | key_in_event() | number_in_event() | identifier_in_event(),
    how=st.sampled_from(BREAKS),
)
# Found by the local profile: a truncated event (not JSON) is redacted as text, so a plain user_id stays.
@example(planted=_plain_user_id(), how="truncate")
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
