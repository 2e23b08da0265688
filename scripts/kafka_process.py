"""The broker process: one KRaft broker+controller JVM on loopback, and its lifecycle.

``start()`` prepares a data directory and ports on first use, formats the storage, launches
``kafka.Kafka`` and waits for a metadata answer; ``stop()``/``kill()`` end the process but keep
ports and data, so the next ``start()`` brings back the same broker; ``close()`` forgets both.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import kafka_admin
from kafka_config import CLIENT_LISTENER, Listener, log4j_properties, server_properties
from kafka_jars import LIBS_DIR, KafkaBrokerError, ensure_jars, tail

DEFAULT_STARTUP_TIMEOUT = 90.0
DEFAULT_STOP_TIMEOUT = 30.0


class KafkaBroker:
    """One KRaft broker+controller process on loopback ports, restartable at the same address.

    Ports and the data directory are chosen on the first ``start()`` and kept until ``close()``,
    so ``stop()``/``kill()`` followed by ``start()`` brings back the same broker with its data:
    tests use that to check that clients survive a broker outage. ``extra_listeners`` add client
    listeners beside the PLAINTEXT one (see kafka_config.Listener); ``address(name)`` gives theirs.
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
        extra_listeners: Sequence[Listener] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.controller_port = controller_port
        self.java = java or default_java()
        self.libs_dir = Path(libs_dir)
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.extra_properties = dict(extra_properties or {})
        self._requested_listeners = tuple(extra_listeners)
        self.extra_listeners = self._requested_listeners
        # Ports we chose ourselves may be re-chosen if another process takes one before the
        # JVM binds it (ports are only free "as of now"); ports given to us are never changed.
        self._ports_chosen_here = (
            port is None and controller_port is None and all(x.port is None for x in extra_listeners)
        )
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._formatted = False

    # -- public API -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT client listener."""
        return self.address(CLIENT_LISTENER)

    def address(self, listener: str) -> str:
        """``host:port`` of the client listener called ``listener`` (PLAINTEXT or an extra one)."""
        if listener == CLIENT_LISTENER:
            port = self.port
        else:
            ports = {x.name: x.port for x in self.extra_listeners}
            if listener not in ports:
                raise KafkaBrokerError(f"no listener {listener!r}; this broker has {[CLIENT_LISTENER, *ports]}")
            port = ports[listener]
        if port is None:
            raise KafkaBrokerError("no port chosen: the broker was never started, or was closed")
        return f"{self.host}:{port}"

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

    def __exit__(self, *exc: object) -> None:
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
            self.extra_listeners = self._requested_listeners

    def _choose_ports(self) -> None:
        """Fill in every port not given to us with a free one, all chosen in one go."""
        unset = [x for x in self.extra_listeners if x.port is None]
        wanted = (self.port is None) + (self.controller_port is None) + len(unset)
        if wanted == 0:
            return
        ports = iter(kafka_admin.free_ports(wanted))
        self.port = self.port or next(ports)
        self.controller_port = self.controller_port or next(ports)
        self.extra_listeners = tuple(
            x if x.port is not None else dataclasses.replace(x, port=next(ports)) for x in self.extra_listeners
        )

    def _prepare(self) -> None:
        """Choose ports and write configuration into a fresh temporary directory."""
        self._choose_ports()
        assert self.port is not None and self.controller_port is not None
        self.workdir = workdir = Path(tempfile.mkdtemp(prefix="tokentrail-kafka-"))
        (workdir / "logs").mkdir()
        (workdir / "data").mkdir()
        properties = server_properties(
            host=self.host,
            port=self.port,
            controller_port=self.controller_port,
            data_dir=workdir / "data",
            extra_listeners=self.extra_listeners,
            extra_properties=self.extra_properties,
        )
        (workdir / "server.properties").write_text(properties)
        (workdir / "log4j.properties").write_text(log4j_properties(workdir / "logs" / "server.log"))
        # The broker runs in its own process group (so Ctrl-C in pytest does not reach it):
        # make sure an interpreter exit without close() does not leave it behind.
        atexit.register(self._atexit)

    @property
    def _workdir(self) -> Path:
        if self.workdir is None:
            raise KafkaBrokerError("the broker has no data directory: it was never started, or was closed")
        return self.workdir

    def _java_cmd(self, *args: str) -> list[str]:
        return [
            self.java,
            f"-Dlog4j.configuration=file:{self._workdir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self._workdir / 'logs'}",
            "-Djava.awt.headless=true",
            "-cp",
            f"{self.libs_dir}/*",
            *args,
        ]

    def _format(self) -> None:
        config = str(self._workdir / "server.properties")
        cmd = self._java_cmd(
            "kafka.tools.StorageTool", "format", "-t", random_cluster_id(), "-c", config, "--ignore-formatted"
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
                f"(java={self.java!r}):\n" + tail(proc.stdout + proc.stderr)
            )

    def _launch(self) -> None:
        xmx, xms = self.heap
        cmd = self._java_cmd("kafka.Kafka", str(self._workdir / "server.properties"))
        cmd[1:1] = [f"-Xmx{xmx}", f"-Xms{xms}"]
        self._stdout = open(self._workdir / "logs" / "stdout.log", "ab")  # closed by _close_stdout()
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_stdout()
            raise KafkaBrokerError(f"cannot run java ({self.java!r}): {exc}") from None

    def _wait_ready(self) -> None:
        """Wait for the port, then for a metadata answer; fail early if the JVM exits."""
        assert self.port is not None
        start = time.monotonic()
        deadline = start + self.startup_timeout
        while not kafka_admin.port_open(self.host, self.port):
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
                kafka_admin.wait_for_metadata(self.bootstrap, timeout=min(2.0, remaining))
                return
            except TimeoutError:
                continue

    def _check_alive(self, start: float) -> None:
        code = self._proc.poll() if self._proc is not None else -1
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
        log = self._workdir / "logs" / "server.log"
        raise KafkaBrokerError(
            f"Kafka broker on {self.bootstrap} failed to start: {why}.\n"
            f"--- errors in {log} ---\n{error_lines(log)}\n"
            f"--- tail of {log} ---\n{tail_file(log, 25)}\n"
            f"--- tail of process output ---\n{tail_file(self._workdir / 'logs' / 'stdout.log')}"
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


def default_java() -> str:
    """``$JAVA_HOME/bin/java`` when it exists, else ``java`` from PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return "java"


def random_cluster_id() -> str:
    """Kafka's Uuid text form (URL-safe base64 of 16 bytes) made in Python: saves a JVM start.

    Kafka itself refuses ids starting with '-' (they look like command line flags).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def tail_file(path: Path | None, lines: int = 40) -> str:
    """The last lines of a log file, or nothing when it was never written."""
    if path is None:
        return ""
    try:
        return tail(path.read_text(errors="replace"), lines)
    except FileNotFoundError:
        return ""


def error_lines(path: Path, limit: int = 12) -> str:
    """The log's ERROR/FATAL lines and exception causes: the root cause without the stack."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    keep = [ln for ln in lines if " ERROR " in ln or " FATAL " in ln or ln.startswith("Caused by:")]
    return "\n".join(keep[:limit])
