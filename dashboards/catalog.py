"""Every provisioned dashboard, in menu order, and the cross-dashboard pieces (links, change annotations)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .dash_ops import PII, PIPELINE
from .dash_quality import CHANGES, CHANGES_ANNOTATION, RELIABILITY, VARIANCE
from .dash_spend import LOOPS, SPEND
from .dash_trace import TRACE_DASHBOARD
from .spec import Dashboard, Panel

__all__ = ["DASHBOARDS", "dashboard", "built_dashboards", "all_panels", "DASHBOARD_UIDS"]

DASHBOARDS: tuple[Dashboard, ...] = (SPEND, RELIABILITY, LOOPS, VARIANCE, CHANGES, PII, PIPELINE, TRACE_DASHBOARD)
DASHBOARD_UIDS = {d.uid for d in DASHBOARDS}


def dashboard(uid: str) -> Dashboard:
    for d in DASHBOARDS:
        if d.uid == uid:
            return d
    raise KeyError(f"no dashboard {uid!r}; known: {sorted(DASHBOARD_UIDS)}")


def all_panels() -> Iterator[tuple[Dashboard, int, Panel]]:
    """(dashboard, panel id, panel) for every panel: ids as `build` assigns them."""
    for d in DASHBOARDS:
        for panel_id, panel in enumerate(d.panels, start=1):
            yield d, panel_id, panel


def built_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON. Change annotations go on every dashboard but Changes itself (it has the table)."""
    from .build import build_dashboard

    links = [(d.title.split(" / ", 1)[-1], d.uid) for d in DASHBOARDS]
    out = {}
    for d in DASHBOARDS:
        extra = () if d is CHANGES else (CHANGES_ANNOTATION,)
        out[d.uid] = build_dashboard(d, extra, [link for link in links if link[1] != d.uid])
    return out
