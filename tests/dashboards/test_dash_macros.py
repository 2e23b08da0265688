"""The macro and variable expander reproduces Grafana's and the ClickHouse plugin's expansion."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.build import variable_query
from tokentrail.dashboards.catalog import all_panels
from tokentrail.dashboards.macros import (
    ALL,
    MACRO_NAMES,
    MacroError,
    TimeRange,
    VariableValue,
    expand_macros,
    interpolate_variables,
    panel_interval_ms,
    round_interval_ms,
)
from tokentrail.dashboards.queries import Selection, panel_sql

START = datetime(2026, 11, 20, 9, 0, 0, 123000, tzinfo=UTC)
RANGE = TimeRange(START, START + timedelta(hours=6))
FROM, TO = int(RANGE.start.timestamp()), int(RANGE.end.timestamp())


def test_time_filter_is_seconds_with_both_bounds_inclusive():
    """$__timeFilter(c) -> c >= toDateTime(FROM) AND c <= toDateTime(TO), FROM/TO in whole unix seconds."""
    assert (
        expand_macros("WHERE $__timeFilter(ts)", RANGE) == f"WHERE ts >= toDateTime({FROM}) AND ts <= toDateTime({TO})"
    )


def test_millisecond_variants_use_from_unix_timestamp64_milli():
    """The _ms macros keep milliseconds (the plugin's timeToDateTime64)."""
    out = expand_macros("$__timeFilter_ms(ts) AND x > ($__fromTime_ms)", RANGE)
    assert out == (
        f"ts >= fromUnixTimestamp64Milli({RANGE.from_ms}) AND ts <= fromUnixTimestamp64Milli({RANGE.to_ms})"
        f" AND x > (fromUnixTimestamp64Milli({RANGE.from_ms}))"
    )


def test_time_interval_uses_the_query_interval_in_seconds_at_least_one():
    """$__timeInterval(c) buckets by the interval (floored at 1 s), $__interval_s prints it."""
    assert (
        expand_macros("$__timeInterval(ts)", RANGE, 300_000) == "toStartOfInterval(toDateTime(ts), INTERVAL 300 second)"
    )
    assert expand_macros("($__interval_s)", RANGE, 200) == "(1)"


def test_date_and_datetime_filters():
    """$__dateFilter compares dates; $__dt(d, t) combines a date and a time filter."""
    assert expand_macros("$__dateFilter(d)", RANGE) == "d >= toDate('2026-11-20') AND d <= toDate('2026-11-20')"
    assert expand_macros("$__dt(d, t)", RANGE).startswith("(d >= toDate('2026-11-20')")


def test_a_no_argument_macro_followed_by_parentheses_is_refused():
    """Grafana's matcher would swallow `AND x IN (1, 2)` after $__fromTime: strict mode refuses such SQL."""
    with pytest.raises(MacroError, match="swallow|replace all"):
        expand_macros("ts >= $__fromTime AND x IN (1, 2)", RANGE)
    lenient = expand_macros("ts >= $__fromTime AND x IN (1, 2)", RANGE, strict=False)
    assert lenient == f"ts >= toDateTime({FROM})"  # what Grafana really sends


def test_unknown_macros_are_refused():
    """A macro the plugin does not define would reach ClickHouse verbatim."""
    with pytest.raises(MacroError, match="unexpanded"):
        expand_macros("SELECT $__unixEpochFilter(ts)", RANGE)


def test_all_with_custom_all_value_is_inserted_verbatim():
    """Grafana skips formatting a custom all value: ${v:singlequote} -> the allValue as written."""
    variables = {"tenant": VariableValue([ALL], ["acme", "globex"], all_value="'__all__'")}
    assert interpolate_variables("IN (${tenant:singlequote})", variables) == "IN ('__all__')"


def test_all_without_custom_all_value_lists_every_option():
    """Without allValue, "All" means every option, each formatted."""
    variables = {"tenant": VariableValue([ALL], ["acme", "o'neil"])}
    assert interpolate_variables("IN (${tenant:singlequote})", variables) == "IN ('acme','o\\'neil')"
    assert interpolate_variables("IN (${tenant:sqlstring})", variables) == "IN ('acme','o''neil')"


def test_multi_value_selection_and_other_syntaxes():
    """$var (the plugin's own quoting), [[var]] and the csv/pipe/raw formats; unknown names and plugin macros stay."""
    variables = {"model": VariableValue(["gpt-4o", "o3-mini"])}
    text = "$model|${model:csv}|[[model:pipe]]|${model:raw}|$unknown|$__timeFilter(ts)"
    assert (
        interpolate_variables(text, variables)
        == "'gpt-4o','o3-mini'|gpt-4o,o3-mini|gpt-4o|o3-mini|gpt-4o,o3-mini|$unknown|$__timeFilter(ts)"
    )


def test_builtin_range_and_interval_variables():
    """$__from/$__to are epoch milliseconds; $__interval is Grafana's text form."""
    out = interpolate_variables("$__from $__to $__interval $__interval_ms", {}, time_range=RANGE, interval_ms=300_000)
    assert out == f"{RANGE.from_ms} {RANGE.to_ms} 5m 300000"


def test_round_interval_matches_grafana():
    """rangeutil.roundInterval's table: 6h over 300 points (72 s) rounds to 1m, 7d (2016 s) to 30m."""
    assert round_interval_ms(72_000) == 60_000
    assert round_interval_ms(2_016_000) == 1_800_000
    assert panel_interval_ms(RANGE, 300, 60_000) == 60_000
    assert panel_interval_ms(TimeRange(START, START + timedelta(minutes=10)), 300, 60_000) == 60_000


QUERIES = [(f"{d.uid}/{p.title}", d, p) for d, _, p in all_panels()]


@pytest.mark.parametrize("name,dashboard,panel", QUERIES, ids=[q[0] for q in QUERIES])
def test_every_panel_expands_the_same_in_any_macro_order(name, dashboard, panel):
    """Strict expansion succeeds, and Go's random map order cannot change the result."""
    selection = Selection(RANGE)
    first = panel_sql(dashboard, panel, selection)
    assert "$" not in first, name
    variables = selection.variables(dashboard)
    interpolated = interpolate_variables(panel.sql, variables, time_range=RANGE, interval_ms=60_000)
    results = {
        expand_macros(interpolated, RANGE, 60_000, order=order)
        for order in itertools.islice(itertools.permutations(MACRO_NAMES), 0, 720, 97)
    }
    assert len(results) == 1


@pytest.mark.parametrize("rule", RULES, ids=[r.uid for r in RULES])
def test_every_alert_query_expands_strictly_and_uses_no_dashboard_variable(rule):
    """Alerting has no dashboard variables: rule SQL may only use the plugin's macros."""
    for _, sql in (("A", rule.sql), *rule.extras):
        assert "${" not in sql and "[[" not in sql
        assert "$__" not in expand_macros(sql, RANGE, rule.interval_ms)


def test_variable_queries_expand():
    """The variables' option queries are valid under strict expansion too."""
    for name in ("tenant", "service", "feature", "model"):
        assert "toDateTime(" in expand_macros(variable_query(name), RANGE)
