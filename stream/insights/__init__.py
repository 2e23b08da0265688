"""Insights computed from what is already stored in `calls`: output variance, silent changes, budgets.

Why store jobs and not per-event state: these insights are keyed by (tenant, feature, ...), not by
trace, so with several workers each one would see only part of a group. Computed from the store
they are exact, idempotent, restart-proof, and the same in the embedded runner and the faust
worker (whose insights leader calls `run_from_watermark` on a timer: each run covers the windows
since the stored watermark, see `watermark`).

The metric modules (`variance`, `changes`, `budgets`) are pure functions over plain data; only
`jobs` (query, compute, write), `first_seen`, `spend` and `watermark` (the job's state in the store) and
`report` (read back) touch ClickHouse.
"""

from .budgets import Breach, BudgetConfig, BudgetRule, SpendBucket, evaluate_budgets, load_budgets
from .changes import KINDS, Change, ChangeKey, Observation, detect_changes, observations_from_calls
from .jobs import InsightResult, closing_time, run_from_watermark, run_insights
from .variance import CallSample, GroupAggregate, aggregate, mean_pairwise_similarity, variance_stats
from .watermark import read_watermark

__all__ = [
    "run_insights",
    "run_from_watermark",
    "closing_time",
    "read_watermark",
    "InsightResult",
    "CallSample",
    "GroupAggregate",
    "aggregate",
    "mean_pairwise_similarity",
    "variance_stats",
    "KINDS",
    "Change",
    "ChangeKey",
    "Observation",
    "detect_changes",
    "observations_from_calls",
    "BudgetConfig",
    "BudgetRule",
    "SpendBucket",
    "Breach",
    "evaluate_budgets",
    "load_budgets",
]
