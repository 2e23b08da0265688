"""Per-trace detectors that run inside the pipeline (token-spend loops and the spend guard)."""

from .loops import LoopConfig, LoopDetector, detection_id, split_state_key, state_key

__all__ = ["LoopConfig", "LoopDetector", "detection_id", "split_state_key", "state_key"]
