"""The owner next to the feature: an `owner` column on every dashboard table that shows features.

Done once at build time for every table panel (`build.build_dashboard`), not in each panel's SQL:
the panel's query becomes a subquery and the outer SELECT repeats its columns with
`multiIf(<ownership lines>) AS owner` right after `feature`. That is the expression the alert rules
use (`owners.owner_expression`), over whichever of tenant/service/feature the table returns, so a
tenant-specific owner (feature + tenant) shows on tables that have a tenant column and the feature's
own owner on those that do not; a feature nobody owns shows `unowned`. A table that already has
an `owner` column (the Trace dashboard's totals) gets it recomputed in place (`* REPLACE`).

Why not Grafana alone: a value mapping on `feature` cannot see the row's tenant or service, and a
second query joined with the `joinByField` transformation joins on one field and drops or adds rows
where the two sides differ (inner and outer joins only). The subquery is a projection over the
panel's result rows: it adds no scan, and the rows and their order are the panel's.

Without an owners file nothing changes: the committed dashboards have no owner column.
"""

from __future__ import annotations

import re

from .owners import OWNED_COLUMNS, Owners, owner_expression

__all__ = ["output_columns", "with_owner_column", "owners_markdown"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALIAS = re.compile(r"\s+AS\s+`?([A-Za-z_][A-Za-z0-9_]*)`?$", re.IGNORECASE)
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)$")


def _top_level(sql: str) -> list[tuple[int, str]]:
    """(position, character or upper-cased word) of everything outside brackets, strings and comments."""
    out, depth, i = [], 0, 0
    while i < len(sql):
        c = sql[i]
        if c in "'`\"":  # a string or quoted name: skip to its unescaped end
            i += 1
            while i < len(sql) and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
        elif sql.startswith("--", i):
            i = sql.find("\n", i) if "\n" in sql[i:] else len(sql)
        elif sql.startswith("/*", i):  # a block comment: its commas and words are not the query's
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (word := _WORD.match(sql, i)) and (i == 0 or not sql[i - 1].isalnum()):
            out.append((i, word.group().upper()))
            i = word.end()
            continue
        elif depth == 0:
            out.append((i, c))
        i += 1
    return out


def output_columns(sql: str) -> list[str | None] | None:
    """The names of the columns the outermost SELECT returns (None for an unnamed expression), or
    None when that cannot be read from the text (`SELECT *`, no SELECT ... FROM at the top)."""
    tokens = _top_level(sql)
    start = next((i for i, (_, t) in enumerate(tokens) if t == "SELECT"), None)
    if start is None:
        return None
    end = next((i for i, (_, t) in enumerate(tokens) if i > start and t == "FROM"), None)
    if end is None:
        return None
    cuts = [tokens[start][0] + len("SELECT") - 1, *(pos for pos, t in tokens[start:end] if t == ","), tokens[end][0]]
    items = [
        re.sub(r"--[^\n']*$|/\*.*?\*/", "", sql[a + 1 : b], flags=re.M | re.S).strip()
        for a, b in zip(cuts, cuts[1:], strict=False)
    ]
    items[0] = re.sub(r"^DISTINCT\s+", "", items[0], flags=re.IGNORECASE)
    if any(item.startswith("*") or re.match(r"^\w+\.\*", item) for item in items):
        return None
    names: list[str | None] = []
    for item in items:
        alias = _ALIAS.search(item) or _QUALIFIED.match(item)
        names.append(alias.group(1) if alias else None)
    return names


def with_owner_column(sql: str, owners: Owners) -> str | None:
    """The query with an `owner` column after `feature`, or None when it returns no `feature` column."""
    columns = output_columns(sql)
    if columns is None or "feature" not in columns:
        return None
    expression = owner_expression(owners, {c for c in columns if c in OWNED_COLUMNS})
    if "owner" in columns:
        head = f"* REPLACE ({expression} AS owner)"
    elif all(columns):
        named = [c for c in columns if c]
        at = named.index("feature") + 1
        head = ", ".join([*named[:at], f"{expression} AS owner", *named[at:]])
    else:  # an unnamed expression cannot be repeated by name: owner goes last
        head = f"*, {expression} AS owner"
    return f"SELECT {head}\nFROM (\n{sql}\n)"


def owners_markdown(owners: Owners) -> str:
    """The owners file as a table: what is owned, by which team, paged how (most specific first)."""
    lines = [
        "Who owns what (the owners file at build time; docs/owners.md). Most specific wins: "
        "feature + tenant, feature, service + tenant, service, tenant. Anything else is **unowned**.",
        "",
        "| feature | service | tenant | team | receiver | escalation |",
        "|---|---|---|---|---|---|",
    ]
    for line in owners.ordered():
        team = owners.team(line.team)
        cells = [line.feature or "", line.service or "", line.tenant or "any", team.name]
        cells += [team.receiver_summary(), team.escalation]
        lines.append("| " + " | ".join(map(_cell, cells)) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Markdown table cell text: `|` would end the cell, Grafana would read `$` as a variable, `<` start HTML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|").replace("$", "&#36;")
