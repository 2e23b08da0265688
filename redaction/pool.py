"""Worker processes for analysis: the multi-core option for a redaction-bound stream worker.

Only detection is shared out (the CPU cost: regexes and NER); the calling process analyses one
share itself instead of idling. The key never leaves it: workers return spans, and the caller turns
them into tokens and caches the results, so one cache serves every worker. Workers are spawned, not
forked, because the host process (faust, confluent-kafka) runs threads that fork would copy in an
undefined state; each worker loads the model once, at pool start.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from .config import RedactionConfig
from .secret_rules import Finding

if TYPE_CHECKING:
    from .detector import Detector

__all__ = ["WorkerPool"]

_detector: Detector | None = None


def _init(kwargs: dict[str, Any]) -> None:
    global _detector
    from .detector import Detector

    _detector = Detector(RedactionConfig(**kwargs))


def _ready(_: int) -> bool:
    return _detector is not None


def _find(texts: list[str]) -> list[list[Finding]]:
    return _detector.find_many(texts)  # type: ignore[union-attr]


class WorkerPool:
    """Analysis on `processes` cores: the calling process takes one share of each batch, and
    `processes - 1` spawned workers, each with its own Detector (model loaded now), the others."""

    def __init__(self, config: RedactionConfig, processes: int, local: Detector) -> None:
        kwargs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        kwargs["thresholds"] = dict(kwargs["thresholds"])  # a mappingproxy does not pickle
        self.processes, self._local = processes, local
        workers = processes - 1
        self._executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init, initargs=(kwargs,)
        )
        if not all(self._executor.map(_ready, range(workers * 2))):  # loads every worker's model now
            raise RuntimeError("redaction worker processes failed to start")

    def find_many(self, texts: list[str]) -> list[list[Finding]]:
        """Spans per text, in order; texts are split into one contiguous run per worker by size."""
        total = sum(map(len, texts)) or 1
        runs: list[list[str]] = []
        current: list[str] = []
        size = 0
        for text in texts:
            current.append(text)
            size += len(text)
            if size >= total / self.processes * (len(runs) + 1) and len(runs) < self.processes - 1:
                runs.append(current)
                current = []
        runs.append(current)
        runs = [r for r in runs if r]
        futures = [self._executor.submit(_find, run) for run in runs[1:]]
        out: list[list[Finding]] = self._local.find_many(runs[0]) if runs else []
        for future in futures:
            out.extend(future.result())
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
