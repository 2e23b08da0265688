"""Silent-change detection as a pure function over call rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokentrail.stream.insights.changes import (
    ChangeKey,
    Observation,
    change_id,
    detect_changes,
    observations_from_calls,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def calls(*specs: dict, **common) -> list[dict]:
    """Call rows one second apart; each spec overrides the defaults."""
    base = {
        "tenant": "northwind",
        "feature": "order-support",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "prompt_id": "order_assistant",
        "prompt_version": "v3",
        "system_prompt_hash": "aaaa",
    }
    return [
        {**base, **common, **spec, "ts": T0 + timedelta(seconds=i), "event_id": f"e{i:04d}"}
        for i, spec in enumerate(specs)
    ]


def kinds(changes) -> list[str]:
    return [c.kind for c in changes]


def test_clean_history_has_no_changes():
    """Stable values, in several groups: the first value of each group is a baseline, not a change."""
    rows = calls(*[{}] * 5, *[{"tenant": "acme", "response_model": "gpt-4o-2024-11-20"}] * 3)
    assert detect_changes(observations_from_calls(rows)) == []


def test_model_swap_is_one_response_model_change_with_from_to_and_first_seen():
    """The provider serves a new snapshot: exactly one change, from old to new, at the first new call."""
    new = {"response_model": "gpt-4o-2024-11-20"}
    rows = calls({}, {}, {}, new, new, new)
    (change,) = detect_changes(observations_from_calls(rows))
    assert change.kind == "response_model" and change.silent
    assert change.key == ChangeKey(tenant="northwind", feature="order-support", model="gpt-4o")
    assert (change.from_value, change.to_value) == ("gpt-4o-2024-08-06", "gpt-4o-2024-11-20")
    assert change.first_seen == rows[3]["ts"]


def test_errored_calls_without_a_response_model_are_not_changes():
    """An error has no response_model ('' in the store); it neither starts nor breaks a run."""
    rows = calls({}, {"response_model": ""}, {}, {"response_model": ""})
    assert detect_changes(observations_from_calls(rows)) == []


def test_flapping_reports_the_new_value_once_and_the_old_one_never_again():
    """A, B, A, B, A (a canary, in-flight traces): one change A -> B."""
    b = {"response_model": "B"}
    rows = calls({"response_model": "A"}, b, {"response_model": "A"}, b, {"response_model": "A"})
    (change,) = detect_changes(observations_from_calls(rows))
    assert (change.from_value, change.to_value, change.first_seen) == ("A", "B", rows[1]["ts"])


def test_each_new_value_is_a_change_from_the_value_just_before_it():
    """A, B, C: two changes, A -> B and B -> C."""
    rows = calls({"response_model": "A"}, {"response_model": "B"}, {"response_model": "C"})
    assert [(c.from_value, c.to_value) for c in detect_changes(observations_from_calls(rows))] == [
        ("A", "B"),
        ("B", "C"),
    ]


def test_system_prompt_edit_without_a_version_bump_is_a_silent_system_prompt_change():
    """Same (feature, prompt_id, prompt_version), new system-prompt hash: kind system_prompt, across tenants."""
    rows = calls(
        {}, {"tenant": "globex"}, {"system_prompt_hash": "bbbb"}, {"tenant": "globex", "system_prompt_hash": "bbbb"}
    )
    (change,) = detect_changes(observations_from_calls(rows))
    assert change.kind == "system_prompt" and change.silent
    assert change.key == ChangeKey(feature="order-support", prompt_id="order_assistant", prompt_version="v3")
    assert (change.from_value, change.to_value, change.first_seen) == ("aaaa", "bbbb", rows[2]["ts"])


def test_version_bump_is_a_prompt_version_change_and_not_a_system_prompt_change():
    """v3 -> v4 with a new system prompt is announced: one prompt_version change, not silent; no system_prompt
    change."""
    bumped = {"prompt_version": "v4", "system_prompt_hash": "bbbb"}
    rows = calls({}, {}, bumped, bumped, {})  # an in-flight v3 call after the bump is not a change back
    (change,) = detect_changes(observations_from_calls(rows))
    assert change.kind == "prompt_version" and not change.silent
    assert change.key == ChangeKey(feature="order-support", prompt_id="order_assistant")
    assert (change.from_value, change.to_value) == ("v3", "v4")


def test_calls_without_prompt_ids_are_not_tracked_for_prompts():
    """No prompt_id: the caller did not opt in to prompt tracking, so varying system prompts are not changes."""
    rows = calls({"system_prompt_hash": "x1"}, {"system_prompt_hash": "x2"}, prompt_id="", prompt_version="")
    assert detect_changes(observations_from_calls(rows)) == []


def test_order_of_input_does_not_matter_and_ties_break_on_value():
    """Observations are sorted by (ts, value); the same history in any order gives the same changes."""
    obs = [Observation("response_model", ChangeKey("t", "f", "m"), v, T0) for v in ("B", "A")]
    (change,) = detect_changes(obs)
    assert (change.from_value, change.to_value) == ("A", "B")
    assert detect_changes(list(reversed(obs))) == [change]


def test_change_ids_are_deterministic_and_alerts_are_json_ready():
    """The id names (kind, group, new value); the alert carries from/to, first-seen and severity."""
    rows = calls({}, {"response_model": "gpt-4o-2024-11-20"})
    (change,) = detect_changes(observations_from_calls(rows))
    assert change.change_id == change_id("response_model", change.key, "gpt-4o-2024-11-20")
    alert = change.to_alert()
    assert alert["type"] == "change" and alert["severity"] == "warning" and alert["ts"] == "2026-11-20T09:00:01.000Z"
    assert alert["from"] == "gpt-4o-2024-08-06" and alert["id"] == str(change.change_id)
    assert change.row()["change_id"] == change.change_id and change.row()["tenant"] == "northwind"
