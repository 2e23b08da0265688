"""Deterministic synthetic v1 wire traffic, with the ground truth of what is hidden in it.

The input of `tokentrail demo`, `tokentrail generate N`, tests and benchmarks; see `traffic` for
what the traffic contains and how a seed fixes every byte.
"""

from .traffic import (
    DEFAULT_START,
    LEGIT_KINDS,
    LOOP_KINDS,
    MALFORMED_KINDS,
    GeneratorConfig,
    Traffic,
    Truth,
    generate,
    iter_lines,
    main,
)

__all__ = [
    "DEFAULT_START",
    "LEGIT_KINDS",
    "LOOP_KINDS",
    "MALFORMED_KINDS",
    "GeneratorConfig",
    "Traffic",
    "Truth",
    "generate",
    "iter_lines",
    "main",
]
