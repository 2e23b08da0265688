"""What a dashboard is made of, as plain data: the SQL and the shape it must return.

The dashboard modules (`dash_*`) describe panels with these; `build` turns them into Grafana JSON
through grafana-foundation-sdk, and the tests and the benchmark run the very same SQL against
ClickHouse. Keeping the description separate from the SDK means "what Grafana shows" and "what we
test" cannot drift apart.

Names fixed here are part of the provisioning contract (uids are referenced by alert links and by
`dashboards push`): change them and every link breaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tokentrail.sinks.rollups import hours_sql

__all__ = [
    "DATASOURCE_UID",
    "DATASOURCE_TYPE",
    "DATASOURCE_NAME",
    "FOLDER_UID",
    "FOLDER_TITLE",
    "DATABASE",
    "GRAFANA_VERSION",
    "ALL_SENTINEL",
    "FILTER_VARIABLES",
    "Panel",
    "Dashboard",
    "Annotation",
    "filters",
    "var_in",
    "grafana_text",
    "grafana_values",
    "table",
    "Shape",
]

GRAFANA_VERSION = "11.6"  # what compose.yaml must run; the SDK build is pinned to the same schema
DATASOURCE_UID = "tokentrail-clickhouse"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE_NAME = "tokentrail ClickHouse"
FOLDER_UID = "tokentrail"
FOLDER_TITLE = "tokentrail"
DATABASE = "tokentrail"  # table names are qualified so the queries do not depend on the user's default db
ALL_SENTINEL = "__all__"  # the variables' custom "All" value; Grafana passes it through percentencode
FILTER_VARIABLES = ("tenant", "service", "feature", "model")

# timeseries: first column a time, then string label columns, then numbers (long format, Grafana
# turns it into one series per label set). table: any columns, at least one row expected.
# stat: exactly one row of numbers.
Shape = Literal["timeseries", "table", "stat"]


def grafana_text(variable: str) -> str:
    """SQL for a variable's value as Grafana renders it, that no value can break out of.

    Grafana's quoting formats are not safe for ClickHouse: `:singlequote` escapes `'` as `\\'`
    but leaves a backslash alone, and `:sqlstring` doubles `'` but ClickHouse also reads
    backslash escapes, so a value ending in a backslash closes the literal early. `:percentencode`
    (encodeURIComponent plus `!'()*`) leaves only `A-Z a-z 0-9 - _ . ~ %`: nothing that ends a
    string literal, starts a comment, or forms a plugin macro (`$`, `(`). ClickHouse decodes it
    back. A multi-value variable renders as the encoding of `{v1,v2}`.
    """
    return f"decodeURLComponent('${{{variable}:percentencode}}')"


def grafana_values(variable: str) -> str:
    """SQL for a multi-value variable's selection as an array of strings (see `grafana_text`).

    Grafana percent-encodes the glob form `{v1,v2}` as one string, so a value that itself contains
    a comma is split there (it then matches the parts, never anything outside the literal).
    `(?s)`: a value may hold a newline; `\\z` rather than `$` keeps the panel SQL free of `$` other than
    variables and macros (the strict expansion checks that none is left).
    """
    return f"splitByChar(',', replaceRegexpOne({grafana_text(variable)}, '(?s)^[{{](.*)[}}]\\\\z', '\\\\1'))"


def var_in(variable: str, column: str | None = None, *, blank_ok: bool = False) -> str:
    """`column IN (selected values)`, constant-true when the variable is "All".

    An "All" selection expands to the sentinel (the variable's custom all value), which makes the
    condition constant-true, so ClickHouse drops it instead of comparing every row against a list
    of every tenant, and rows whose value is not among the options (a tenant with no calls yet)
    still show. `blank_ok` keeps rows where the column is '' (prompt changes have no tenant).
    Values reach ClickHouse percent-encoded (`grafana_values`): a hostile value cannot change the query.
    """
    if variable not in FILTER_VARIABLES:
        raise ValueError(f"unknown filter variable {variable!r}; known: {FILTER_VARIABLES}")
    column = column or variable
    blank = f" OR {column} = ''" if blank_ok else ""
    return f"({grafana_text(variable)} = '{ALL_SENTINEL}' OR {column} IN {grafana_values(variable)}{blank})"


def filters(*columns: str, time: str | None = "ts", blank_ok: bool = False) -> str:
    """The WHERE conditions panels share: the time range and the dashboard variables.

    `columns` names which of tenant/service/feature/model the table has; a table without one
    (loop detections have no model) is simply not filtered by it.
    """
    parts = [f"$__timeFilter({time})"] if time else []
    parts += [var_in(column, blank_ok=blank_ok) for column in columns]
    return "\n  AND ".join(parts)


@dataclass(frozen=True)
class Panel:
    """One panel: its SQL, the shape the SQL returns, and how Grafana should draw it."""

    title: str
    sql: str
    shape: Shape
    kind: Literal["timeseries", "table", "stat", "barchart", "piechart"] = "timeseries"
    unit: str = ""
    description: str = ""
    width: int = 12
    height: int = 8
    stack: bool = False
    decimals: int | None = None
    min_rows: int = 1  # how many rows the seeded demo data must produce (tests)

    def __post_init__(self) -> None:
        if self.shape == "timeseries" and "$__timeInterval" not in self.sql and "toStartOf" not in self.sql:
            raise ValueError(f"{self.title}: a time series panel must bucket time ($__timeInterval)")


@dataclass(frozen=True)
class Annotation:
    """A query whose rows (time, text, tags) Grafana draws as markers on every time series panel."""

    name: str
    sql: str
    color: str = "purple"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = ("tokentrail",)
    time_from: str = "now-6h"
    annotations: tuple[Annotation, ...] = field(default=())
    variables: tuple[str, ...] = FILTER_VARIABLES
    textboxes: tuple[tuple[str, str, str], ...] = ()  # (name, label, default): free-text variables


def table(name: str) -> str:
    """A table name qualified with the tokentrail database."""
    return f"{DATABASE}.{name}"


# The time filter of a query over `calls`: Grafana's range, and the hours it spans, which the key of
# `calls` leads with (migration 0011; ClickHouse does not derive the hours from the ts condition).
CALLS_TIME_FILTER = f"$__timeFilter(ts) AND {hours_sql('$__fromTime', '$__toTime')}"


# Seconds since a worker last stored an event, by arrival time, never event time: a replay of last
# year's traffic is as fresh as live traffic. Read from the marks every insert into `events` leaves
# (rollup_dirty.marked_at = the store's clock at insert, 0008's marking view; first in its key, so
# an hour of it is a few granules), not from receipts.received_at, which is in no key (a scan of
# every receipt of the month). An hour with no mark reads 3600. The Pipeline dashboard's stat and
# the tt-pipeline-stalled rule read the same: SELECT <SINCE_LAST_STORED> ... <SINCE_LAST_STORED_FROM>.
STALLED_LOOKBACK_SECONDS = 3600
SINCE_LAST_STORED = f"if(count() = 0, {STALLED_LOOKBACK_SECONDS}, dateDiff('second', max(marked_at), ($__toTime)))"
SINCE_LAST_STORED_FROM = (
    f"FROM {table('rollup_dirty')}\n"
    f"WHERE rollup = 'events_rollup' AND marked_at > ($__toTime) - INTERVAL {STALLED_LOOKBACK_SECONDS} SECOND"
    " AND marked_at <= ($__toTime)"
)
