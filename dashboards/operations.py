"""What `tokentrail dashboards build|push` and `tokentrail alerts check` do (parsed by `tokentrail.stream.cli.grafana`).

Exit codes: 0 fine, 1 generated files out of date (`build --check`) or alerts firing
(`check --fail-on-firing`); a configuration error raises ValueError naming the fix (the command
line prints it and exits 2).

Each takes `owners_file` (`--owners FILE`; default TOKENTRAIL_OWNERS_FILE, docs/owners.md), read
and validated before anything else happens, and does its work with those owners in effect: the
rules' owner labels, the owners' contact points and routes, the dashboards' owner columns.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .owners import current_owners, owners_in_effect, resolve_owners

__all__ = ["build_provisioning", "push_to_grafana", "check_alerts"]


def build_provisioning(
    *,
    check_only: bool,
    owners_file: str | Path | None = None,
    root: Path | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Regenerate the provisioning files from the code, or with `check_only` list the stale ones (exit 1 if any).

    `root`: where the files go (default: the package's `provisioning/`, which is committed built without owners).
    """
    owners = resolve_owners(owners_file)
    with owners_in_effect(owners):
        from .provisioning_files import PROVISIONING_DIR

        return _build(check_only, root or PROVISIONING_DIR, out or sys.stdout, err or sys.stderr)


def _build(check_only: bool, root: Path, out: IO[str], err: IO[str]) -> int:
    from .provisioning_files import check, write

    if check_only:
        stale = check(root)
        for rel in stale:
            print(f"out of date: {root / rel}", file=out)
        if stale:
            print("run `tokentrail dashboards build` and commit the result", file=err)
        return 1 if stale else 0
    changed = write(root)
    print(f"{len(changed)} file(s) written under {root}" + "".join(f"\n  {rel}" for rel in changed), file=out)
    owners = current_owners()
    print(
        f"owners: {len(owners.teams)} team(s), {len(owners.owners)} ownership line(s)"
        if owners is not None
        else "owners: none (every alert is owner=unowned; --owners FILE or $TOKENTRAIL_OWNERS_FILE to route by owner)",
        file=out,
    )
    return 0


def push_to_grafana(
    *,
    grafana_url: str,
    token: str | None,
    timeout: float,
    tenant: str | None = None,
    reader_user: str | None = None,
    owners_file: str | Path | None = None,
    out: IO[str] | None = None,
) -> int:
    """Create or update folder, datasource, dashboards and alerting in the Grafana at `grafana_url`.

    `token`: a service-account token, else $TOKENTRAIL_GRAFANA_TOKEN, else the URL's credentials.
    `tenant`: push into that tenant's own organisation instead, the datasource logging in as
    `reader_user`, the tenant's ClickHouse reader (dashboards/tenant_push.py).
    """
    out = out or sys.stdout
    if (tenant is None) != (reader_user is None):
        raise ValueError("--tenant and --reader-user go together: the tenant's organisation reads as its own reader")
    owners = resolve_owners(owners_file)  # a bad owners file stops the push before any request
    # Imports inside the block: modules that label rules when imported then see these owners too.
    with owners_in_effect(owners):
        from grafana_client.api import GrafanaApi

        from .push import push
        from .tenant_push import push_tenant

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
    *,
    dsn: str | None,
    at: datetime | None,
    as_json: bool,
    fail_on_firing: bool,
    owners_file: str | Path | None = None,
    out: IO[str] | None = None,
) -> int:
    """Evaluate every alert rule against the ClickHouse at `dsn` as of `at` (default now); print what fires
    and who would be paged for it: the route (`PAGE -> support-ai (PagerDuty Support AI)`) and, with an
    owners file, the contact point per alert and each owner's owner -> contact point -> receiver
    (JSON: `route` and `contact_point` per alert)."""
    owners = resolve_owners(owners_file)  # a bad owners file stops before the store is opened
    with owners_in_effect(owners):
        from tokentrail.sinks import connect

        from .evaluate import contact_point_of, evaluate_alerts, render_alerts, render_routing
        from .owners import rules_for, who_is_paged

        out = out or sys.stdout
        now = at or datetime.now(UTC)
        alerts = evaluate_alerts(connect(dsn), now, rules_for(owners))
        if as_json:
            fields = ("uid", "title", "severity", "labels", "annotations", "values")
            found = [
                {
                    **{f: getattr(a, f) for f in fields},
                    "route": who_is_paged(a.labels, a.severity, owners),
                    "contact_point": contact_point_of(a.labels, a.severity, owners),
                }
                for a in alerts
            ]
            json.dump(found, out, indent=2, sort_keys=True)
            out.write("\n")
        else:
            print(render_alerts(alerts, now), end="", file=out)
            if owners is not None:
                print(render_routing(owners), end="", file=out)
    return 1 if alerts and fail_on_firing else 0
