"""The owners file: validation, who owns what, the owner label on alerts, routing, and who is paged."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.alerting_provisioning import _label_columns
from tokentrail.dashboards.evaluate import evaluate_alerts
from tokentrail.dashboards.owners import (
    OWNERS_ENV,
    UNOWNED,
    load_owners,
    owned_rules,
    owner_routes,
    who_is_paged,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "dashboards" / "owners.example.yaml"
AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "owners.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_example_file_loads_and_resolves_most_specific_first():
    """feature+tenant beats feature, which beats service; nothing matching is unowned."""
    owners = load_owners(EXAMPLE)
    assert owners.owner_of(feature="order-support", tenant="northwind").name == "northwind-success"
    assert owners.owner_of(feature="order-support", tenant="acme").name == "support-ai"
    assert owners.owner_of(feature="code-review", service="review-bot", tenant="acme").name == "devtools"
    assert owners.owner_of(feature="internal-qa", service="kb-bot", tenant="acme") is None


@pytest.mark.parametrize(
    ("owners_line", "team", "message"),
    [
        ({"feature": "x", "team": "ghosts"}, None, "not in teams"),
        ({"feature": "x", "service": "y", "team": "t"}, None, "not both"),
        ({"team": "t"}, None, "feature, a service or a tenant"),
        ({"feature": "x'; DROP TABLE calls --", "team": "t"}, None, "owners.0.feature"),
        (None, {"name": "t", "receiver": {"type": "webhook", "url_env": "https://hooks.example/secret"}}, "url_env"),
        (None, {"name": "t", "receiver": {"type": "slack", "webhook_env": "X", "channel": "general"}}, "channel"),
        (None, {"name": "T$", "receiver": {"type": "email", "addresses": ["a@b.c"]}}, "name"),
    ],
)
def test_invalid_files_name_the_problem(tmp_path, owners_line, team, message):
    """A bad owners file is a ValueError saying where: unknown team, SQL in a name, a secret instead of a variable."""
    doc = {
        "teams": [team or {"name": "t", "receiver": {"type": "email", "addresses": ["a@b.c"]}}],
        "owners": [owners_line] if owners_line else [],
    }
    with pytest.raises(ValueError, match=message):
        load_owners(write(tmp_path, doc))


def test_duplicate_ownership_is_refused(tmp_path):
    """The same feature owned twice would make routing depend on file order: refused."""
    team = {"name": "t", "receiver": {"type": "email", "addresses": ["a@b.c"]}}
    doc = {"teams": [team], "owners": [{"feature": "x", "team": "t"}, {"feature": "x", "team": "t"}]}
    with pytest.raises(ValueError, match="owned twice"):
        load_owners(write(tmp_path, doc))


def test_every_alert_carries_the_owner_the_file_gives(store):
    """Evaluated on the replayed store, each firing alert's owner label is Owners.owner_of its labels."""
    owners = load_owners(EXAMPLE)
    rules = owned_rules(RULES, owners)
    assert all("owner" in _label_columns(r.sql) for r in rules)
    alerts = evaluate_alerts(store.client(), AT, rules)
    assert alerts
    owned = 0
    for alert in alerts:
        labels = alert.labels
        team = owners.owner_of(
            feature=labels.get("feature", ""), service=labels.get("service", ""), tenant=labels.get("tenant", "")
        )
        expected = team.name if team is not None else UNOWNED
        assert labels["owner"] == expected, (alert.uid, labels)
        owned += expected != UNOWNED
    assert owned > 0, "some alert belongs to a team of the example file"
    unowned = {a.labels["feature"] for a in alerts if a.uid == "tt-unowned-surface"}
    assert unowned and "order-support" not in unowned and "refund-drafts" not in unowned


def test_without_a_file_alerts_are_labelled_unowned_and_routing_is_unchanged():
    """No owners file: a static owner=unowned label, no per-owner routes, no unowned-surface rule."""
    rules = owned_rules(RULES, None)
    assert all(r.labels["owner"] == UNOWNED for r in rules)
    assert "tt-unowned-surface" not in {r.uid for r in rules}
    assert owner_routes(None) == []


def test_routes_send_each_owner_to_its_receiver(tmp_path):
    """`dashboards build` with the file: contact point per team, routes before the pager; notify keeps pages central."""
    script = (
        "import json\n"
        "from tokentrail.dashboards.provisioning_files import generate\n"
        "import yaml\n"
        "files = generate()\n"
        "print(json.dumps({k: yaml.safe_load(files[k]) for k in "
        "('alerting/policies.yaml', 'alerting/contact-points.yaml', 'alerting/rules.yaml')}))\n"
    )
    env = {OWNERS_ENV: str(EXAMPLE), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    files = json.loads(done.stdout)
    (tree,) = files["alerting/policies.yaml"]["policies"]
    (branch,) = tree["routes"]
    receivers = [r["receiver"] for r in branch["routes"]]
    assert receivers[-1] == "tokentrail-pagerduty", "the central pager route stays last"
    assert set(receivers[:-1]) == {
        f"tokentrail-owner-{t}" for t in ("support-ai", "northwind-success", "devtools", "finance-ops")
    }
    by_receiver = {r["receiver"]: r["object_matchers"] for r in branch["routes"]}
    assert by_receiver["tokentrail-owner-support-ai"] == [["owner", "=", "support-ai"]]
    assert ["severity", "!=", "page"] in by_receiver["tokentrail-owner-northwind-success"]
    points = {p["name"]: p["receivers"] for p in files["alerting/contact-points.yaml"]["contactPoints"]}
    (pagerduty,) = points["tokentrail-owner-support-ai"]
    assert pagerduty["type"] == "pagerduty" and pagerduty["settings"]["integrationKey"] == "$__env{TT_PD_SUPPORT_AI}"
    (slack,) = points["tokentrail-owner-northwind-success"]
    assert (
        slack["settings"]["recipient"] == "#northwind-ai" and slack["settings"]["url"] == "$__env{TT_SLACK_NORTHWIND}"
    )
    rules = [r for g in files["alerting/rules.yaml"]["groups"] for r in g["rules"]]
    assert "tt-unowned-surface" in {r["uid"] for r in rules}
    assert all("owner" not in r["labels"] for r in rules), "with a file the owner comes from the query"


def test_who_is_paged_follows_the_routes():
    """Page-level teams take their pages; notify-level teams get warnings only; unowned go central."""
    owners = load_owners(EXAMPLE)
    assert who_is_paged({"owner": "support-ai"}, "page", owners).startswith("PAGE -> support-ai (PagerDuty")
    assert who_is_paged({"owner": "northwind-success"}, "page", owners).startswith("PAGE -> PagerDuty (central)")
    assert who_is_paged({"owner": "northwind-success"}, "warning", owners) == (
        "warn -> northwind-success (Slack #northwind-ai)"
    )
    assert who_is_paged({"owner": UNOWNED}, "warning", owners) == "warn -> chat (central), unowned"


def test_alerts_check_prints_who_would_be_paged(store):
    """`alerts check` with the owners file names the team and receiver of each firing alert."""
    done = store.cli(
        "alerts", "check", "--clickhouse", store.dsn, "--at", "2026-11-20T10:00:00Z", env={OWNERS_ENV: str(EXAMPLE)}
    )
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "-> support-ai (PagerDuty Support AI)" in out and "owner=support-ai" in out
    assert "Unowned model surface" in out


def test_evidence_bundle_names_the_owner(store, tmp_path):
    """`evidence --owners FILE` puts the owning team and its receiver in the summary and the manifest."""
    from evidence_store import rows

    (trace,) = rows(
        store,
        "SELECT min(trace_id) FROM tokentrail.calls FINAL WHERE feature = 'order-support' AND tenant = 'northwind'",
    )[0]
    done = store.cli("evidence", trace, "--out", str(tmp_path), "--owners", str(EXAMPLE), "--clickhouse", store.dsn)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads((tmp_path / "manifest.json").read_text())["owners"] == ["northwind-success (Slack #northwind-ai)"]
    assert "- owner: northwind-success (Slack #northwind-ai)" in (tmp_path / "summary.md").read_text()
    missing = str(tmp_path / "none.yaml")
    bad = store.cli("evidence", trace, "--out", str(tmp_path / "x"), "--owners", missing, "--clickhouse", store.dsn)
    assert bad.returncode == 2 and b"cannot be read" in bad.stderr
