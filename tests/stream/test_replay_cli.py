"""`tokentrail replay`, `demo` and `schema` from the outside, against the embedded ClickHouse engine."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from expected import per_call_cost

from tokentrail.stream.synthetic import GeneratorConfig, generate


def tokentrail(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tokentrail.stream.cli", *args], input=stdin, capture_output=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def traffic():
    return generate(GeneratorConfig(seed=11, events=4_000))


@pytest.fixture(scope="module")
def events_file(tmp_path_factory, traffic) -> Path:
    path = tmp_path_factory.mktemp("replay") / "events.jsonl"
    path.write_text("\n".join(traffic.lines) + "\n")
    return path


def test_replay_report_matches_what_was_sent_and_is_stable(tmp_path, events_file, traffic):
    """The report counts what the generator made, costs equal the per-call sum, and a second replay prints the same."""
    store = f"chdb://{tmp_path / 'store'}"
    first = tokentrail("replay", str(events_file), "--clickhouse", store, "--report", "json")
    assert first.returncode == 0, first.stderr.decode()
    report = json.loads(first.stdout)
    truth = traffic.truth
    assert report["events"]["read"] == truth.lines
    assert report["events"]["accepted"] == truth.valid_events
    assert report["events"]["duplicates"] == truth.redeliveries
    assert report["events"]["deadletter_reasons"] == truth.malformed
    assert report["unpriced"] == {"calls": truth.unpriced["calls"], "models": sorted(truth.unpriced["models"])}
    assert Decimal(str(report["cost_usd"]["total"])) == pytest.approx(per_call_cost(traffic.lines), abs=Decimal("1e-9"))
    assert sum(report["cost_usd"]["by_tenant"].values()) == pytest.approx(report["cost_usd"]["total"])
    assert set(report) >= {"loops", "variance", "changes", "pii"}

    second = tokentrail("replay", str(events_file), "--clickhouse", store, "--report", "json")
    assert json.loads(second.stdout) == report


def test_replay_from_stdin(tmp_path, traffic):
    """`replay -` reads JSON Lines from stdin."""
    lines = "\n".join(traffic.lines[:200]).encode()
    result = tokentrail("replay", "-", "--clickhouse", f"chdb://{tmp_path / 'store'}", "--report", "json", stdin=lines)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["events"]["read"] == 200


def test_replay_bad_arguments_fail_with_a_fix(tmp_path):
    """A missing file or a bad DSN is a one-line error and exit status 2."""
    missing = tokentrail("replay", str(tmp_path / "nope.jsonl"), "--clickhouse", f"chdb://{tmp_path / 's'}")
    assert missing.returncode == 2 and b"no such file" in missing.stderr
    bad_dsn = tokentrail("replay", "-", "--clickhouse", "mysql://x", stdin=b"")
    assert bad_dsn.returncode == 2 and b"chdb://" in bad_dsn.stderr


def test_schema_events_prints_the_contract():
    """`schema events` prints the JSON Schema of the wire format."""
    result = tokentrail("schema", "events")
    assert json.loads(result.stdout)["$schema"].endswith("2020-12/schema")


def test_demo_runs_and_summarises(tmp_path):
    """`demo` runs the embedded pipeline end to end and prints spend, reliability and dead letters."""
    result = tokentrail("demo", "--events", "3000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    for section in ("Spend by tenant", "Spend by model", "Reliability by provider and model", "Dead letters by reason"):
        assert section in out
    assert (tmp_path / ".tokentrail" / "demo").is_dir()


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--kafka", "127.0.0.1:1"], {}, b"no redaction key"),
        (
            ["--kafka", "127.0.0.1:1", "--halt-on", "everything"],
            {"TOKENTRAIL_REDACTION_KEY": "k" * 32},
            b"--halt-on: unknown kinds",
        ),
        ([], {"TOKENTRAIL_REDACTION_KEY": "k" * 32}, b"--kafka host:9092"),
    ],
)
def test_worker_refuses_bad_configuration_at_startup(tmp_path, args, env, message):
    """The worker fails fast, before connecting, with a message that says how to fix it."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKENTRAIL_")}
    result = subprocess.run(
        [sys.executable, "-m", "tokentrail.stream.cli", "worker", *args],
        capture_output=True,
        env={**clean, **env},
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_replay_refreshes_the_dashboard_rollups(tmp_path, events_file):
    """After a replay the rollups hold exactly what `calls FINAL` holds, so the dashboards can read them."""
    import clickhouse_connect

    path = tmp_path / "store"
    run = tokentrail("replay", str(events_file), "--clickhouse", f"chdb://{path}")
    assert run.returncode == 0, run.stderr.decode()
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        rolled = client.query("SELECT sum(calls) FROM tokentrail.calls_rollup FINAL").result_rows[0][0]
        stored = client.query("SELECT count() FROM tokentrail.calls FINAL").result_rows[0][0]
        marks = client.query("SELECT count() FROM tokentrail.rollup_watermark").result_rows[0][0]
    finally:
        client.close()
    assert marks >= 1 and stored > 0 and rolled == stored
