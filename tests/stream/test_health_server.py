"""The worker's HTTP server (stream/faust_worker/health_server.py) on its own: status codes follow the
probe, it binds loopback unless told otherwise, and an idle connection does not hold a thread for good.

The probe is a stand-in returning fixed verdicts (the real one needs a running faust app; the
Kafka tests in test_worker_metrics.py serve it from the real worker).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tokentrail.stream.faust_worker import parse_args
from tokentrail.stream.faust_worker.health_server import HealthServer, _Handler
from tokentrail.stream.faust_worker.metrics import WorkerMetrics
from tokentrail.stream.faust_worker.readiness import Verdict

_DEFAULT_TIMEOUT = _Handler.timeout or 0.0


class FixedProbe:
    def __init__(self) -> None:
        self.ready, self.alive = True, True

    def verdict(self) -> Verdict:
        return Verdict(self.ready, () if self.ready else ("the pipeline process is gone",))

    def live(self) -> tuple[bool, float]:
        return self.alive, 0.0 if self.alive else 99.0


@pytest.fixture
def served(monkeypatch) -> Iterator[tuple[HealthServer, FixedProbe]]:
    monkeypatch.setattr(_Handler, "timeout", 1.0)
    probe = FixedProbe()
    server = HealthServer(WorkerMetrics(), probe, "127.0.0.1", 0).start()  # a FixedProbe for a WorkerProbe
    yield server, probe
    server.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_status_codes_follow_the_probe(served):
    """/ready and /live say 200 or 503 as the probe says, with the reason; /metrics serves the registry."""
    server, probe = served
    assert get(server.port, "/ready")[0] == 200 and get(server.port, "/live")[0] == 200
    probe.ready, probe.alive = False, False
    status, body = get(server.port, "/ready")
    assert status == 503 and json.loads(body)["reasons"] == ["the pipeline process is gone"]
    assert get(server.port, "/live")[0] == 503
    assert b"tokentrail_worker_events_in" in get(server.port, "/metrics")[1]
    assert get(server.port, "/anything")[0] == 404


def test_an_idle_connection_is_closed_and_requests_still_answered(served):
    """A client that connects and says nothing is dropped after the handler's timeout (no thread held
    for good); meanwhile and afterwards requests are answered."""
    server, _ = served
    assert 0 < _DEFAULT_TIMEOUT <= 30, "the handler's own timeout (patched to 1 s here to keep the test short)"
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        idle.settimeout(30)
        assert get(server.port, "/ready")[0] == 200
        started = time.monotonic()
        assert idle.recv(16) == b""  # closed by the server
        assert time.monotonic() - started < 10
    assert get(server.port, "/live")[0] == 200


def test_binds_loopback_by_default(monkeypatch):
    """Without --metrics-host (or its variable) the server listens on 127.0.0.1 only."""
    monkeypatch.delenv("TOKENTRAIL_METRICS_HOST", raising=False)
    assert parse_args(["--kafka", "127.0.0.1:1", "--metrics-port", "9464"]).metrics_host == "127.0.0.1"
