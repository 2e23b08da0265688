"""`--owners FILE`: read and validated when a command starts, and what a change of the file changes in the
build (routes, contact points, the dashboards' owner columns and Owners panel). No store needed here;
tests/dashboards/test_owners_store.py runs the owner columns and `alerts check` against ClickHouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from grafana_client import GrafanaApi
from grafana_standin import GrafanaStandIn
from test_dash_push import ENV

from tokentrail.dashboards.catalog import DASHBOARDS
from tokentrail.dashboards.operations import build_provisioning
from tokentrail.dashboards.owner_columns import output_columns, with_owner_column
from tokentrail.dashboards.owners import OWNERS_ENV, UNOWNED, current_owners, load_owners, owners_in_effect
from tokentrail.dashboards.tenant_push import org_name, push_tenant
from tokentrail.stream.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "dashboards" / "owners.example.yaml"
OWNER_ENV = {"TT_PD_SUPPORT_AI": "k" * 32, "TT_SLACK_NORTHWIND": "https://hooks.example.invalid/n"}
OWNER_ENV |= {"TT_DEVTOOLS_WEBHOOK": "http://127.0.0.1:9/dev"}
# Bad on line 4 (a channel without '#'); the team it names is also unknown.
BAD = """version: 1
teams:
  - name: t
    receiver: {type: slack, webhook_env: X, channel: general}
owners:
  - {feature: x, team: ghosts}
"""


@pytest.fixture(autouse=True)
def no_owners_in_the_environment(monkeypatch):
    monkeypatch.delenv(OWNERS_ENV, raising=False)


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def tables(root: Path, uid: str) -> dict[str, dict]:
    document = json.loads((root / "dashboards" / "json" / f"{uid}.json").read_text())
    return {p["title"]: p for p in document["panels"]}


def routes(root: Path) -> dict[str, list]:
    (tree,) = yaml.safe_load((root / "alerting" / "policies.yaml").read_text())["policies"]
    (branch,) = tree["routes"]
    return {r["receiver"]: r["object_matchers"] for r in branch["routes"]}


@pytest.mark.parametrize(
    "command",
    [
        ["dashboards", "build", "--check"],
        ["dashboards", "push", "--grafana-url", "http://admin:admin@127.0.0.1:9"],
        ["alerts", "check", "--clickhouse", "chdb:///nonexistent/never-opened"],
    ],
)
def test_a_bad_owners_file_stops_the_command_naming_line_and_field(command, bad_file, capsys):
    """Exit 2 before any work (no Grafana request, no store opened), the message naming the file,
    the line and the field; a missing file says it cannot be read."""
    assert main([*command, "--owners", str(bad_file)]) == 2
    err = capsys.readouterr().err
    assert f"owners file {bad_file}: line 4, teams.0.receiver.slack.channel" in err, err
    assert not Path("/nonexistent/never-opened").exists()
    assert main([*command, "--owners", str(bad_file.parent / "none.yaml")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_an_unknown_team_is_named_with_its_line(tmp_path):
    """Checks across entries (a team not in `teams`, a subject owned twice) name the entry and its line too."""
    path = tmp_path / "o.yaml"
    path.write_text(BAD.replace("channel: general", 'channel: "#general"'))
    with pytest.raises(ValueError, match=r"line 6, owners\.0\.team: names team 'ghosts', which is not in teams"):
        load_owners(path)
    path.write_text(
        BAD.replace("channel: general", 'channel: "#general"').replace("ghosts", "t") * 1
        + "  - {feature: x, team: t}\n"
    )
    with pytest.raises(ValueError, match=r"line 7, owners\.1: the same feature/service/tenant is owned twice"):
        load_owners(path)


def test_the_flag_takes_precedence_over_the_environment(bad_file, monkeypatch, capsys):
    """TOKENTRAIL_OWNERS_FILE names a bad file: without the flag that is an error, with it the flag's file is used."""
    monkeypatch.setenv(OWNERS_ENV, str(bad_file))
    assert main(["dashboards", "build", "--check"]) == 2
    assert str(bad_file) in capsys.readouterr().err
    # With the example's owners the committed files (built without owners) are out of date: exit 1, not 2.
    assert main(["dashboards", "build", "--check", "--owners", str(EXAMPLE)]) == 1
    assert "out of date" in capsys.readouterr().out


def test_the_flag_wins_in_a_fresh_process_too(bad_file):
    """In a new process modules that label rules when imported are imported under the flag's owners."""
    env = {**os.environ, OWNERS_ENV: str(bad_file)}
    command = ["dashboards", "build", "--check", "--owners", str(EXAMPLE)]
    done = subprocess.run(
        [sys.executable, "-m", "tokentrail.stream.cli", *command],
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr.decode()
    assert b"alerting/policies.yaml" in done.stdout


def test_changing_the_owners_file_changes_routes_contact_points_and_owner_columns(tmp_path, capsys):
    """Build with the example, change the file (order-support to devtools, finance-ops gone), build again:
    policies, contact points and the dashboards' owner columns and Owners panel follow the file."""
    owners_file, root = tmp_path / "owners.yaml", tmp_path / "provisioning"
    owners_file.write_text(EXAMPLE.read_text())
    assert build_provisioning(check_only=False, owners_file=owners_file, root=root) == 0
    before_routes, before = routes(root), tables(root, "tokentrail-spend")
    assert before_routes["tokentrail-owner-finance-ops"] == [["owner", "=", "finance-ops"], ["severity", "!=", "page"]]
    top = before["Top traces by cost"]["targets"][0]["rawSql"]
    assert "feature = 'order-support', 'support-ai'" in top and "'refund-drafts', 'finance-ops'" in top
    assert "| refund-drafts |  | any | finance-ops |" in before["Owners"]["options"]["content"]

    doc = yaml.safe_load(owners_file.read_text())
    doc["teams"] = [t for t in doc["teams"] if t["name"] != "finance-ops"]
    doc["owners"] = [o for o in doc["owners"] if o["team"] != "finance-ops"]
    doc["owners"][0]["team"] = "devtools"  # order-support, every tenant but northwind
    owners_file.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    assert build_provisioning(check_only=False, owners_file=owners_file, root=root) == 0
    changed = capsys.readouterr().out
    for rel in ("alerting/policies.yaml", "alerting/contact-points.yaml", "alerting/rules.yaml"):
        assert rel in changed
    assert "dashboards/json/tokentrail-spend.json" in changed and "dashboards/json/tokentrail-loops.json" in changed
    after_routes, after = routes(root), tables(root, "tokentrail-spend")
    assert "tokentrail-owner-finance-ops" not in after_routes and "tokentrail-owner-devtools" in after_routes
    points = yaml.safe_load((root / "alerting" / "contact-points.yaml").read_text())["contactPoints"]
    assert "tokentrail-owner-finance-ops" not in {p["name"] for p in points}
    top = after["Top traces by cost"]["targets"][0]["rawSql"]
    assert "feature = 'order-support', 'devtools'" in top and "finance-ops" not in top
    assert "refund-drafts" not in after["Owners"]["options"]["content"]
    assert build_provisioning(check_only=True, owners_file=owners_file, root=root) == 0  # now up to date


def test_without_an_owners_file_nothing_is_owned(tmp_path):
    """No file: panels keep their SQL (no owner column, no Owners panel), no owner routes or contact points,
    every rule labelled owner=unowned and no unowned-surface rule."""
    root = tmp_path / "provisioning"
    assert build_provisioning(check_only=False, root=root) == 0
    for spec in DASHBOARDS:
        panels = tables(root, spec.uid)
        assert [panels[p.title]["targets"][0]["rawSql"] for p in spec.panels] == [p.sql for p in spec.panels]
        assert "Owners" not in panels
    assert not any(r.startswith("tokentrail-owner-") for r in routes(root))
    assert "tokentrail-owner-" not in (root / "alerting" / "contact-points.yaml").read_text()
    rules = [r for g in yaml.safe_load((root / "alerting" / "rules.yaml").read_text())["groups"] for r in g["rules"]]
    assert rules and all(r["labels"]["owner"] == UNOWNED for r in rules)
    assert "tt-unowned-surface" not in {r["uid"] for r in rules}


def test_every_table_with_a_feature_gets_the_owner_beside_it():
    """On the built JSON: each table whose query returns `feature` returns `owner` right after it (the Trace
    totals keep theirs, recomputed); other panels keep their SQL as written."""
    from tokentrail.dashboards.catalog import built_dashboards

    with owners_in_effect(load_owners(EXAMPLE)):
        built = built_dashboards()
    owned = []
    for spec in DASHBOARDS:
        panels = {p["title"]: p for p in built[spec.uid]["panels"]}
        for panel in spec.panels:
            sql = panels[panel.title]["targets"][0]["rawSql"]
            columns = output_columns(panel.sql) or []
            if panel.kind == "table" and "feature" in columns:
                if "owner" in columns:
                    assert sql.startswith("SELECT * REPLACE (multiIf("), panel.title
                else:
                    got = output_columns(sql) or []
                    assert got == [
                        *columns[: columns.index("feature") + 1],
                        "owner",
                        *columns[columns.index("feature") + 1 :],
                    ]
                # A tenant's own owner of a feature applies where the table shows the tenant.
                assert ("'northwind-success'" in sql) == ("tenant" in columns) and f"'{UNOWNED}')" in sql
                owned.append(f"{spec.uid}/{panel.title}")
            else:
                assert sql == panel.sql, panel.title
    assert {"tokentrail-spend/Top traces by cost", "tokentrail-loops/Loops by feature"} <= set(owned)
    assert "tokentrail-spend/Budget breaches" in owned  # a feature's breach: the feature's key, its owner
    assert "tokentrail-trace/Trace totals and owner" in owned and len(owned) >= 7


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("SELECT a, f(b, ',') AS c, t.feature FROM x", ["a", "c", "feature"]),
        ("WITH (SELECT 1 FROM y) AS k SELECT DISTINCT feature, count() FROM x", ["feature", None]),
        ("SELECT 'a, b' AS s, `weird name` AS w -- , nope\nFROM x", ["s", "w"]),
        ("SELECT a /* , b FROM */, feature /* the label */ FROM x", ["a", "feature"]),
        ("SELECT * FROM (SELECT feature FROM x)", None),
        ("SHOW TABLES", None),
    ],
)
def test_output_columns_reads_the_outermost_select(sql, columns):
    """Commas inside calls, strings and comments (line or block) do not split columns; WITH subqueries are skipped."""
    assert output_columns(sql) == columns


def test_unnamed_columns_put_the_owner_last_and_no_feature_means_no_change():
    """A column without a name cannot be repeated: `*, owner`; a query without feature is left alone."""
    owners = load_owners(EXAMPLE)
    assert with_owner_column("SELECT feature, count() FROM x GROUP BY feature", owners).startswith("SELECT *, multiIf(")
    assert with_owner_column("SELECT tenant, count() AS n FROM x GROUP BY tenant", owners) is None


def test_push_with_owners_sends_their_contact_points_routes_and_columns(monkeypatch, capsys):
    """`dashboards push --owners FILE`: one contact point and route per team, owner columns in the dashboards;
    a receiver's unset variable is refused naming the team."""
    for key, value in {**ENV, **OWNER_ENV}.items():
        monkeypatch.setenv(key, value)
    with GrafanaStandIn() as grafana:
        assert main(["dashboards", "push", "--grafana-url", grafana.url, "--owners", str(EXAMPLE)]) == 0
        assert {"tt-owner-support-ai", "tt-owner-northwind-success", "tt-owner-devtools"} <= set(grafana.contact_points)
        assert grafana.contact_points["tt-owner-support-ai"]["settings"]["integrationKey"] == "k" * 32
        (ours,) = grafana.policy["routes"]
        assert ["owner", "=", "support-ai"] in [m for r in ours["routes"] for m in r["object_matchers"]]
        spend = grafana.dashboards["tokentrail-spend"]["dashboard"]
        assert "Owners" in {p["title"] for p in spend["panels"]}
    monkeypatch.delenv("TT_SLACK_NORTHWIND")
    with GrafanaStandIn() as grafana:
        assert main(["dashboards", "push", "--grafana-url", grafana.url, "--owners", str(EXAMPLE)]) == 2
        assert "TT_SLACK_NORTHWIND (the owners file's slack receiver of team northwind-success)" in (
            capsys.readouterr().err
        )
        assert grafana.requests == []


def test_a_tenant_organisation_sees_only_its_owners():
    """acme's organisation: no trace of northwind's team, channel or name; northwind's has its own team."""
    env = {**ENV, **OWNER_ENV}
    with GrafanaStandIn() as grafana, owners_in_effect(load_owners(EXAMPLE)):
        api = GrafanaApi.from_url(grafana.url)
        push_tenant(api, "acme", reader_user="reader_acme", env=env)
        push_tenant(api, "northwind", reader_user="reader_northwind", env=env)
        acme = grafana.org_state(grafana.org_id(org_name("acme")))
        northwind = grafana.org_state(grafana.org_id(org_name("northwind")))
        assert current_owners() is not None and len(current_owners().teams) == 4  # the caller's owners are intact
    assert "tt-owner-northwind-success" not in acme["contact_points"]
    assert "tt-owner-northwind-success" in northwind["contact_points"]
    assert "northwind" not in json.dumps([acme["dashboards"], acme["contact_points"], acme["policy"], acme["rules"]])


def test_pushing_again_after_a_change_of_the_file_updates_the_routes(tmp_path, monkeypatch):
    """Push with the example, drop finance-ops from the file, push again: its route is gone from the tree and
    the rules no longer name it (its contact point stays in Grafana, unreferenced: push never deletes)."""
    for key, value in {**ENV, **OWNER_ENV}.items():
        monkeypatch.setenv(key, value)
    owners_file = tmp_path / "owners.yaml"
    owners_file.write_text(EXAMPLE.read_text())
    with GrafanaStandIn() as grafana:
        assert main(["dashboards", "push", "--grafana-url", grafana.url, "--owners", str(owners_file)]) == 0
        (ours,) = grafana.policy["routes"]
        assert "tokentrail-owner-finance-ops" in {r["receiver"] for r in ours["routes"]}
        doc = yaml.safe_load(owners_file.read_text())
        doc["teams"] = [t for t in doc["teams"] if t["name"] != "finance-ops"]
        doc["owners"] = [o for o in doc["owners"] if o["team"] != "finance-ops"]
        owners_file.write_text(yaml.safe_dump(doc))
        assert main(["dashboards", "push", "--grafana-url", grafana.url, "--owners", str(owners_file)]) == 0
        (ours,) = grafana.policy["routes"]
        assert "tokentrail-owner-finance-ops" not in {r["receiver"] for r in ours["routes"]}
        assert "tokentrail-owner-support-ai" in {r["receiver"] for r in ours["routes"]}
        assert "finance-ops" not in json.dumps(grafana.rules)


def test_the_owners_panel_cannot_be_broken_by_a_receiver_name(tmp_path):
    """A PagerDuty service name is free text: `|`, `$` and `<` are escaped, so it stays one cell, is not read
    as a Grafana variable and adds no HTML."""
    from tokentrail.dashboards.owner_columns import owners_markdown

    path = tmp_path / "o.yaml"
    receiver = {"type": "pagerduty", "integration_key_env": "K", "service": "Pay | ${tenant} <img src=x>"}
    path.write_text(
        yaml.safe_dump({"teams": [{"name": "t", "receiver": receiver}], "owners": [{"feature": "f", "team": "t"}]})
    )
    row = owners_markdown(load_owners(path)).splitlines()[-1]
    assert row == "| f |  | any | t | PagerDuty Pay \\| &#36;{tenant} &lt;img src=x> | page |"
