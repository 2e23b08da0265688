"""`/metrics`, `/ready` and `/live` of the real worker on a real Kafka broker and chDB (issue 16 §3).

The store's failures are real failures of the real sink: its client raises (faulty_worker.py) or
hangs (stalling_worker.py) on insert, the one stand-in, since an embedded engine cannot be made
unreachable on demand. The pipeline process is killed for real.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from child_processes import child_pids, is_running
from kafka_harness import free_port, output_event, produce, start_worker, stop, wait_caught_up, wait_until

from tokentrail.stream.faust_worker import parse_args
from tokentrail.stream.faust_worker.config import WorkerConfig

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HERE = Path(__file__).parent


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""  # not listening (yet)


def ready(port: int) -> tuple[int, dict[str, Any]]:
    status, body = get(port, "/ready")
    return status, (json.loads(body) if body else {})


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name and ",".join(sorted((match[2] or "").split(","))) == want:
            return float(match[3])
    return None


def wait_not_ready(port: int, reason: str, worker: Any, timeout: float = 120) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def red() -> bool:
        status, body = ready(port)
        seen.update(body)
        return status == 503 and any(reason in r for r in body.get("reasons", []))

    wait_until(red, timeout, f"/ready to say 503 '{reason}' (last: {seen})", worker)
    return seen


def health_flags(port: int, sink: float = 60, lag: float = 300) -> list[str]:
    return [
        "--metrics-port",
        str(port),
        "--ready-sink-failing-seconds",
        str(sink),
        "--ready-lag-growing-seconds",
        str(lag),
    ]


def test_metrics_count_the_batch_and_readiness_follows_the_pipeline_process(kafka_bootstrap, new_topic, tmp_path):
    """A healthy worker is ready and live, and its metrics count what it did: messages in by topic, events
    stored, duplicates, dead letters by reason, redaction findings by entity, batches, inserts, lag 0,
    insights runs.
    Killing its pipeline process turns /ready red with that reason (before any batch notices)."""
    topic = new_topic(partitions=1)
    events = [json.dumps(output_event(i)).encode() for i in range(1, 21)]
    pii = output_event(21, output=[{"role": "assistant", "content": "write to jane.roe@example.com"}])
    lines = [*events, *events[:3], b"not json", json.dumps(pii).encode()]
    port = free_port()
    produce(kafka_bootstrap, topic, lines)
    extra = [*health_flags(port), "--insights-interval", "2"]
    worker = start_worker(kafka_bootstrap, topic, tmp_path / "store", group="metrics", extra=extra)
    wait_caught_up(kafka_bootstrap, topic, "metrics", worker)

    def lag_sampled_at_zero() -> bool:
        return (
            metric(get(port, "/metrics")[1].decode(), "tokentrail_worker_consumer_lag", topic=topic, partition="0") == 0
        )

    wait_until(lag_sampled_at_zero, 60, "the lag gauge to read 0", worker)
    text = get(port, "/metrics")[1].decode()
    assert metric(text, "tokentrail_worker_events_in_total", topic=topic) == len(lines)
    assert metric(text, "tokentrail_worker_events_stored_total") == 21
    assert metric(text, "tokentrail_worker_duplicates_total") == 3
    assert metric(text, "tokentrail_worker_dead_letters_total", topic=topic, reason="not_json") == 1
    assert metric(text, "tokentrail_worker_redaction_findings_total", entity="EMAIL_ADDRESS") == 1
    assert metric(text, "tokentrail_worker_rows_stored_total", table="events") == 21
    assert metric(text, "tokentrail_worker_batch_size_sum") == len(lines)
    assert metric(text, "tokentrail_worker_store_seconds_count") >= 1
    assert metric(text, "tokentrail_worker_pipeline_seconds_count") >= 1
    assert metric(text, "tokentrail_worker_store_inserts_total") >= 1
    assert metric(text, "tokentrail_worker_store_retries_total") == 0
    assert metric(text, "tokentrail_worker_pipeline_process_starts_total") == WorkerConfig.pipeline_processes
    assert metric(text, "tokentrail_worker_stage_seconds_total", stage="Redact") > 0
    status, body = ready(port)
    assert status == 200 and body["ready"] and body["lag"] == {f"{topic}/0": 0}

    def insights_ran() -> bool:  # this worker is the only candidate, so it leads the insights job
        return (
            metric(get(port, "/metrics")[1].decode(), "tokentrail_worker_insights_runs_total", outcome="ok") or 0
        ) >= 1

    wait_until(insights_ran, 90, "an insights run to be counted", worker)
    assert metric(get(port, "/metrics")[1].decode(), "tokentrail_worker_insights_seconds_count") >= 1
    assert get(port, "/live")[0] == 200 and get(port, "/nope")[0] == 404

    pipeline_process, *_ = (  # not multiprocessing's resource tracker; any one of the pipeline children
        pid for pid in child_pids(worker.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    os.kill(pipeline_process, signal.SIGKILL)
    wait_until(lambda: not is_running(pipeline_process), 30, "the pipeline process to die")
    body = wait_not_ready(port, "the pipeline process is gone", worker, timeout=30)
    assert body["ready"] is False
    assert metric(get(port, "/metrics")[1].decode(), "tokentrail_worker_pipeline_process_up") == 0
    stop(worker)


def test_a_failing_store_turns_readiness_red_after_the_threshold(kafka_bootstrap, new_topic, tmp_path):
    """Every insert fails (retried forever): /ready says 503 naming the store once it has failed for
    --ready-sink-failing-seconds, the retries show in /metrics, and /live stays 200 (the loop runs)."""
    topic = new_topic(partitions=1)
    produce(kafka_bootstrap, topic, [json.dumps(output_event(i)).encode() for i in range(1, 6)])
    port = free_port()
    script = [sys.executable, str(HERE / "faulty_worker.py"), "100000"]
    extra = ["--store-max-attempts", "0", *health_flags(port, sink=3)]
    worker = start_worker(kafka_bootstrap, topic, tmp_path / "store", group="failing", script=script, extra=extra)
    wait_not_ready(port, "the store has been failing for", worker)
    text = get(port, "/metrics")[1].decode()
    assert metric(text, "tokentrail_worker_store_retries_total") >= 2
    assert metric(text, "tokentrail_worker_store_consecutive_failures") >= 2
    assert metric(text, "tokentrail_worker_store_failing_since_seconds") > time.time() - 600
    assert metric(text, "tokentrail_worker_ready") == 0
    assert get(port, "/live")[0] == 200
    stop(worker, signal.SIGKILL)


def test_a_hung_insert_turns_readiness_red(kafka_bootstrap, new_topic, tmp_path):
    """An insert that never returns fails nothing: readiness still turns red once it has run too long."""
    topic = new_topic(partitions=1)
    produce(kafka_bootstrap, topic, [json.dumps(output_event(i)).encode() for i in range(1, 6)])
    port = free_port()
    script = [sys.executable, str(HERE / "stalling_worker.py"), "0"]
    worker = start_worker(
        kafka_bootstrap, topic, tmp_path / "store", group="hung", script=script, extra=health_flags(port, sink=3)
    )
    body = wait_not_ready(port, "an insert into the store has been running for", worker)
    assert not any("failing" in r for r in body["reasons"])
    stop(worker, signal.SIGKILL)


def test_growing_lag_turns_readiness_red(kafka_bootstrap, new_topic, tmp_path):
    """The store hangs (its threshold far away) while producers keep writing: the lag grows for
    --ready-lag-growing-seconds and /ready says so, naming the partition."""
    topic = new_topic(partitions=1)
    produce(kafka_bootstrap, topic, [json.dumps(output_event(i)).encode() for i in range(1, 6)])
    port = free_port()
    script = [sys.executable, str(HERE / "stalling_worker.py"), "0"]
    extra = health_flags(port, sink=3600, lag=6)
    worker = start_worker(kafka_bootstrap, topic, tmp_path / "store", group="lagging", script=script, extra=extra)
    stop_producing = threading.Event()

    def keep_producing() -> None:
        i = 100
        while not stop_producing.wait(0.3):
            i += 1
            produce(kafka_bootstrap, topic, [json.dumps(output_event(i)).encode()])

    producer = threading.Thread(target=keep_producing, daemon=True)
    producer.start()
    try:
        body = wait_not_ready(port, f"consumer lag of {topic}/0 grew from", worker, timeout=180)
    finally:
        stop_producing.set()
        producer.join(30)
    assert body["lag"][f"{topic}/0"] > 5
    assert metric(get(port, "/metrics")[1].decode(), "tokentrail_worker_consumer_lag", topic=topic, partition="0") > 5
    stop(worker, signal.SIGKILL)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--metrics-port", "70000"], "--metrics-port must be a port number"),
        (["--ready-sink-failing-seconds", "0"], "--ready-sink-failing-seconds must be > 0"),
        (["--ready-lag-growing-seconds", "-1"], "--ready-lag-growing-seconds must be >= 0"),
    ],
)
def test_bad_health_flags_fail_at_startup(flags, message):
    """Bad thresholds or ports are refused when the flags are parsed, naming the flag."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_args(["--kafka", "localhost:9092", *flags])


def test_metrics_port_defaults_to_off_and_reads_its_variable(monkeypatch):
    """No flag, no variable: no server. TOKENTRAIL_METRICS_PORT turns it on."""
    monkeypatch.delenv("TOKENTRAIL_METRICS_PORT", raising=False)
    assert parse_args(["--kafka", "k:9092"]).metrics_port is None
    monkeypatch.setenv("TOKENTRAIL_METRICS_PORT", "9464")
    assert parse_args(["--kafka", "k:9092"]).metrics_port == 9464
