"""What `tokentrail dashboards build|push` and `tokentrail alerts check` do (parsed by `tokentrail.stream.cli.grafana`).

Exit codes: 0 fine, 1 generated files out of date (`build --check`) or alerts firing
(`check --fail-on-firing`); a configuration error raises ValueError naming the fix (the command
line prints it and exits 2).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import IO

__all__ = ["build_provisioning", "push_to_grafana", "check_alerts"]


def build_provisioning(*, check_only: bool, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Regenerate the provisioning files from the code, or with `check_only` list the stale ones (exit 1 if any)."""
    from .provisioning_files import PROVISIONING_DIR, check, write

    out, err = out or sys.stdout, err or sys.stderr

    if check_only:
        stale = check()
        for rel in stale:
            print(f"out of date: {PROVISIONING_DIR / rel}", file=out)
        if stale:
            print("run `tokentrail dashboards build` and commit the result", file=err)
        return 1 if stale else 0
    changed = write()
    print(
        f"{len(changed)} file(s) written under {PROVISIONING_DIR}" + "".join(f"\n  {rel}" for rel in changed), file=out
    )
    return 0


def push_to_grafana(
    *,
    grafana_url: str,
    token: str | None,
    timeout: float,
    tenant: str | None = None,
    reader_user: str | None = None,
    out: IO[str] | None = None,
) -> int:
    """Create or update folder, datasource, dashboards and alerting in the Grafana at `grafana_url`.

    `token`: a service-account token, else $TOKENTRAIL_GRAFANA_TOKEN, else the URL's credentials.
    `tenant`: push into that tenant's own organisation instead, the datasource logging in as
    `reader_user`, the tenant's ClickHouse reader (dashboards/tenant_push.py).
    """
    from grafana_client.api import GrafanaApi

    from .push import push
    from .tenant_push import push_tenant

    out = out or sys.stdout
    if (tenant is None) != (reader_user is None):
        raise ValueError("--tenant and --reader-user go together: the tenant's organisation reads as its own reader")
    api = GrafanaApi.from_url(
        grafana_url, credential=token or os.environ.get("TOKENTRAIL_GRAFANA_TOKEN"), timeout=timeout
    )
    if tenant is not None and reader_user is not None:
        report = push_tenant(api, tenant, reader_user=reader_user, env=os.environ)
    else:
        report = push(api)
    print(report.render(), end="", file=out)
    return 0


def parse_moment(text: str | None) -> datetime | None:
    """An ISO-8601 time (UTC when it names no zone), or None for None."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at expects an ISO-8601 time like 2026-11-20T10:00:00Z, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_alerts(
    *, dsn: str | None, at: datetime | None, as_json: bool, fail_on_firing: bool, out: IO[str] | None = None
) -> int:
    """Evaluate every alert rule against the ClickHouse at `dsn` as of `at` (default now); print what fires."""
    from tokentrail.sinks import connect

    from .evaluate import evaluate_alerts, render_alerts

    out = out or sys.stdout
    now = at or datetime.now(UTC)
    alerts = evaluate_alerts(connect(dsn), now)
    if as_json:
        fields = ("uid", "title", "severity", "labels", "annotations", "values")
        json.dump([{f: getattr(a, f) for f in fields} for a in alerts], out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        print(render_alerts(alerts, now), end="", file=out)
    return 1 if alerts and fail_on_firing else 0
