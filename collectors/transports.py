"""Where encoded events go: a small interface and the transports that need no broker.

A transport receives batches of `(key, value)` pairs from the collector's background thread, never
from the caller's. Kafka lives in `kafka.py`; here are in-memory (tests), JSON Lines file (offline
capture that feeds `tokentrail replay`) and console (debugging).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

Record = tuple[str, bytes]  # (Kafka key = trace_id, UTF-8 JSON of one event)


class Transport(Protocol):
    """Ships encoded events. `export` must not block for long; failures are counted, not raised."""

    def export(self, batch: Sequence[Record]) -> None: ...

    def flush(self, timeout: float) -> bool: ...

    def close(self, timeout: float) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class InMemoryTransport:
    """Keeps every event in a list, decoded; for tests and for code that wants to look at its own telemetry."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._lock = threading.Lock()

    def export(self, batch: Sequence[Record]) -> None:
        with self._lock:
            self.records.extend(batch)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(value) for _, value in self.records]

    def flush(self, timeout: float) -> bool:
        return True

    def close(self, timeout: float) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"delivered": len(self.records)}


class JsonlFileTransport:
    """Appends events as JSON Lines to a file: an offline capture that `tokentrail replay` reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = None
        self._delivered = 0

    def export(self, batch: Sequence[Record]) -> None:
        if self._file is None:
            self._file = open(self.path, "ab")
        self._file.write(b"".join(value + b"\n" for _, value in batch))
        self._delivered += len(batch)

    def flush(self, timeout: float) -> bool:
        if self._file is not None:
            self._file.flush()
        return True

    def close(self, timeout: float) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def stats(self) -> dict[str, Any]:
        return {"delivered": self._delivered}


class ConsoleTransport:
    """Prints each event as one JSON line on stderr, for debugging an integration by eye."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._delivered = 0

    def export(self, batch: Sequence[Record]) -> None:
        for _, value in batch:
            self._stream.write(value.decode("utf-8") + "\n")
        self._delivered += len(batch)

    def flush(self, timeout: float) -> bool:
        self._stream.flush()
        return True

    def close(self, timeout: float) -> None:
        self.flush(timeout)

    def stats(self) -> dict[str, Any]:
        return {"delivered": self._delivered}
