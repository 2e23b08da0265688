"""One small HTTP server per worker: `/metrics` (Prometheus text), `/ready` and `/live` (JSON).

prometheus_client's own `start_http_server` serves only metrics, so this is `http.server` in a
daemon thread. It never touches the event loop: it reads the metrics registry and the probe's
signals (plain attributes the loop writes), so it answers even while the loop is stuck, which is
exactly when `/live` must say 503.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .metrics import WorkerMetrics
    from .probe import WorkerProbe

__all__ = ["HealthServer"]

log = logging.getLogger("tokentrail.worker")


class HealthServer:
    """Serves one worker's metrics and probes on host:port until `close()`."""

    def __init__(self, metrics: WorkerMetrics, probe: WorkerProbe, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"metrics": metrics, "probe": probe})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ValueError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror})") from exc
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="worker-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("metrics on http://%s:%d/metrics, readiness on /ready", *self.server.server_address[:2])
        return self

    def close(self, *args: Any, **kwargs: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    metrics: WorkerMetrics
    probe: WorkerProbe
    # A client that connects and sends nothing would hold its thread for good: one thread per
    # connection, so a few idle or slow connections must not pile up threads beside the worker.
    timeout = 10.0

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.metrics.render(), CONTENT_TYPE_LATEST)
        elif path == "/ready":
            verdict = self.probe.verdict()
            self._json(200 if verdict.ready else 503, verdict.as_json())
        elif path == "/live":
            alive, silent = self.probe.live()
            self._json(200 if alive else 503, {"live": alive, "event_loop_silent_seconds": round(silent, 1)})
        else:
            self._json(404, {"error": "not found; try /metrics, /ready or /live"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body, sort_keys=True).encode() + b"\n", "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Every scrape and probe would be a log line: none."""
