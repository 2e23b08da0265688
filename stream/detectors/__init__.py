"""Per-trace detectors that run inside the pipeline (token-spend loops and the spend guard)."""

from .loops import LoopConfig, LoopDetector

__all__ = ["LoopConfig", "LoopDetector"]
