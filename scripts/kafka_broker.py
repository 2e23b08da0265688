"""A real single-node Apache Kafka broker for tests and benchmarks, without Docker.

Why this exists: the project tests against a real Kafka (docs/architecture.md), but these
machines have no Docker engine. Maven Central is reachable and Java is installed, so we fetch the
broker's jars with ``mvn`` once into the git-ignored ``.cache/`` folder and run ``kafka.Kafka`` in
KRaft mode (no ZooKeeper) on loopback ports.

Usage::

    python scripts/kafka_broker.py fetch   # only download the jars (the CI/setup step)
    python scripts/kafka_broker.py run     # a broker in the foreground until Ctrl-C

    with KafkaBroker() as broker:          # from Python (tests import this module)
        produce_to(broker.bootstrap)
        broker.stop(); broker.start()      # same address, same data

This module is the command line and the one import for callers; the work lives beside it:
``kafka_jars`` (fetching the jars with Maven), ``kafka_config`` (listeners and
``server.properties``), ``kafka_process`` (the broker process and its lifecycle) and
``kafka_admin`` (free ports, readiness, topics). Only the standard library is imported at module
level, so ``fetch`` works before the project's virtualenv has confluent-kafka.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from kafka_admin import create_topic, free_ports, port_open, wait_for_metadata
from kafka_config import Listener
from kafka_jars import (
    CACHE_DIR,
    KAFKA_HOME,
    KAFKA_VERSION,
    LIBS_DIR,
    MARKER,
    MAVEN_REPO,
    REPO_ROOT,
    SCALA_VERSION,
    KafkaBrokerError,
    ensure_jars,
    jars_ready,
)
from kafka_process import DEFAULT_STARTUP_TIMEOUT, DEFAULT_STOP_TIMEOUT, KafkaBroker, tail_file

__all__ = [
    "CACHE_DIR",
    "DEFAULT_STARTUP_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "KAFKA_HOME",
    "KAFKA_VERSION",
    "LIBS_DIR",
    "MARKER",
    "MAVEN_REPO",
    "REPO_ROOT",
    "SCALA_VERSION",
    "KafkaBroker",
    "KafkaBrokerError",
    "Listener",
    "create_topic",
    "ensure_jars",
    "fetch",
    "free_ports",
    "jars_ready",
    "main",
    "port_open",
    "wait_for_metadata",
]


def fetch() -> int:
    """Download the jars unless cached, and say which it was: ``scripts/test``'s setup step."""
    t0 = time.monotonic()
    cached = jars_ready()
    libs = ensure_jars()
    n = len(list(libs.glob("*.jar")))
    how = "already cached" if cached else f"fetched in {time.monotonic() - t0:.1f}s"
    print(f"Kafka {KAFKA_VERSION}: {n} jars {how} in {libs.relative_to(REPO_ROOT)}")
    return 0


def run(port: int | None = None, controller_port: int | None = None) -> int:
    """A broker in the foreground: prints its bootstrap address, runs until Ctrl-C or SIGTERM."""
    broker = KafkaBroker(port=port, controller_port=controller_port)
    t0 = time.monotonic()
    with broker:
        print(f"Kafka {KAFKA_VERSION} ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        print(f"logs: {broker.log_file}", file=sys.stderr)
        print(broker.bootstrap, flush=True)
        # Ctrl-C raises KeyboardInterrupt here; `with` then stops the broker and cleans up.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while broker.running:
            time.sleep(0.5)
        print("broker exited:\n" + tail_file(broker.log_file), file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the Kafka jars into .cache/ (no-op when cached)")
    run_cmd = sub.add_parser("run", help="run a broker in the foreground until Ctrl-C")
    run_cmd.add_argument("--port", type=int, help="broker port (default: a free one)")
    run_cmd.add_argument("--controller-port", type=int, help="controller port (default: a free one)")
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch":
            return fetch()
        return run(args.port, args.controller_port)
    except KeyboardInterrupt:
        return 0
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
