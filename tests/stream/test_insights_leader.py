"""One insights leader at a time across workers (real Kafka), and exact insights across a leader change.

How two workers are emulated: embedded chDB cannot be opened by two processes, so the two workers
are two leader candidates in this process, each with its own Kafka consumer in one leader group
(`KafkaLeadership`, real broker) and its own `InsightsJob` (own producer, own sink), on one store.
What two worker processes would add (faust, the events topic) plays no part in who leads.

The store holds three hours of generator traffic; the job's clock is simulated (ticks every ten
minutes through it), so the runs are the incremental ones a leader makes each interval. The
reference is one run over everything on a copy of the calls.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from kafka_helpers import consume_all

from tokentrail.sinks import ClickHouseSink, apply, close_embedded, connect
from tokentrail.stream.embedded import EmbeddedRunner
from tokentrail.stream.faust_worker.config import WorkerConfig
from tokentrail.stream.faust_worker.insights_job import InsightsJob, KafkaLeadership
from tokentrail.stream.insights import BudgetConfig, closing_time, read_watermark, run_insights
from tokentrail.stream.insights.jobs import VARIANCE_KEY, VARIANCE_METRICS
from tokentrail.stream.runtime import make_pipeline
from tokentrail.stream.stages import Inbound, now_utc
from tokentrail.stream.synthetic import DEFAULT_START, GeneratorConfig, generate

TICK = timedelta(minutes=10)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator:
    """Three hours of generator traffic with every anomaly, replayed into `tokentrail` of a fresh engine."""
    close_embedded()
    client = connect(f"chdb://{tmp_path_factory.mktemp('clickhouse')}")
    apply(client)
    traffic = generate(GeneratorConfig(seed=11, events=6_000, duration=timedelta(hours=3)))
    runner = EmbeddedRunner(make_pipeline(prices=None, allow_ephemeral_key=True), ClickHouseSink(client))
    runner.run(Inbound(f"gen:{n}", line.encode(), now_utc()) for n, line in enumerate(traffic.lines, 1))
    yield client
    close_embedded()


def budget_rules(client) -> list[dict[str, str]]:
    """An hourly tenant budget at a third of the largest hourly spend: some tenants cross it, some episodes."""
    (top,) = client.query(
        "SELECT max(s) FROM (SELECT tenant, toStartOfHour(ts) h, sum(cost_usd) s FROM tokentrail.calls GROUP BY 1, 2)"
    ).result_rows[0]
    return [{"scope": "tenant", "key": "*", "window": "hour", "warning": str(top / 3)}]


def reference(client, budgets: BudgetConfig) -> tuple[set[str], set[str], list[tuple]]:
    """Change ids, breach ids and variance rows of one run over all calls, in a copy of the store."""
    copy = f"ref_{uuid.uuid4().hex[:8]}"
    apply(client, database=copy)
    client.command(f"INSERT INTO {copy}.calls SELECT * FROM tokentrail.calls")
    result = run_insights(client, database=copy, now=closing_time(client, database=copy), budgets=budgets)
    return (
        {str(c.change_id) for c in result.changes},
        {str(b.breach_id) for b in result.breaches},
        variance_rows(client, copy),
    )


def variance_rows(client, database: str) -> list[tuple]:
    columns = ", ".join(VARIANCE_KEY + VARIANCE_METRICS)
    return client.query(f"SELECT {columns} FROM {database}.variance FINAL ORDER BY {columns}").result_rows


def wait_for_one_leader(candidates: list[KafkaLeadership], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leading = [i for i, c in enumerate(candidates) if c.is_leader()]
        if len(leading) == 1:
            return leading[0]
        assert len(leading) <= 1, "two candidates lead at once"
        time.sleep(0.1)
    raise AssertionError(f"no single leader within {timeout}s")


def test_two_candidates_elect_one_leader_and_the_insights_are_exact_across_a_leader_change(
    store, kafka_bootstrap, new_topic, tmp_path
):
    """Two candidates in one leader group: exactly one runs each tick; the leader leaves halfway, the other takes
    over from the stored watermark; stored changes, breaches and variance equal one run over everything, with no
    duplicate row, and each alert is on the alerts topic exactly once."""
    client = store
    budgets_rules = budget_rules(client)
    budgets = BudgetConfig.from_dict({"budgets": budgets_rules})
    ref_changes, ref_breaches, ref_variance = reference(client, budgets)
    assert len(ref_changes) == 3 and ref_breaches, "the traffic must give changes and breaches to compare"

    alerts, leader_topic = new_topic(), new_topic(prefix="leader")
    budget_file = tmp_path / "budgets.json"
    budget_file.write_text(json.dumps({"budgets": [dict(rule) for rule in budgets_rules]}))
    config = WorkerConfig(
        kafka=kafka_bootstrap,
        alerts_topic=alerts,
        budgets=str(budget_file),
        session_timeout=6.0,
        group=f"g-{uuid.uuid4().hex[:8]}",
    )
    candidates = [KafkaLeadership(config, topic=leader_topic) for _ in range(2)]
    jobs = [InsightsJob(client, config) for _ in range(2)]  # each with its own producer and sink
    try:
        leader = wait_for_one_leader(candidates)
        ticks = [DEFAULT_START + TICK * k for k in range(1, 20)]
        ran: list[int] = []
        for k, now in enumerate(ticks):
            if k == len(ticks) // 2:
                candidates[leader].close()  # the leader's worker stops; the other must take over
                leader = 1 - leader
                assert candidates[leader].wait(60), "the remaining candidate did not take over"
            leading = [i for i, c in enumerate(candidates) if c.is_leader()]
            assert leading == [leader]
            for i in leading:
                result = jobs[i].run_at(now)
                assert result is not None and result.covered_until == now
                ran.append(i)
        assert len(ran) == len(ticks) and set(ran) == {0, 1}, "one run per tick, by each leader in turn"
    finally:
        for candidate in candidates:
            candidate.close()

    assert read_watermark(client) == ticks[-1]
    stored_changes = [r[0] for r in client.query("SELECT toString(change_id) FROM tokentrail.changes").result_rows]
    stored_breaches = [
        r[0] for r in client.query("SELECT toString(breach_id) FROM tokentrail.budget_breaches").result_rows
    ]
    assert sorted(stored_changes) == sorted(ref_changes)  # no FINAL: a duplicate row would show
    assert sorted(stored_breaches) == sorted(ref_breaches)
    assert variance_rows(client, "tokentrail") == ref_variance
    expected = len(ref_changes) + len(ref_breaches)
    published = [key.decode() for key, _ in consume_all(kafka_bootstrap, alerts, expected)]
    assert sorted(published) == sorted(ref_changes | ref_breaches)


def test_a_candidate_that_left_does_not_lead_again_and_a_new_one_does(kafka_bootstrap, new_topic):
    """Leadership follows the group: closing the leader hands it to the other; a closed candidate never leads;
    a third candidate joining a group that has a leader does not take over."""
    config = WorkerConfig(kafka=kafka_bootstrap, session_timeout=6.0, group=f"g-{uuid.uuid4().hex[:8]}")
    topic = new_topic(prefix="leader")
    first, second = KafkaLeadership(config, topic=topic), KafkaLeadership(config, topic=topic)
    try:
        assert first.wait(60)
        second.is_leader()  # joins
        time.sleep(3)
        assert first.is_leader() and not second.is_leader()
        first.close()
        assert second.wait(60) and not first.is_leader()
        third = KafkaLeadership(config, topic=topic)  # joins: sticky assignment keeps the leader
        try:
            third.is_leader()
            time.sleep(3)
            assert second.is_leader() and not third.is_leader()
        finally:
            third.close()
    finally:
        first.close()
        second.close()


def test_without_kafka_a_candidate_does_not_lead_and_does_not_raise():
    """An unreachable broker: is_leader() is False (the timer skips the tick) instead of failing the timer."""
    candidate = KafkaLeadership(WorkerConfig(kafka="127.0.0.1:1", session_timeout=6.0), topic="leader.unreachable")
    try:
        assert candidate.is_leader() is False
    finally:
        candidate.close()


def test_a_failed_run_reports_failure_and_leaves_the_watermark(store):
    """The store refuses the run (its database does not exist): on_run gets (seconds, False), nothing raises, and
    the next run starts from the same watermark."""
    reports: list[tuple[float, bool]] = []
    before = read_watermark(store)
    job = InsightsJob(
        store, WorkerConfig(kafka="127.0.0.1:1"), on_run=lambda s, ok: reports.append((s, ok)), database="missing_db"
    )
    assert job.run_at(DEFAULT_START + timedelta(days=1)) is None
    assert len(reports) == 1 and reports[0][1] is False and reports[0][0] >= 0
    assert read_watermark(store) == before
