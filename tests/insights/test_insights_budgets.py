"""Budgets: configuration validated loudly, rolling hour/day windows, one breach per episode and level."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokentrail.stream.insights.budgets import BudgetConfig, SpendBucket, evaluate_budgets, load_budgets

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


def config(*rules: dict, **top) -> BudgetConfig:
    return BudgetConfig.from_dict({"budgets": list(rules), **top})


def spend(per_bucket: dict[int, str], tenant: str = "acme", feature: str = "code-review") -> list[SpendBucket]:
    """Buckets by index of 5 minutes after 09:00."""
    return [SpendBucket(tenant, feature, T0 + i * STEP, Decimal(usd)) for i, usd in per_bucket.items()]


HOURLY = {"scope": "tenant", "key": "*", "window": "hour", "warning": 5, "critical": 10}


def test_warning_then_critical_are_separate_breaches_at_their_own_crossing():
    """Spend climbing to 6 then 12 an hour: a warning when it reaches 5, a critical when it reaches 10."""
    breaches = evaluate_budgets(spend({0: "3", 1: "3", 2: "6"}), config(HOURLY))
    assert [(b.level, b.window_end, b.spend) for b in breaches] == [
        ("warning", T0 + 2 * STEP, Decimal("6")),
        ("critical", T0 + 3 * STEP, Decimal("12")),
    ]
    warning = breaches[0]
    assert (warning.scope, warning.key, warning.window, warning.threshold) == ("tenant", "acme", "hour", Decimal(5))
    assert warning.window_start == warning.window_end - timedelta(hours=1)


def test_spend_below_the_warning_is_no_breach():
    """4.99 in an hour against a warning of 5: nothing."""
    assert evaluate_budgets(spend({0: "2", 3: "2.99"}), config(HOURLY)) == []


def test_a_burst_across_an_hour_boundary_is_caught_by_the_rolling_window():
    """6 at 09:50 and 6 at 10:05: each calendar hour holds 6, the rolling hour holds 12 (critical)."""
    breaches = evaluate_budgets(spend({10: "6", 13: "6"}), config(HOURLY))
    assert [(b.level, b.window_end) for b in breaches] == [("warning", T0 + 11 * STEP), ("critical", T0 + 14 * STEP)]


def test_a_sustained_breach_is_one_episode_and_a_new_one_after_recovery():
    """Over the warning for two hours: one breach; under it for an hour, then over again: a second one."""
    steady = {i: "0.5" for i in range(36)}  # 6 per rolling hour once an hour is full
    steady.update({i: "0.5" for i in range(60, 84)})
    breaches = evaluate_budgets(spend(steady), config({**HOURLY, "critical": 100}))
    assert [b.window_end for b in breaches] == [T0 + 10 * STEP, T0 + 70 * STEP]


def test_spend_wobbling_around_the_budget_is_one_episode_per_quiet_window():
    """Crossing the warning again and again, each time within an hour of the last crossing, alerts once."""
    # Every 30 minutes a 2-dollar bucket enters the rolling hour (6.0) and another leaves it (4.2).
    wobble = {i: ("2" if i % 6 == 0 else "0.2") for i in range(48)}
    (breach,) = evaluate_budgets(spend(wobble), config({**HOURLY, "critical": 100}))
    assert breach.window_end == T0 + 7 * STEP and breach.spend == Decimal("5.0")


def test_a_named_key_overrides_the_wildcard_and_features_add_up_across_tenants():
    """acme has its own, higher hour budget; code-review's day budget counts every tenant's spend."""
    cfg = config(
        HOURLY,
        {"scope": "tenant", "key": "acme", "window": "hour", "warning": 50},
        {"scope": "feature", "key": "code-review", "window": "day", "critical": 7},
    )
    buckets = spend({0: "6"}, tenant="acme") + spend({1: "6"}, tenant="initech")
    found = {(b.scope, b.key, b.window, b.level) for b in evaluate_budgets(buckets, cfg)}
    assert found == {("tenant", "initech", "hour", "warning"), ("feature", "code-review", "day", "critical")}


def test_incremental_evaluation_finds_the_same_breaches_with_the_same_ids():
    """Evaluating [.., t] then [t, ..] with the config's lookback equals one pass over everything."""
    buckets = spend({i: str(i % 7) for i in range(0, 400, 3)})
    cfg = config(HOURLY, {"scope": "tenant", "key": "*", "window": "day", "warning": 40, "critical": 200})
    whole = evaluate_budgets(buckets, cfg)
    cut = T0 + 150 * STEP
    assert cfg.lookback == timedelta(days=2, minutes=5)
    first = evaluate_budgets([b for b in buckets if b.start < cut], cfg, last_end=cut)
    second = evaluate_budgets([b for b in buckets if b.start >= cut - cfg.lookback], cfg, first_end=cut)
    ids = lambda bs: {b.breach_id for b in bs}  # noqa: E731
    assert len(whole) > 4 and ids(first) | ids(second) == ids(whole)
    assert ids(first) & ids(second) <= {b.breach_id for b in whole if b.window_end == cut}


def test_buckets_must_be_aligned_to_the_step():
    """A bucket starting off the grid is a programming error, said plainly."""
    with pytest.raises(ValueError, match="not aligned to step_seconds=300"):
        evaluate_budgets([SpendBucket("a", "f", T0 + timedelta(seconds=7), Decimal(1))], config(HOURLY))


def test_breach_alert_and_row_carry_the_evidence():
    """The alert names scope, key, window, level, spend and threshold; the row is what the table stores."""
    (breach,) = evaluate_budgets(spend({0: "7"}), config({**HOURLY, "critical": 100}))
    alert = breach.to_alert()
    assert alert["type"] == "budget_breach" and alert["severity"] == "warning"
    assert (alert["spend_usd"], alert["threshold_usd"], alert["key"]) == ("7", "5", "acme")
    assert alert["window_end"] == "2026-11-20T09:05:00.000Z" and breach.row()["breach_id"] == breach.breach_id


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({**HOURLY, "scope": "team"}, r"budgets\[0\]\.scope must be one of tenant, feature, got 'team'"),
        ({**HOURLY, "window": "week"}, r"budgets\[0\]\.window must be one of hour, day, got 'week'"),
        ({**HOURLY, "key": ""}, r"budgets\[0\]\.key must be a tenant name, or \"\*\" for every tenant"),
        ({**HOURLY, "warning": 10, "critical": 5}, r"warning \(10\) must be below critical \(5\)"),
        ({"scope": "tenant", "key": "*", "window": "hour"}, r"needs a warning and/or a critical amount"),
        ({**HOURLY, "warning": -1}, r"budgets\[0\]\.warning must be a positive USD amount"),
        ({**HOURLY, "critical": "lots"}, r"budgets\[0\]\.critical must be a USD amount like 12.5"),
        ({**HOURLY, "treshold": 3}, r"unknown field\(s\) \['treshold'\]"),
    ],
)
def test_bad_rules_fail_with_the_entry_and_the_fix(rule, message):
    """Each mistake names the entry and field and says what is accepted."""
    with pytest.raises(ValueError, match=message):
        config(rule)


def test_bad_documents_fail_loudly():
    """A duplicate rule, a missing list, a bad step, an unreadable or malformed file: ValueError naming the fix."""
    with pytest.raises(ValueError, match=r"budgets\[1\] repeats .* of budgets\[0\]; merge them"):
        config(HOURLY, HOURLY)
    with pytest.raises(ValueError, match="expected a mapping with a 'budgets' list"):
        BudgetConfig.from_dict([HOURLY])
    with pytest.raises(ValueError, match="step_seconds must be a whole number of seconds dividing 3600"):
        config(HOURLY, step_seconds=420)
    with pytest.raises(ValueError, match="unknown top-level key"):
        BudgetConfig.from_dict({"budget": [HOURLY]})


def test_load_budgets_reads_yaml_and_json_and_names_the_file(tmp_path):
    """YAML and JSON files load to the same config; a broken or missing file names the path."""
    yaml_file = tmp_path / "budgets.yaml"
    yaml_file.write_text("budgets:\n  - {scope: tenant, key: '*', window: hour, warning: 5, critical: 10}\n")
    json_file = tmp_path / "budgets.json"
    json_file.write_text(json.dumps({"budgets": [HOURLY]}))
    assert load_budgets(yaml_file) == load_budgets(json_file) == config(HOURLY)
    broken = tmp_path / "broken.yaml"
    broken.write_text("budgets: [scope: tenant\n")
    with pytest.raises(ValueError, match=f"budget file {broken} is not valid YAML"):
        load_budgets(broken)
    with pytest.raises(ValueError, match="cannot read budget file"):
        load_budgets(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets:\n  - {scope: tenant, key: '*', window: month, warning: 5}\n")
    with pytest.raises(ValueError, match=rf"{bad}: budgets\[0\]\.window"):
        load_budgets(bad)
