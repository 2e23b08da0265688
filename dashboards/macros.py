"""Turn a provisioned query into the SQL ClickHouse receives, the way Grafana and the plugin do.

Two passes, in Grafana's order:

1. Template variables (Grafana's frontend ``templateSrv.replace``): ``$var``, ``${var}``,
   ``${var:format}`` and ``[[var]]``, plus the built-ins ``$__from``, ``$__to``, ``$__interval``,
   ``$__interval_ms``, ``$__range_s``... Formats are @grafana/scenes' formatRegistry (a
   multi-value variable is an array, which `json`, `percentencode` and `glob` print differently);
   no format means the ClickHouse plugin's own (`'a','b'`, unescaped). An "All" selection becomes
   the variable's custom ``allValue`` verbatim (scenes' CustomAllValue: "All" for `text`,
   encoded for `percentencode`), else every option, formatted. Alert rules skip this pass:
   Grafana has no dashboard variables there.
2. The ClickHouse plugin's macros (grafana/clickhouse-datasource ``pkg/macros``, matched by the
   plugin SDK's ``sqlutil.Interpolate``): ``$__timeFilter(c)`` -> ``c >= toDateTime(FROM) AND
   c <= toDateTime(TO)``, ``$__fromTime`` -> ``toDateTime(FROM)``, ``$__timeInterval(c)`` ->
   ``toStartOfInterval(toDateTime(c), INTERVAL N second)``, ``$__interval_s`` -> ``N``, the
   ``_ms`` variants, ``$__dateFilter``, ``$__dt`` and sqlds' defaults (``$__timeFrom``...).

Why reproduce the matcher's quirks instead of a clean regex: the SDK looks for the macro's
argument list by scanning forward for the next '(' even when the macro takes none, so
``ts >= $__fromTime AND x IN (1, 2)`` silently loses ``AND x IN (1, 2)`` in Grafana. The
expander does the same, and in ``strict`` mode (used by the build and the tests) refuses a query
where that happens, rather than testing SQL that Grafana would never run. The SDK also applies
macros in Go map order (random); ``order`` lets tests prove a query does not depend on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .variable_formats import FORMATS, encode_uri_component_strict, percentencode, plugin_default

__all__ = [
    "TimeRange",
    "VariableValue",
    "ALL",
    "MacroError",
    "expand_macros",
    "interpolate_variables",
    "round_interval_ms",
    "panel_interval_ms",
    "render",
    "MACRO_NAMES",
    "encode_uri_component_strict",
]

ALL = "$__all"  # Grafana's internal value for an "All" selection


class MacroError(ValueError):
    """A query that Grafana would expand differently from what its author meant."""


@dataclass(frozen=True)
class TimeRange:
    """An absolute time range, both ends aware UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange needs timezone-aware datetimes")

    @property
    def from_ms(self) -> int:
        return math.floor(self.start.timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        return math.floor(self.end.timestamp() * 1000)


@dataclass(frozen=True)
class VariableValue:
    """A dashboard variable as selected: `selected` is a list of values, or [ALL].

    `multi`: a multi-value variable's value is an array in Grafana even with one value selected,
    which changes what `json`, `percentencode` and `glob` print.
    """

    selected: Sequence[str]
    options: Sequence[str] = ()
    all_value: str | None = None
    multi: bool = False

    def value(self) -> tuple[str | list[str], bool]:
        """(the value to format: a string or an array, is a custom all value)."""
        if list(self.selected) == [ALL]:
            if self.all_value is not None:
                return self.all_value, True
            return list(self.options), False
        if self.multi or len(self.selected) != 1:
            return list(self.selected), False
        return self.selected[0], False


# -- pass 1: template variables ---------------------------------------------------------------

# Grafana's variableRegex (public/app/features/variables/utils.ts).
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?}")


def _builtins(time_range: TimeRange | None, interval_ms: int | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if time_range is not None:
        span = time_range.to_ms - time_range.from_ms
        out.update(
            {
                "__from": str(time_range.from_ms),
                "__to": str(time_range.to_ms),
                "__range_ms": str(span),
                "__range_s": str(span // 1000),
                "__range": f"{span // 1000}s",
            }
        )
    if interval_ms is not None:
        out.update({"__interval_ms": str(interval_ms), "__interval": _interval_text(interval_ms)})
    return out


def _interval_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def interpolate_variables(
    sql: str,
    variables: Mapping[str, VariableValue],
    *,
    time_range: TimeRange | None = None,
    interval_ms: int | None = None,
) -> str:
    """Grafana's templateSrv.replace: unknown names (and the plugin's own macros) are left alone."""
    builtins = _builtins(time_range, interval_ms)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in builtins:
            return builtins[name]
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        value, custom_all = variable.value()
        if custom_all:
            # scenes' CustomAllValue: "All" for text, encoded for percentencode, verbatim otherwise.
            if fmt == "text":
                return "All"
            if fmt == "percentencode":
                return percentencode(value)
            return interpolate_variables(str(value), variables, time_range=time_range, interval_ms=interval_ms)
        if fmt is None:
            return plugin_default(value)
        if fmt not in FORMATS:
            raise MacroError(f"variable format {fmt!r} is not supported by this expander (known: {sorted(FORMATS)})")
        return FORMATS[fmt](value)

    return _VARIABLE.sub(replace, sql)


# -- pass 2: the ClickHouse plugin's macros ----------------------------------------------------


def _dt(ts: datetime) -> str:
    return f"toDateTime({math.floor(ts.timestamp())})"


def _dt64(ts: datetime) -> str:
    return f"fromUnixTimestamp64Milli({math.floor(ts.timestamp() * 1000)})"


def _date(ts: datetime) -> str:
    return f"toDate('{ts.astimezone(UTC):%Y-%m-%d}')"


@dataclass(frozen=True)
class _Query:
    time_range: TimeRange
    interval_ms: int


def _one(args: list[str], name: str) -> str:
    if len(args) != 1:
        raise MacroError(f"$__{name}: unexpected number of arguments: expected 1 argument, received {len(args)}")
    return args[0]


def _range_filter(fmt: Callable[[datetime], str]) -> Callable[[_Query, list[str]], str]:
    def macro(q: _Query, args: list[str]) -> str:
        column = _one(args, "timeFilter")
        return f"{column} >= {fmt(q.time_range.start)} AND {column} <= {fmt(q.time_range.end)}"

    return macro


def _date_time_filter(q: _Query, args: list[str]) -> str:
    if len(args) != 2:
        raise MacroError(f"$__dateTimeFilter: expected 2 arguments, received {len(args)}")
    date, time_ = args
    r = q.time_range
    return (
        f"({date} >= {_date(r.start)} AND {date} <= {_date(r.end)}) AND "
        f"({time_} >= {_dt(r.start)} AND {time_} <= {_dt(r.end)})"
    )


def _seconds(q: _Query) -> int:
    return int(max(q.interval_ms / 1000, 1))


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The plugin's Macros map, plus sqlds' DefaultMacros for names the plugin does not define.
_MACROS: dict[str, Callable[[_Query, list[str]], str]] = {
    "fromTime": lambda q, a: _dt(q.time_range.start),
    "toTime": lambda q, a: _dt(q.time_range.end),
    "fromTime_ms": lambda q, a: _dt64(q.time_range.start),
    "toTime_ms": lambda q, a: _dt64(q.time_range.end),
    "timeFilter": _range_filter(_dt),
    "timeFilter_ms": _range_filter(_dt64),
    "dateFilter": _range_filter(_date),
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": lambda q, a: (
        f"toStartOfInterval(toDateTime({_one(a, 'timeInterval')}), INTERVAL {_seconds(q)} second)"
    ),
    "timeInterval_ms": lambda q, a: (
        f"toStartOfInterval(toDateTime64({_one(a, 'timeInterval_ms')}, 3), "
        f"INTERVAL {int(max(q.interval_ms, 1))} millisecond)"
    ),
    "interval_s": lambda q, a: str(_seconds(q)),
    "timeFrom": lambda q, a: f"{_one(a, 'timeFrom')} >= '{_iso(q.time_range.start)}'",
    "timeTo": lambda q, a: f"{_one(a, 'timeTo')} <= '{_iso(q.time_range.end)}'",
    "table": lambda q, a: "",
    "column": lambda q, a: "",
}
MACRO_NAMES = tuple(_MACROS)
_NO_ARGS = {"fromTime", "toTime", "fromTime_ms", "toTime_ms", "interval_s", "table", "column"}


def _matches(sql: str, name: str) -> list[tuple[str, str | None]]:
    """sqlutil.getMacroMatches: (matched text, raw argument string or None) for each occurrence."""
    found: list[tuple[str, str | None]] = []
    for m in re.finditer(r"\$__" + re.escape(name) + r"\b", sql):
        rest, depth, arg_start, end = sql[m.start() :], 0, 0, 0
        for idx, ch in enumerate(rest):
            if depth == 0 and end > 0:
                break
            if ch == "(":
                depth += 1
                arg_start = arg_start or idx + 1
            elif ch == ")":
                if depth == 0:
                    end = 0
                    break
                depth -= 1
                end = idx + 1
        if end == 0:
            found.append((rest[: m.end() - m.start()], None))
        else:
            found.append((rest[:end], rest[arg_start : end - 1] if arg_start else None))
    return found


def expand_macros(
    sql: str, time_range: TimeRange, interval_ms: int = 1000, *, strict: bool = True, order: Iterable[str] | None = None
) -> str:
    """sqlutil.Interpolate with the plugin's macros. `strict` refuses SQL that a no-argument macro swallows."""
    query = _Query(time_range, interval_ms)
    for name in order or MACRO_NAMES:
        for text, raw_args in _matches(sql, name):
            if strict and name in _NO_ARGS and raw_args is not None:
                raise MacroError(
                    f"$__{name} takes no arguments, but Grafana's macro matcher would treat {text!r} as its "
                    f"call and replace all of it; put a ')' before the next '(' (e.g. wrap it: ($__{name}))"
                )
            args = [a.strip() for a in raw_args.split(",")] if raw_args is not None else []
            sql = sql.replace(text, _MACROS[name](query, args))
    if strict and "$__" in sql:
        left = re.findall(r"\$__\w+", sql)
        raise MacroError(f"unexpanded macro(s) {sorted(set(left))}: not a ClickHouse plugin macro")
    return sql


# -- intervals ----------------------------------------------------------------------------------

_ROUND = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (450000, 300000),
    (900000, 600000),
    (1200000, 900000),
    (1800000, 1200000),
    (3600000, 1800000),
    (7200000, 3600000),
    (21600000, 10800000),
    (86400000, 43200000),
    (604800000, 86400000),
    (2592000000, 604800000),
    (31536000000, 2592000000),
)


def round_interval_ms(interval: float) -> int:
    """Grafana's rangeutil.roundInterval: snap a raw interval to a 'nice' one."""
    for bound, nice in _ROUND:
        if interval < bound:
            return nice
    return 31536000000


def panel_interval_ms(time_range: TimeRange, max_data_points: int, min_interval_ms: int = 1) -> int:
    """Grafana's calculateInterval for a panel: range / maxDataPoints, rounded, floored at the panel's min interval."""
    raw = (time_range.to_ms - time_range.from_ms) / max(max_data_points, 1)
    return max(round_interval_ms(raw), min_interval_ms)


def render(
    sql: str,
    time_range: TimeRange,
    interval_ms: int,
    variables: Mapping[str, VariableValue] | None = None,
    *,
    strict: bool = True,
) -> str:
    """Both passes: what ClickHouse would receive from Grafana for this query."""
    if variables is not None:
        sql = interpolate_variables(sql, variables, time_range=time_range, interval_ms=interval_ms)
    return expand_macros(sql, time_range, interval_ms, strict=strict)
