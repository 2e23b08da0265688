"""Dashboard specs -> Grafana dashboard JSON, through grafana-foundation-sdk.

Why the SDK: it is generated from Grafana's own schema for the pinned version (see `sdk_check`),
so a field Grafana 11.6 does not know cannot sneak in. It has no ClickHouse query type, so the
panel targets are the plugin's own JSON (`clickhouse_target`), wrapped as the SDK's
`UnknownDataquery`. Output is deterministic (sorted keys, fixed ids and grid positions), which is
what lets a test compare the committed files with a fresh build byte for byte.

With an owners file in effect (`owners.current_owners()`, read at build time), every table that
shows a feature gets an `owner` column beside it (`owner_columns`), and the Spend dashboard ends
with a panel listing who owns what and how they are paged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, table, text, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import text as tm

from .dash_trace import trace_link
from .owner_columns import owners_markdown, with_owner_column
from .owners import Owners, current_owners
from .spec import (
    ALL_SENTINEL,
    CALLS_TIME_FILTER,
    DATABASE,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FILTER_VARIABLES,
    GRAFANA_VERSION,
    Annotation,
    Dashboard,
    Panel,
)

__all__ = [
    "SDK_VERSION",
    "sdk_check",
    "build_dashboard",
    "clickhouse_target",
    "variable_query",
    "to_json",
    "DATASOURCE",
    "MAX_DATA_POINTS",
    "MIN_INTERVAL",
]

SDK_VERSION = f"1769699379!{GRAFANA_VERSION}.0"  # grafana-foundation-sdk build for the Grafana schema we target
DATASOURCE = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
MAX_DATA_POINTS = 300  # fixed rather than panel-width dependent, so the query interval is predictable
MIN_INTERVAL = "1m"  # data is per call; buckets under a minute are noise on these panels
MIN_INTERVAL_MS = 60_000
OWNERS_PANEL_DASHBOARD = "tokentrail-spend"  # the dashboard that lists the owners file (with an owners file)


def sdk_check() -> None:
    """Refuse to generate with an SDK built for another Grafana schema: the files would silently change."""
    installed = version("grafana-foundation-sdk")
    if installed != SDK_VERSION:
        raise RuntimeError(
            f"grafana-foundation-sdk {installed} is installed, but the dashboards target Grafana "
            f"{GRAFANA_VERSION}: pip install 'grafana-foundation-sdk=={SDK_VERSION}'"
        )


class _Query(cogbuilder.Builder[UnknownDataquery]):
    """A ClickHouse plugin target, which the SDK has no type for."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def build(self) -> UnknownDataquery:
        return UnknownDataquery(self._data)


def clickhouse_target(sql: str, *, table_format: bool, ref_id: str = "A") -> dict[str, Any]:
    """The plugin's query model (v4): raw SQL editor, time series (format 0) or table (format 1)."""
    return {
        "refId": ref_id,
        "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
        "editorType": "sql",
        "queryType": "table" if table_format else "timeseries",
        "format": 1 if table_format else 0,
        "pluginVersion": "4.x",
        "rawSql": sql,
    }


def variable_query(name: str) -> str:
    """Options for a filter variable: the values seen in calls during the dashboard's range."""
    return f"SELECT DISTINCT {name} FROM {DATABASE}.calls WHERE {CALLS_TIME_FILTER} AND {name} != '' ORDER BY {name}"


def _filter_variable(name: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(name.capitalize())
        .datasource(DATASOURCE)
        .query(variable_query(name))
        .multi(True)
        .include_all(True)
        .all_value(ALL_SENTINEL)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def _textbox(name: str, label: str, default: str) -> db.TextBoxVariable:
    return (
        db.TextBoxVariable(name)
        .label(label)
        .default_value(default)
        .current(dm.VariableOption(selected=True, text=default, value=default))
    )


_TRACE_COLUMN = re.compile(r"\btrace_id\b")


def stat_panel(*, fields: str) -> stat.Panel:
    """A single-value stat: no sparkline, the last non-null value of the `fields` it shows."""
    return (
        stat.Panel()
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(cb.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields(fields))
    )


def timeseries_panel(*, stack: bool, legend_calcs: list[str]) -> timeseries.Panel:
    """A time series with its legend as a table below it; stacked series fill more."""
    builder = (
        timeseries.Panel()
        .line_width(1)
        .fill_opacity(25 if stack else 10)
        .legend(
            cb.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(legend_calcs)
        )
    )
    if stack:
        builder = builder.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
    return builder


def _panel(spec: Panel, panel_id: int, x: int, y: int, owners: Owners | None = None) -> cogbuilder.Builder[Any]:
    sql = spec.sql
    if owners is not None and spec.kind == "table":
        sql = with_owner_column(sql, owners) or sql  # the owner beside the feature (tables without one: as is)
    target = _Query(clickhouse_target(sql, table_format=spec.shape != "timeseries"))
    # One name for three SDK builder classes that share the panel-level methods used below.
    builder: Any
    if spec.kind == "stat":
        builder = stat_panel(fields="/.*/")
    elif spec.kind == "table":
        builder = table.Panel().filterable(True)
    else:
        builder = timeseries_panel(stack=spec.stack, legend_calcs=["sum", "max"])
        if spec.stack:
            builder = builder.draw_style(common.GraphDrawStyle.BARS)
        builder = builder.interval(MIN_INTERVAL).max_data_points(MAX_DATA_POINTS)
    builder = (
        builder.id(panel_id)
        .title(spec.title)
        .datasource(DATASOURCE)
        .with_target(target)
        .grid_pos(dm.GridPos(h=spec.height, w=spec.width, x=x, y=y))
    )
    if spec.description:
        builder = builder.description(spec.description)
    if spec.unit:
        builder = builder.unit(spec.unit)
    if spec.decimals is not None:
        builder = builder.decimals(spec.decimals)
    if spec.kind == "table" and _TRACE_COLUMN.search(spec.sql.split("FROM", 1)[0]):
        # Every row naming a trace opens it in the Trace dashboard (dash_trace.py).
        link = {"title": "Open trace", "url": trace_link("__value.raw")}
        builder = builder.override_by_name("trace_id", [dm.DynamicConfigValue(id_val="links", value=[link])])
    panel: cogbuilder.Builder[Any] = builder
    return panel


def _owners_panel(owners: Owners, panel_id: int, y: int) -> text.Panel:
    return (
        text.Panel()
        .id(panel_id)
        .title("Owners")
        .description("Who owns each feature or service, and who is paged for it: the owners file at build time.")
        .mode(tm.TextMode.MARKDOWN)
        .content(owners_markdown(owners))
        .grid_pos(dm.GridPos(h=min(4 + len(owners.owners), 16), w=24, x=0, y=y))
    )


def _annotation(spec: Annotation) -> db.AnnotationQuery:
    # The SDK types an annotation's target as AnnotationTarget; Grafana takes the datasource's own query model.
    target: Any = _Query(clickhouse_target(spec.sql, table_format=True, ref_id="Anno"))
    return (
        db.AnnotationQuery().name(spec.name).datasource(DATASOURCE).enable(True).icon_color(spec.color).target(target)
    )


def layout(panels: tuple[Panel, ...]) -> list[tuple[Panel, int, int]]:
    """Left to right in rows of 24 columns; a panel that does not fit starts a new row."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel in panels:
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append((panel, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def build_dashboard(
    spec: Dashboard, annotations: tuple[Annotation, ...] = (), links: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """The dashboard JSON Grafana provisions from a file (dashboard model, not the HTTP envelope)."""
    builder = (
        db.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .time(spec.time_from, "now")
        .refresh("1m")
        .timezone("utc")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )
    for name in spec.variables:
        if name not in FILTER_VARIABLES:
            raise ValueError(f"{spec.uid}: unknown variable {name}")
        builder = builder.with_variable(_filter_variable(name))
    for name, label, default in spec.textboxes:
        builder = builder.with_variable(_textbox(name, label, default))
    for annotation in (*spec.annotations, *annotations):
        builder = builder.annotation(_annotation(annotation))
    for title, uid in links:
        builder = builder.link(
            db.DashboardLink(title).type(dm.DashboardLinkType.LINK).url(f"/d/{uid}").include_vars(True).keep_time(True)
        )
    owners = current_owners()
    placed = layout(spec.panels)
    for panel_id, (panel, x, y) in enumerate(placed, start=1):
        builder = builder.with_panel(_panel(panel, panel_id, x, y, owners))
    if owners is not None and spec.uid == OWNERS_PANEL_DASHBOARD:
        # Last, so the spec's panels keep the ids alert rules link to (catalog.all_panels).
        bottom = max((y + panel.height for panel, _, y in placed), default=0)
        builder = builder.with_panel(_owners_panel(owners, len(placed) + 1, bottom))
    document: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return document


def to_json(document: Any) -> str:
    """The committed form: stable key order and indentation, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
