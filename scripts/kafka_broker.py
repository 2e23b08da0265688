"""A real single-node Apache Kafka broker for tests and benchmarks, without Docker.

Why this exists: the project tests against a real Kafka (DESIGN.md, "Real services in tests"),
but these machines have no Docker engine. Maven Central is reachable and Java is installed, so we
fetch the broker's jars with ``mvn`` once into the git-ignored ``.cache/`` folder and run
``kafka.Kafka`` in KRaft mode (no ZooKeeper) on loopback ports.

Usage::

    python scripts/kafka_broker.py fetch   # only download the jars (the CI/setup step)
    python scripts/kafka_broker.py run     # a broker in the foreground until Ctrl-C

    with KafkaBroker() as broker:          # from Python (tests import this module)
        produce_to(broker.bootstrap)
        broker.stop(); broker.start()      # same address, same data

Only the standard library is imported at module level, so ``fetch`` works before the project's
virtualenv has confluent-kafka; the readiness probe imports confluent_kafka lazily.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
# The broker jar brings no logging backend; Kafka 3.x logs through slf4j 1.7 to (re)log4j 1.x.
EXTRA_ARTIFACTS = (
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
)
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

# Derived from this file so that no machine-specific path is written anywhere.
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"
KAFKA_HOME = CACHE_DIR / "kafka" / KAFKA_VERSION
LIBS_DIR = KAFKA_HOME / "libs"
MAVEN_REPO = CACHE_DIR / "m2"
# Written last by ensure_jars(): a half-finished download never counts as complete.
MARKER = LIBS_DIR / ".complete"

DEFAULT_STARTUP_TIMEOUT = 90.0
DEFAULT_STOP_TIMEOUT = 30.0


class KafkaBrokerError(RuntimeError):
    """The broker could not be fetched, formatted or started (the message says why)."""


# --------------------------------------------------------------------------- jars


def _pom() -> str:
    """A throwaway pom whose only job is to list the broker and its logging backend."""
    deps = [("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION), *EXTRA_ARTIFACTS]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tokentrail.local</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{dep_xml}
  </dependencies>
</project>
"""


def jars_ready(libs_dir: Path = LIBS_DIR) -> bool:
    """True when a previous fetch finished (the marker is written only after mvn succeeded)."""
    marker = libs_dir / ".complete"
    broker_jar = libs_dir / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar"
    return marker.is_file() and broker_jar.is_file()


def ensure_jars(libs_dir: Path = LIBS_DIR, *, quiet: bool = False) -> Path:
    """Download the broker's runtime jars once; a no-op when the cache is complete.

    The local Maven repository lives under ``.cache/m2`` rather than ``~/.m2`` so a CI cache of
    ``.cache/`` holds everything this step needs. A file lock keeps parallel test workers from
    running two downloads into the same folder.
    """
    libs_dir = Path(libs_dir)
    if jars_ready(libs_dir):
        return libs_dir
    if shutil.which("mvn") is None:
        raise KafkaBrokerError(
            "Kafka jars are not cached and `mvn` is not on PATH; install Maven "
            "(scripts/test does) or set TOKENTRAIL_TEST_KAFKA=host:port to use an existing broker"
        )
    home = libs_dir.parent
    home.mkdir(parents=True, exist_ok=True)
    with _file_lock(home / ".fetch.lock"):
        if jars_ready(libs_dir):  # another process finished while we waited
            return libs_dir
        shutil.rmtree(libs_dir, ignore_errors=True)
        (home / "pom.xml").write_text(_pom())
        cmd = [
            "mvn",
            "-q",
            "-B",
            f"-Dmaven.repo.local={MAVEN_REPO}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs_dir}",
        ]
        if not quiet:
            print(f"fetching Kafka {KAFKA_VERSION} jars into {libs_dir} ...", file=sys.stderr)
        proc = subprocess.run(cmd, cwd=home, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"mvn could not fetch Kafka {KAFKA_VERSION} (exit {proc.returncode}):\n"
                + _tail(proc.stdout + proc.stderr)
            )
        jars = sorted(p.name for p in libs_dir.glob("*.jar"))
        (libs_dir / ".complete").write_text("\n".join(jars) + "\n")
        if not jars_ready(libs_dir):
            raise KafkaBrokerError(f"mvn succeeded but {libs_dir} has no Kafka broker jar")
    return libs_dir


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock (POSIX only, like the rest of this script)."""
    import fcntl

    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- helpers


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1, distinct because all are held until returned."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _random_cluster_id() -> str:
    """Kafka's Uuid text form (URL-safe base64 of 16 bytes) made in Python: saves a JVM start.

    Kafka itself refuses ids starting with '-' (they look like command line flags).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _tail_file(path: Path, lines: int = 40) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except FileNotFoundError:
        return ""


def _error_lines(path: Path, limit: int = 12) -> str:
    """The log's ERROR/FATAL lines and exception causes: the root cause without the stack."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    keep = [ln for ln in lines if " ERROR " in ln or " FATAL " in ln or ln.startswith("Caused by:")]
    return "\n".join(keep[:limit])


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for_metadata(bootstrap: str, timeout: float = 30.0) -> None:
    """Block until a broker at ``bootstrap`` answers a metadata request with itself in it."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            if md.brokers:
                return
        except Exception as exc:  # KafkaException while the broker is still coming up
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"no metadata from {bootstrap} within {timeout:.0f}s (last error: {last})")


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    *,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> str:
    """Create a topic and wait until every partition has a leader, so producers can use it at once."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    admin.create_topics([topic], operation_timeout=timeout)[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (
            md
            and md.error is None
            and len(md.partitions) == partitions
            and all(p.leader >= 0 for p in md.partitions.values())
        ):
            return name
        time.sleep(0.1)
    raise TimeoutError(f"topic {name!r} on {bootstrap} had no leaders within {timeout:.0f}s")


# --------------------------------------------------------------------------- the broker


class KafkaBroker:
    """One KRaft broker+controller process on loopback ports, restartable at the same address.

    Ports and the data directory are chosen on the first ``start()`` and kept until ``close()``,
    so ``stop()``/``kill()`` followed by ``start()`` brings back the same broker with its data:
    tests use that to check that clients survive a broker outage.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        java: str | None = None,
        libs_dir: Path | str = LIBS_DIR,
        heap: tuple[str, str] = ("512m", "256m"),
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        extra_properties: dict[str, str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.controller_port = controller_port
        self.java = java or _default_java()
        self.libs_dir = Path(libs_dir)
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.extra_properties = dict(extra_properties or {})
        # Ports we chose ourselves may be re-chosen if another process takes one before the
        # JVM binds it (ports are only free "as of now"); ports given to us are never changed.
        self._ports_chosen_here = port is None and controller_port is None
        self.workdir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._stdout = None
        self._formatted = False

    # -- public API -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise KafkaBrokerError("no port chosen: the broker was never started, or was closed")
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_file(self) -> Path | None:
        return self.workdir / "logs" / "server.log" if self.workdir else None

    def start(self) -> KafkaBroker:
        """Start (or start again) and return once the broker answers metadata requests."""
        if self.running:
            return self
        ensure_jars(self.libs_dir, quiet=True)
        retries = 2 if self.workdir is None and self._ports_chosen_here else 0
        while True:
            try:
                self._start_once()
                return self
            except KafkaBrokerError as exc:
                if retries == 0 or "Address already in use" not in str(exc):
                    raise
                retries -= 1
                self._discard()  # someone took a port: start afresh on new ones

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Graceful shutdown (SIGTERM: Kafka flushes and closes its logs), SIGKILL if it hangs."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Die at once, like a crashed broker; data already written survives a later start()."""
        self._signal_and_wait(signal.SIGKILL, 10.0)

    def restart(self) -> KafkaBroker:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the broker for good and delete its data directory."""
        self.stop()
        self._discard()
        atexit.unregister(self._atexit)

    def __enter__(self) -> KafkaBroker:
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ is not called when __enter__ raises
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<KafkaBroker {self.host}:{self.port} {state} workdir={self.workdir}>"

    # -- internals --------------------------------------------------------------------------

    def _start_once(self) -> None:
        """Prepare and format on the first start only: later starts reuse ports and data."""
        if self.workdir is None:
            self._prepare()
        if not self._formatted:
            self._format()
            self._formatted = True
        self._launch()
        self._wait_ready()

    def _discard(self) -> None:
        """Forget the data directory (and ports we chose), so the next start is a fresh one."""
        self.kill()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self._formatted = False
        if self._ports_chosen_here:
            self.port = self.controller_port = None

    def _prepare(self) -> None:
        """Choose ports and write configuration into a fresh temporary directory."""
        if self.port is None or self.controller_port is None:
            a, b = free_ports(2)
            self.port = self.port or a
            self.controller_port = self.controller_port or b
        self.workdir = Path(tempfile.mkdtemp(prefix="tokentrail-kafka-"))
        (self.workdir / "logs").mkdir()
        (self.workdir / "data").mkdir()
        (self.workdir / "server.properties").write_text(self._server_properties())
        (self.workdir / "log4j.properties").write_text(self._log4j_properties())
        # The broker runs in its own process group (so Ctrl-C in pytest does not reach it):
        # make sure an interpreter exit without close() does not leave it behind.
        atexit.register(self._atexit)

    def _server_properties(self) -> str:
        p, c, h = self.port, self.controller_port, self.host
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{c}",
            "listeners": f"PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
            "advertised.listeners": f"PLAINTEXT://{h}:{p}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            # log.flush.* stay at Kafka's defaults (the OS page cache decides): a stopped or
            # killed broker process still leaves its writes in the page cache, so data survive.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A small machine (2 cores, -Xmx512m): fewer threads, and a 16 MiB instead of a
            # 128 MiB compaction buffer (the control topic is compacted).
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            # After kill() the restarted broker is refused (DUPLICATE_BROKER_REGISTRATION) until
            # its previous session expires: 9 s by default, ~14 s to ready with retry backoff.
            # Heartbeats here cross loopback inside one JVM, so a short session is safe.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
        }
        props.update(self.extra_properties)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _log4j_properties(self) -> str:
        log = self.workdir / "logs" / "server.log"
        return (
            "log4j.rootLogger=WARN, file\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={log}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            # One INFO line worth keeping: it marks each successful start in the log.
            "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
        )

    def _java_cmd(self, *args: str) -> list[str]:
        return [
            self.java,
            f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-Djava.awt.headless=true",
            "-cp",
            f"{self.libs_dir}/*",
            *args,
        ]

    def _format(self) -> None:
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _random_cluster_id(),
            "-c",
            str(self.workdir / "server.properties"),
            "--ignore-formatted",
        )
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except FileNotFoundError as exc:
            raise KafkaBrokerError(
                f"cannot run java ({self.java!r}): {exc}. Install a JDK 17 (scripts/test does) or set JAVA_HOME"
            ) from None
        except PermissionError as exc:
            raise KafkaBrokerError(f"cannot run java ({self.java!r}): {exc}") from None
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"Kafka StorageTool format failed with exit code {proc.returncode} "
                f"(java={self.java!r}):\n" + _tail(proc.stdout + proc.stderr)
            )

    def _launch(self) -> None:
        xmx, xms = self.heap
        cmd = self._java_cmd("kafka.Kafka", str(self.workdir / "server.properties"))
        cmd[1:1] = [f"-Xmx{xmx}", f"-Xms{xms}"]
        self._stdout = open(self.workdir / "logs" / "stdout.log", "ab")
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_stdout()
            raise KafkaBrokerError(f"cannot run java ({self.java!r}): {exc}") from None

    def _wait_ready(self) -> None:
        """Wait for the port, then for a metadata answer; fail early if the JVM exits."""
        start = time.monotonic()
        deadline = start + self.startup_timeout
        while not _port_open(self.host, self.port):
            self._check_alive(start)
            if time.monotonic() > deadline:
                self._fail_startup(f"port {self.port} did not open within {self.startup_timeout:.0f}s")
            time.sleep(0.05)
        while True:
            self._check_alive(start)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail_startup(f"no metadata answer within {self.startup_timeout:.0f}s")
            try:
                wait_for_metadata(self.bootstrap, timeout=min(2.0, remaining))
                return
            except TimeoutError:
                continue

    def _check_alive(self, start: float) -> None:
        code = self._proc.poll()
        if code is not None:
            self._proc = None
            self._close_stdout()
            self._fail_startup(
                f"the broker process exited with code {code} after {time.monotonic() - start:.1f}s",
                stop=False,
            )

    def _fail_startup(self, why: str, *, stop: bool = True) -> None:
        if stop:
            self.kill()
        raise KafkaBrokerError(
            f"Kafka broker on {self.bootstrap} failed to start: {why}.\n"
            f"--- errors in {self.log_file} ---\n{_error_lines(self.log_file)}\n"
            f"--- tail of {self.log_file} ---\n{_tail_file(self.log_file, 25)}\n"
            f"--- tail of process output ---\n{_tail_file(self.workdir / 'logs' / 'stdout.log')}"
        )

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._proc = None
        self._close_stdout()

    def _close_stdout(self) -> None:
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _default_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return "java"


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the Kafka jars into .cache/ (no-op when cached)")
    run = sub.add_parser("run", help="run a broker in the foreground until Ctrl-C")
    run.add_argument("--port", type=int, help="broker port (default: a free one)")
    run.add_argument("--controller-port", type=int, help="controller port (default: a free one)")
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch":
            t0 = time.monotonic()
            cached = jars_ready()
            libs = ensure_jars()
            n = len(list(libs.glob("*.jar")))
            how = "already cached" if cached else f"fetched in {time.monotonic() - t0:.1f}s"
            print(f"Kafka {KAFKA_VERSION}: {n} jars {how} in {libs.relative_to(REPO_ROOT)}")
            return 0

        broker = KafkaBroker(port=args.port, controller_port=args.controller_port)
        t0 = time.monotonic()
        with broker:
            print(f"Kafka {KAFKA_VERSION} ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
            print(f"logs: {broker.log_file}", file=sys.stderr)
            print(broker.bootstrap, flush=True)
            # Ctrl-C raises KeyboardInterrupt here; `with` then stops the broker and cleans up.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while broker.running:
                time.sleep(0.5)
            print("broker exited:\n" + _tail_file(broker.log_file), file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
