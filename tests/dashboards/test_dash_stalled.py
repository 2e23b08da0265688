"""'Pipeline stalled' reads arrival time, never event time (issue 16 §3): replaying last year's traffic
is fresh traffic to it, and silence pages whatever the events' own timestamps say. The Pipeline
dashboard's 'Seconds since the last event' reads the same."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tokentrail.dashboards.alert_rules import rule
from tokentrail.dashboards.evaluate import evaluate_alerts
from tokentrail.sinks import close_embedded
from tokentrail.stream.embedded import EmbeddedRunner
from tokentrail.stream.runtime import make_pipeline, open_store
from tokentrail.stream.stages import Inbound, now_utc
from tokentrail.stream.synthetic import GeneratorConfig, generate

STALLED = rule("tt-pipeline-stalled")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A store holding only traffic stamped 300 days ago, stored just now (a replay)."""
    close_embedded()
    now = now_utc()
    config = GeneratorConfig(seed=3, events=300, start=now - timedelta(days=300), duration=timedelta(hours=1))
    client, sink = open_store(f"chdb://{tmp_path_factory.mktemp('stalled') / 'store'}")
    runner = EmbeddedRunner(make_pipeline(prices=None, allow_ephemeral_key=True), sink)
    runner.run(Inbound(f"replay:{n}", line.encode(), now) for n, line in enumerate(generate(config).lines, 1))
    newest_event, receipts = client.query(
        "SELECT (SELECT max(ts) FROM tokentrail.events), (SELECT count() FROM tokentrail.receipts)"
    ).result_rows[0]
    assert receipts > 0 and newest_event.replace(tzinfo=now.tzinfo) < now - timedelta(days=200)
    yield client, now
    close_embedded()


def test_replaying_old_traffic_does_not_page(replayed):
    """Events a year old but stored a minute ago: not stalled (the event-time rule paged here with
    'No event stored for 25920000 seconds')."""
    client, stored_at = replayed
    assert evaluate_alerts(client, stored_at + timedelta(minutes=1), [STALLED]) == []


def test_quiet_for_fifteen_minutes_pages_with_the_arrival_gap(replayed):
    """Fifteen minutes after the last arrival: pages, and says about 900 seconds, not the events' age."""
    client, stored_at = replayed
    (alert,) = evaluate_alerts(client, stored_at + timedelta(minutes=15), [STALLED])
    assert alert.severity == "page" and 890 <= alert.values["B"] <= 905  # marks carry the store's insert clock
    said = re.search(r"No event stored for (\d+) seconds", alert.summary)
    assert said is not None and 890 <= int(said.group(1)) <= 905


def test_an_hour_of_silence_reads_as_the_lookback(replayed):
    """Nothing within the hour the rule looks back: 3600 (an hour or more), still a page."""
    client, stored_at = replayed
    (alert,) = evaluate_alerts(client, stored_at + timedelta(hours=5), [STALLED])
    assert alert.values["B"] == 3600


def test_the_pipeline_stat_reads_what_the_rule_reads(replayed):
    """The dashboard stat and the alert agree: fresh right after the replay, ~900 s fifteen minutes on."""
    from tokentrail.dashboards.catalog import dashboard
    from tokentrail.dashboards.queries import Selection, last, run_panel

    client, stored_at = replayed
    pipeline = dashboard("tokentrail-pipeline")
    panel = next(p for p in pipeline.panels if p.title == "Seconds since the last event")
    for later, low, high in ((timedelta(minutes=1), 0, 65), (timedelta(minutes=15), 890, 905)):
        ((seconds,),) = run_panel(client, pipeline, panel, Selection(last(timedelta(hours=1), stored_at + later))).rows
        assert low <= seconds <= high
