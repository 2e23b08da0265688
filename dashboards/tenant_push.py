"""`tokentrail dashboards push --tenant T`: one Grafana organisation per tenant, reading as that tenant.

Why an organisation and not a folder with permissions: a Grafana datasource belongs to an
organisation, and folder permissions hide dashboards, not datasources. Any Editor can query the
organisation's ClickHouse datasource from Explore or a new panel, with any SQL. So each tenant
gets an organisation of its own (`tokentrail <tenant>`), holding the same folder, dashboards and
alerting as the main push, with a datasource that logs in to ClickHouse as that tenant's reader
(`tokentrail.sinks.reader_user_sql(user, tenant=T, ...)`). The row policies of the reader's role
return that tenant's rows only, whatever SQL a panel runs (docs/security.md, docs/storage.md).

Creating organisations is a Grafana server administrator's right: push with the admin's basic
auth in the URL (a service-account token belongs to one organisation and cannot create another).
Adding the tenant's people to its organisation stays with whoever manages Grafana users.

Of the owners file, the tenant's organisation gets only the lines for every tenant or for that one
(and their teams): another tenant's teams, receivers and even its name stay out of its dashboards
and contact points. Its alerts only ever see its own rows, so no route is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tokentrail.sinks.identifiers import check_identifier
from tokentrail.sinks.privileges import tenant_role

from .owners import Owners, current_owners, owners_in_effect
from .push import PushReport, push

__all__ = ["api_in_org", "ensure_tenant_org", "org_name", "push_tenant", "tenant_owners"]


def org_name(tenant: str) -> str:
    """The Grafana organisation of a tenant."""
    return f"tokentrail {tenant}"


def ensure_tenant_org(api: Any, tenant: str) -> tuple[int, bool]:
    """The id of the tenant's organisation, created if missing; and whether it was created."""
    name = org_name(tenant)
    try:
        return int(api.organization.find_organization(name)["id"]), False
    except Exception as exc:  # grafana-client raises GrafanaClientError(404) for "not found"
        if getattr(exc, "status_code", None) != 404:
            raise
    return int(api.organization.create_organization({"name": name})["orgId"]), True


def api_in_org(api: Any, org_id: int) -> Any:
    """A client like `api` (same server, credentials, timeout) whose requests act in organisation `org_id`."""
    from grafana_client.api import GrafanaApi

    c = api.client
    return GrafanaApi(
        c.auth,
        host=c.url_host,
        port=c.url_port,
        url_path_prefix=c.url_path_prefix,
        protocol=c.url_protocol,
        verify=c.verify,
        timeout=c.timeout,
        organization_id=org_id,
    )


def tenant_owners(owners: Owners | None, tenant: str) -> Owners | None:
    """The part of the owners file a tenant's organisation may see: lines for any tenant or for `tenant`,
    and the teams they name (None when no line applies)."""
    if owners is None:
        return None
    lines = [line for line in owners.owners if line.tenant in (None, tenant)]
    named = {line.team for line in lines}
    teams = [team for team in owners.teams if team.name in named]
    return Owners(teams=teams, owners=lines) if teams else None


def push_tenant(
    api: Any,
    tenant: str,
    *,
    reader_user: str,
    env: Mapping[str, str],
    in_org: Callable[[Any, int], Any] = api_in_org,
) -> PushReport:
    """Push everything into the tenant's organisation, the datasource logging in as `reader_user`
    (the tenant's ClickHouse reader; its password from $GRAFANA_CLICKHOUSE_PASSWORD)."""
    tenant_role(tenant)  # the tenant names a reader role: the same alphabet, checked before any request
    check_identifier(reader_user, "reader user")
    org_id, created = ensure_tenant_org(api, tenant)
    with owners_in_effect(tenant_owners(current_owners(), tenant)):
        report = push(in_org(api, org_id), {**env, "GRAFANA_CLICKHOUSE_USER": reader_user})
    (report.created if created else report.updated).insert(0, f"organisation {org_name(tenant)!r} (id {org_id})")
    return report
