"""Grafana's variable formats (`${var:format}`), as @grafana/scenes' formatRegistry prints them.

A value is a string, or a list for a multi-value variable (Grafana passes an array even with one
value selected). Only the formats the expander needs to reproduce are here; `macros` refuses others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

__all__ = ["Value", "FORMATS", "encode_uri_component_strict", "percentencode", "plugin_default"]

Value = str | list[str]


def _each(mark: str, escape: Callable[[str], str]) -> Callable[[Value], str]:
    def fmt(value: Value) -> str:
        values = value if isinstance(value, list) else [value]
        return ",".join(mark + escape(v) + mark for v in values)

    return fmt


def _joined(separator: str) -> Callable[[Value], str]:
    return lambda value: separator.join(value) if isinstance(value, list) else value


def encode_uri_component_strict(text: str) -> str:
    """Grafana's encodeURIComponentStrict: encodeURIComponent (UTF-8) that also encodes !'()*.

    Leaves exactly A-Z a-z 0-9 - _ . ~ unencoded, which is `quote(..., safe="")`.
    """
    return quote(text, safe="")


def percentencode(value: Value) -> str:
    # Grafana: "like glob, but url escaped": an array becomes the encoding of "{v1,v2}".
    return encode_uri_component_strict("{" + ",".join(value) + "}" if isinstance(value, list) else value)


def _json(value: Value) -> str:
    # scenes' formatter returns a plain string as is, and JSON.stringify's an array.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _glob(value: Value) -> str:
    return "{" + ",".join(value) + "}" if isinstance(value, list) and len(value) > 1 else _joined(",")(value)


def plugin_default(value: Value) -> str:
    # No format named: the ClickHouse plugin's own formatter (CHDatasource.format) quotes an array
    # as '${value.join("','")}' without escaping, and passes a string through.
    return "'" + "','".join(value) + "'" if isinstance(value, list) else value


# @grafana/scenes formatRegistry (the dashboards of Grafana 11 interpolate through it).
FORMATS: dict[str, Callable[[Value], str]] = {
    "singlequote": _each("'", lambda v: v.replace("'", "\\'")),
    "doublequote": _each('"', lambda v: v.replace('"', '\\"')),
    # Later scenes releases also turn " into \" here; tokentrail's panels no longer use sqlstring.
    "sqlstring": _each("'", lambda v: v.replace("'", "''")),
    "csv": _joined(","),
    "raw": _joined(","),
    "text": _joined(" + "),
    "pipe": _joined("|"),
    "glob": _glob,
    "json": _json,
    "percentencode": percentencode,
}
