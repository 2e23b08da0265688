"""Grafana for tokentrail: generated dashboards and alert rules, push to a Grafana, and alert evaluation.

Public API (loaded lazily, so importing a submodule does not pull grafana-foundation-sdk):

- `evaluate_alerts(client, now=None) -> list[FiringAlert]`: every provisioned rule against ClickHouse.
- `render_alerts(alerts, now=None) -> str`: the terminal summary (`tokentrail demo` ends with it).
- `main(argv) -> int`: `dashboards build|push` and `alerts check`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_alerts", "render_alerts", "FiringAlert", "main"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate_alerts", "render_alerts", "FiringAlert"):
        from . import evaluate

        return getattr(evaluate, name)
    if name == "main":
        from tokentrail.stream.cli import main  # the one `tokentrail` command line

        return main
    raise AttributeError(f"module 'tokentrail.dashboards' has no attribute {name!r}")
