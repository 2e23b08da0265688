"""The Kafka broker's jars, fetched once from Maven Central into the git-ignored ``.cache/``.

Only the standard library is used, so ``python scripts/kafka_broker.py fetch`` works before the
project's virtualenv exists (scripts/test runs it as its setup step).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


class KafkaBrokerError(RuntimeError):
    """The broker could not be fetched, formatted or started (the message says why)."""


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a command's output: enough to show why it failed."""
    return "\n".join(text.strip().splitlines()[-lines:])


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
                + tail(proc.stdout + proc.stderr)
            )
        jars = sorted(p.name for p in libs_dir.glob("*.jar"))
        (libs_dir / ".complete").write_text("\n".join(jars) + "\n")
        if not jars_ready(libs_dir):
            raise KafkaBrokerError(f"mvn succeeded but {libs_dir} has no Kafka broker jar")
    return libs_dir


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX only, like the rest of these scripts)."""
    import fcntl

    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
