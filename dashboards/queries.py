"""Run a dashboard panel's query the way Grafana would: variables, then plugin macros, then ClickHouse.

Used by the tests (every panel against seeded data) and by benchmarks/dashboards.py (every panel
against 10M calls), so both exercise exactly the SQL that Grafana would send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .build import MAX_DATA_POINTS, MIN_INTERVAL_MS, variable_query
from .macros import ALL, TimeRange, VariableValue, panel_interval_ms, render
from .spec import ALL_SENTINEL, Dashboard, Panel

__all__ = ["Selection", "panel_sql", "variable_options", "run_panel", "PanelResult", "last"]


@dataclass(frozen=True)
class Selection:
    """What the user picked: a time range and, per variable, values (absent = All)."""

    time_range: TimeRange
    values: Mapping[str, tuple[str, ...]] | None = None
    textboxes: Mapping[str, str] | None = None

    def variables(
        self, dashboard: Dashboard, options: Mapping[str, list[str]] | None = None
    ) -> dict[str, VariableValue]:
        out: dict[str, VariableValue] = {}
        chosen = self.values or {}
        for name in dashboard.variables:
            opts = (options or {}).get(name, [])
            selected = list(chosen.get(name, ())) or [ALL]
            out[name] = VariableValue(selected, opts, all_value=ALL_SENTINEL, multi=True)
        for name, _label, default in dashboard.textboxes:
            out[name] = VariableValue([(self.textboxes or {}).get(name, default)])
        return out


def last(duration: timedelta, now: datetime | None = None) -> TimeRange:
    """Grafana's `now-<duration>` to `now`."""
    now = now or datetime.now(UTC)
    return TimeRange(now - duration, now)


def panel_interval(panel: Panel, time_range: TimeRange) -> int:
    if panel.shape == "timeseries":
        return panel_interval_ms(time_range, MAX_DATA_POINTS, MIN_INTERVAL_MS)
    return panel_interval_ms(time_range, MAX_DATA_POINTS)


def panel_sql(
    dashboard: Dashboard, panel: Panel, selection: Selection, options: Mapping[str, list[str]] | None = None
) -> str:
    """The SQL ClickHouse receives for this panel under this selection."""
    interval = panel_interval(panel, selection.time_range)
    return render(panel.sql, selection.time_range, interval, selection.variables(dashboard, options))


def variable_options(client: Any, name: str, time_range: TimeRange) -> list[str]:
    """What the variable's dropdown would offer (the variable query, expanded and run)."""
    sql = render(variable_query(name), time_range, panel_interval_ms(time_range, MAX_DATA_POINTS))
    return [row[0] for row in client.query(sql).result_rows]


@dataclass
class PanelResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    sql: str


def run_panel(
    client: Any,
    dashboard: Dashboard,
    panel: Panel,
    selection: Selection,
    options: Mapping[str, list[str]] | None = None,
) -> PanelResult:
    sql = panel_sql(dashboard, panel, selection, options)
    result = client.query(sql)
    types = [t.name for t in result.column_types]
    return PanelResult(list(result.column_names), types, list(result.result_rows), sql)
