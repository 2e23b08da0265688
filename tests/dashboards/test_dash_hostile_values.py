"""Hostile variable values cannot change the SQL a dashboard sends to ClickHouse.

Tenant, service, feature and model values come from the events (a tenant names itself), and a
dashboard URL can set any value (`&var-tenant=...`). Panels render them through Grafana's
`:percentencode` and decode them in SQL (spec.grafana_text / grafana_values). Each test renders
the panel the way Grafana would (macros.py, faithful to @grafana/scenes' formatters) and runs it
against the embedded ClickHouse holding rows whose tenants carry the hostile names.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokentrail.dashboards.catalog import dashboard
from tokentrail.dashboards.macros import ALL, TimeRange, VariableValue, interpolate_variables
from tokentrail.dashboards.queries import Selection, panel_sql, run_panel
from tokentrail.dashboards.spec import grafana_text, grafana_values
from tokentrail.sinks import close_embedded
from tokentrail.stream.runtime import open_store

HOSTILE = [
    "\\' OR 1=1) --",
    "'",
    "\\",
    "%",
    "%27",
    "line\nbreak",
    "x&var-tenant=other",
    "$__fromTime (1)",
    "{braced}",
    "__all__ x",
    "ünïcødé ✓",
]
BENIGN = "acme"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RANGE = TimeRange(START, START + timedelta(hours=6))
SPEND = dashboard("tokentrail-spend")
SPEND_IN_RANGE = next(p for p in SPEND.panels if p.title == "Spend in range")
BURN_RATE = next(p for p in SPEND.panels if p.title == "Burn rate against hourly budget")


def _cost(index: int) -> Decimal:
    return Decimal(index + 1) / 100


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """calls rows: one tenant per hostile value and the benign one, each with its own cost."""
    close_embedded()
    client, _sink = open_store(f"chdb://{tmp_path_factory.mktemp('hostile')}")
    tenants = [BENIGN, *HOSTILE]
    rows = [
        [uuid.uuid4(), START + timedelta(minutes=10 + i), tenant, "svc", "feat", "openai", "gpt-4o", _cost(i)]
        for i, tenant in enumerate(tenants)
    ]
    columns = ["event_id", "ts", "tenant", "service", "feature", "provider", "model", "cost_usd"]
    client.insert("tokentrail.calls", rows, column_names=columns)
    yield client
    close_embedded()


def _spend(client, tenants: tuple[str, ...]) -> tuple[Decimal, int]:
    result = run_panel(client, SPEND, SPEND_IN_RANGE, Selection(RANGE, {"tenant": tenants}))
    ((cost, calls),) = result.rows
    return Decimal(cost), calls


def _ast_shape(client, sql: str) -> str:
    """EXPLAIN AST with every literal blanked: the query's structure, whatever the values."""
    text = "\n".join(row[0] for row in client.query(f"EXPLAIN AST {sql}").result_rows)
    return re.sub(r"Literal .*", "Literal", text)


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_a_hostile_value_filters_exactly_by_itself(client, value):
    """Selecting the hostile tenant returns its one row and cost: no other tenant, no error."""
    assert _spend(client, (value,)) == (_cost(1 + HOSTILE.index(value)), 1)


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_a_hostile_value_leaves_the_query_structure_unchanged(client, value):
    """Same AST as with a plain tenant name: the value stayed inside its string literal."""
    benign = panel_sql(SPEND, SPEND_IN_RANGE, Selection(RANGE, {"tenant": (BENIGN,)}))
    hostile = panel_sql(SPEND, SPEND_IN_RANGE, Selection(RANGE, {"tenant": (value,)}))
    assert _ast_shape(client, hostile) == _ast_shape(client, benign)


def test_several_hostile_values_select_exactly_those_tenants(client):
    """A multi-value selection of hostile names sums exactly their rows."""
    chosen = (HOSTILE[0], HOSTILE[5], HOSTILE[6])
    expected = sum((_cost(1 + HOSTILE.index(v)) for v in chosen), Decimal(0))
    assert _spend(client, chosen) == (expected, 3)


def test_all_still_means_every_tenant_and_a_missing_tenant_means_none(client):
    """The All sentinel keeps its meaning; an unknown value matches nothing rather than everything."""
    everyone = sum((_cost(i) for i in range(len(HOSTILE) + 1)), Decimal(0))
    assert _spend(client, ()) == (everyone, len(HOSTILE) + 1)
    assert _spend(client, ("other",)) == (Decimal(0), 0)


def test_a_comma_splits_a_value_into_parts_and_never_escapes(client):
    """Grafana percent-encodes a multi-value as `{a,b}`: a value with a comma matches its parts (documented)."""
    assert _spend(client, (f"{BENIGN},{HOSTILE[1]}",)) == (_cost(0) + _cost(2), 2)


@pytest.mark.parametrize("value", [*HOSTILE, "2.5"], ids=repr)
def test_the_budget_textbox_round_trips_any_text(client, value):
    """A free-text variable decodes to exactly what was typed; the burn-rate panel keeps its structure."""
    variables = {"hourly_budget_usd": VariableValue([value])}
    sql = interpolate_variables(f"SELECT {grafana_text('hourly_budget_usd')}", variables)
    assert client.query(sql).result_rows == [(value,)]
    typed = panel_sql(SPEND, BURN_RATE, Selection(RANGE, textboxes={"hourly_budget_usd": value}))
    plain = panel_sql(SPEND, BURN_RATE, Selection(RANGE, textboxes={"hourly_budget_usd": "5"}))
    assert _ast_shape(client, typed) == _ast_shape(client, plain)


def test_selected_values_decode_to_the_exact_array(client):
    """grafana_values gives back the selection as an array, one value or several."""
    for selected in ((HOSTILE[0],), tuple(HOSTILE)):
        variables = {"tenant": VariableValue(list(selected), multi=True)}
        sql = interpolate_variables(f"SELECT {grafana_values('tenant')}", variables)
        assert client.query(sql).result_rows == [(list(selected),)]


def test_the_old_quoting_lets_a_value_out_of_its_literal(client):
    """Why not :singlequote: ClickHouse reads `\\'` as an escaped quote, so the value ends the IN list."""
    variables = {"tenant": VariableValue([HOSTILE[0]], multi=True)}
    sql = interpolate_variables(
        "SELECT count() FROM tokentrail.calls WHERE tenant IN (${tenant:singlequote})", variables
    )
    assert sql.endswith("IN ('\\\\' OR 1=1) --')")
    ast = "\n".join(row[0] for row in client.query(f"EXPLAIN AST {sql}").result_rows)
    assert "Function or" in ast  # the value's OR became part of the query


def test_grafana_formatters_match_scenes_test_vectors():
    """Expected strings from @grafana/scenes' formatRegistry tests and CustomAllValue tests."""
    pair = {"v": VariableValue(["foo()bar BAZ", "test2"], multi=True)}
    assert interpolate_variables("${v:percentencode}", pair) == "%7Bfoo%28%29bar%20BAZ%2Ctest2%7D"
    assert interpolate_variables("${v:singlequote}", {"v": VariableValue(["test", "test'2"])}) == "'test','test\\'2'"
    assert interpolate_variables("${v:json}", {"v": VariableValue(["test", "x"])}) == '["test","x"]'
    assert interpolate_variables("${v:json}", {"v": VariableValue(["test"])}) == "test"
    custom_all = {"v": VariableValue([ALL], ["a"], all_value=".*")}
    assert interpolate_variables("${v:percentencode}|${v:regex}|${v:text}", custom_all) == ".%2A|.*|All"
