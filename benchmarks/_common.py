"""What the benchmarks share: a Kafka broker, CPU time from /proc, medians and percentiles, tables.

Benchmarks run as scripts (``.venv/bin/python benchmarks/<name>.py``), so this folder is on
``sys.path`` and they import this module by name.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
_T = TypeVar("_T")


# --------------------------------------------------------------------------------------- Kafka


def use_scripts() -> None:
    """Make scripts/ importable by module name (kafka_broker and its parts live there)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[str]:
    """``bootstrap`` when given, else a local broker (scripts/kafka_broker.py) for the duration."""
    if bootstrap:
        yield bootstrap
        return
    use_scripts()
    from kafka_broker import KafkaBroker

    log("starting a local Kafka broker (scripts/kafka_broker.py)")
    with KafkaBroker() as broker:
        yield broker.bootstrap


def new_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    """A fresh, uniquely named topic whose partitions all have a leader."""
    use_scripts()
    from kafka_broker import create_topic

    return create_topic(bootstrap, f"{prefix}-{uuid.uuid4().hex[:8]}", partitions)


# --------------------------------------------------------------------------------------- CPU


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` (all its threads); 0 once it is gone."""
    try:
        # Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def descendants(pid: int) -> list[int]:
    """The process ids of ``pid``'s children, their children and so on, as of now."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            for child in map(int, children.read_text().split()):
                found += [child, *descendants(child)]
        except (OSError, ValueError):
            continue
    return found


# --------------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def median_item(items: Sequence[_T], key: Callable[[_T], float]) -> _T:
    """The item whose ``key`` is the median (the upper one of an even count): a whole run, not a mix of runs."""
    return sorted(items, key=key)[len(items) // 2]


class TimedClient:
    """A clickhouse-connect client wrapper that adds up the time spent inside ``insert``.

    The sink's own time is then ``write_batch`` minus this: value conversion in Python.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self.insert_s = 0.0

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self._real.insert(*args, **kwargs)
        finally:
            self.insert_s += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# --------------------------------------------------------------------------------------- output


def log(message: str) -> None:
    """Progress on stderr with the time, so stdout holds only results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def print_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = ()) -> None:
    """Columns as wide as their widest cell, a rule under the header; ``right`` columns right-aligned."""
    body = [tuple(row) for row in rows]
    widths = [max(len(row[i]) for row in [tuple(header), *body]) for i in range(len(header))]
    right_aligned = set(right)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in right_aligned else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in body:
        print(line(row))


def machine() -> str:
    """Cores, CPU model and Python version: what a figure was measured on."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def versions(*distributions: str) -> str:
    """``name version`` of each installed distribution, comma-separated."""
    from importlib import metadata

    return ", ".join(f"{name} {metadata.version(name)}" for name in distributions)
