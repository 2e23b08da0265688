"""Who owns what: the owners file (YAML, validated), the `owner` label on every alert, and routing.

The file (docs/owners.md; example: `dashboards/owners.example.yaml`) maps features, services and
tenants to teams; each team names one on-call receiver (PagerDuty, Slack, webhook or email) and
an escalation level. `dashboards build` / `push` / `alerts check` read the file given with
`--owners FILE`, else the one named by `TOKENTRAIL_OWNERS_FILE` (`resolve_owners`); without one every
alert is labelled `owner=unowned` and routing is unchanged.

Which owners apply is decided when a command starts, not when a module is imported: the commands
run inside `owners_in_effect(owners)`, and everything that builds rules, routes or dashboards asks
`current_owners()` at call time (the variable is the fallback). `rules_for(owners)` labels the rules
for any owners file, so one process can build for two files (the tests do).

How the label gets onto alerts: a rule's labels come from its query's string columns, so the
query is wrapped (`SELECT <its labels>, multiIf(...) AS owner, value FROM (<query>)`) with the
ownership rules as a ClickHouse expression over whichever of tenant/service/feature the query
returns. Names in the file are restricted to label-safe characters, so they need no escaping in
SQL and never hold Grafana's `$`. Secrets are never in the file: receivers name environment
variables (`$__env{VAR}` in the contact point, as for the built-in ones).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

if TYPE_CHECKING:  # alert_rules imports this module to label its rules: import it lazily here
    from .alert_rules import Rule

__all__ = [
    "OWNERS_ENV",
    "UNOWNED",
    "Owners",
    "Team",
    "load_owners",
    "resolve_owners",
    "current_owners",
    "owners_in_effect",
    "rules_for",
    "owner_expression",
    "owned_rules",
    "unowned_surface_rule",
    "contact_point_name",
    "who_is_paged",
    "routed_team",
]

OWNERS_ENV = "TOKENTRAIL_OWNERS_FILE"
UNOWNED = "unowned"
OWNED_COLUMNS = ("tenant", "service", "feature")
UNOWNED_SURFACE_UID = "tt-unowned-surface"

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")]
TeamName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
EnvVar = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PagerDuty(_Strict):
    type: Literal["pagerduty"]
    integration_key_env: EnvVar = Field(description="environment variable holding the Events API v2 key")
    service: str = Field("", max_length=256, description="the PagerDuty service's name, for people")


class Slack(_Strict):
    type: Literal["slack"]
    webhook_env: EnvVar = Field(description="environment variable holding the incoming-webhook URL")
    channel: Annotated[str, StringConstraints(pattern=r"^#[a-z0-9_-]{1,80}$")]


class Webhook(_Strict):
    type: Literal["webhook"]
    url_env: EnvVar


class Email(_Strict):
    type: Literal["email"]
    addresses: list[Annotated[str, StringConstraints(pattern=r"^[^@\s;$]+@[^@\s;$]+$")]] = Field(min_length=1)


Receiver = Annotated[PagerDuty | Slack | Webhook | Email, Field(discriminator="type")]


class Team(_Strict):
    """A team: its receiver, and what reaches it. `page`: all its alerts, pages included (it holds
    the pager for what it owns); `notify`: its warnings, while its pages go to the central pager."""

    name: TeamName
    receiver: Receiver
    escalation: Literal["page", "notify"] = "page"

    def receiver_summary(self) -> str:
        r = self.receiver
        if isinstance(r, PagerDuty):
            return f"PagerDuty {r.service or r.integration_key_env}"
        if isinstance(r, Slack):
            return f"Slack {r.channel}"
        if isinstance(r, Webhook):
            return f"webhook ${r.url_env}"
        return "email " + ", ".join(r.addresses)


class Ownership(_Strict):
    """One line of the file: a feature or a service (or a tenant alone), optionally within a tenant."""

    team: TeamName
    feature: Name | None = None
    service: Name | None = None
    tenant: Name | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> Ownership:
        if self.feature and self.service:
            raise ValueError("name a feature or a service, not both")
        if not (self.feature or self.service or self.tenant):
            raise ValueError("name a feature, a service or a tenant")
        return self

    @property
    def precedence(self) -> int:
        """Most specific first: feature+tenant, feature, service+tenant, service, tenant."""
        if self.feature:
            return 0 if self.tenant else 1
        if self.service:
            return 2 if self.tenant else 3
        return 4

    def columns(self) -> set[str]:
        return {c for c in OWNED_COLUMNS if getattr(self, c)}


class Owners(_Strict):
    version: Literal[1] = 1
    teams: list[Team] = Field(min_length=1)
    owners: list[Ownership] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Owners:
        # Messages start with the entry's path (`owners.2.team`): load_owners finds its line from it.
        names = [t.name for t in self.teams]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"teams.{i}.name {name!r} repeats an earlier team's name")
        for i, line in enumerate(self.owners):
            if line.team not in names:
                raise ValueError(f"owners.{i}.team names team {line.team!r}, which is not in teams: {sorted(names)}")
        keys = [(o.feature, o.service, o.tenant) for o in self.owners]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise ValueError(f"owners.{i}: the same feature/service/tenant is owned twice")
        return self

    def team(self, name: str) -> Team:
        return next(t for t in self.teams if t.name == name)

    def ordered(self) -> list[Ownership]:
        return sorted(self.owners, key=lambda o: (o.precedence, o.feature or "", o.service or "", o.tenant or ""))

    def owner_of(self, *, feature: str = "", service: str = "", tenant: str = "") -> Team | None:
        """The team that owns calls of that feature/service in that tenant (the same rule the SQL applies)."""
        given = {"feature": feature, "service": service, "tenant": tenant}
        for line in self.ordered():
            if all(given[c] == getattr(line, c) for c in line.columns()):
                return self.team(line.team)
        return None


def load_owners(path: str | Path) -> Owners:
    """Read and validate an owners file; ValueError says what is wrong and where (line and field)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
    except OSError as exc:
        raise ValueError(f"owners file {path} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"owners file {path} is not YAML: {exc}") from None
    try:
        return Owners.model_validate(doc)
    except ValidationError as exc:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        problems = []
        for error in exc.errors():
            loc, message = tuple(error["loc"]), error["msg"]
            if not loc and (named := re.match(r"Value error, ((?:teams|owners)\.\d+[\w.]*):? ", message)):
                loc = tuple(int(p) if p.isdigit() else p for p in named.group(1).split("."))
                message = message[named.end() :]
            problems.append(f"line {_line_of(root, loc)}, {'.'.join(map(str, loc)) or 'file'}: {message}")
        raise ValueError(f"owners file {path}: {'; '.join(problems)}") from None


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the YAML node a validation error's location names (its nearest present parent
    when the field is missing; a union's tag in the location, as in `receiver.slack.channel`, is skipped)."""
    if root is None:
        return 1
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            found = node.value[part]
        else:
            found = None
        node = found if found is not None else node
    return int(node.start_mark.line) + 1


# The owners a command chose (`owners_in_effect`); unset outside one, where the variable decides.
_IN_EFFECT: ContextVar[tuple[Owners | None] | None] = ContextVar("tokentrail_owners", default=None)


def resolve_owners(path: str | Path | None = None) -> Owners | None:
    """The owners a command uses: the file given (`--owners FILE`), else TOKENTRAIL_OWNERS_FILE's, else None.

    Raises ValueError naming the file, the line and the field when the file is missing or invalid.
    """
    if path is not None and str(path).strip():
        return load_owners(path)
    return _from_environment()


@contextmanager
def owners_in_effect(owners: Owners | None) -> Iterator[None]:
    """Within the block, `current_owners()` is `owners` (None: no owners file), whatever the environment says."""
    token = _IN_EFFECT.set((owners,))
    try:
        yield
    finally:
        _IN_EFFECT.reset(token)


def current_owners() -> Owners | None:
    """The owners in effect (`owners_in_effect`), else the file named by TOKENTRAIL_OWNERS_FILE, else None."""
    chosen = _IN_EFFECT.get()
    return chosen[0] if chosen is not None else _from_environment()


def _from_environment() -> Owners | None:
    path = os.environ.get(OWNERS_ENV, "").strip()
    if not path:
        return None
    stat = Path(path).stat() if Path(path).is_file() else None
    return _load_cached(path, stat.st_mtime_ns if stat else 0)


@lru_cache(maxsize=4)
def _load_cached(path: str, _mtime: int) -> Owners:
    return load_owners(path)


def owner_expression(owners: Owners | None, columns: set[str]) -> str:
    """ClickHouse SQL naming the owning team of a row that has `columns` (some of tenant/service/feature)."""
    if owners is None:
        return f"'{UNOWNED}'"
    arms = []
    for line in owners.ordered():
        if not line.columns() <= columns:
            continue
        condition = " AND ".join(f"{c} = '{getattr(line, c)}'" for c in OWNED_COLUMNS if getattr(line, c))
        arms += [condition, f"'{line.team}'"]
    return f"multiIf({', '.join(arms)}, '{UNOWNED}')" if arms else f"'{UNOWNED}'"


def _label_columns(sql: str) -> list[str]:
    """The label columns a rule query selects (as `alerting_provisioning` reads them; not imported
    from there because that module imports the owned RULES)."""
    head = sql.split("FROM", 1)[0].replace("SELECT", "", 1)
    names = [part.strip().split(" AS ")[-1].strip() for part in head.split(",")]
    return [n for n in names if n and n != "value" and n.isidentifier()]


def _wrap(sql: str, owners: Owners) -> str:
    labels = _label_columns(sql)
    expression = owner_expression(owners, set(labels) & set(OWNED_COLUMNS))
    head = ", ".join([*labels, f"{expression} AS owner", "value"])
    return f"SELECT {head} FROM (\n{sql}\n)"


def owned_rules(rules: tuple[Rule, ...], owners: Owners | None) -> tuple[Rule, ...]:
    """The rules with an `owner` label: from the query when there is an owners file, else `unowned`.

    With an owners file the "unowned model surface" rule is added. Give it rules without the label
    (`rules_for` does): a static `owner` label would sit beside the query's.
    """
    if owners is None:
        return tuple(dataclasses.replace(r, labels={**r.labels, "owner": UNOWNED}) for r in rules)
    wrapped = tuple(
        dataclasses.replace(
            r,
            labels={k: v for k, v in r.labels.items() if k != "owner"},
            sql=_wrap(r.sql, owners),
            extras=tuple((ref, _wrap(s, owners)) for ref, s in r.extras),
        )
        for r in rules
        if r.uid != UNOWNED_SURFACE_UID
    )
    return (*wrapped, unowned_surface_rule(owners))


def rules_for(owners: Owners | None) -> tuple[Rule, ...]:
    """Every provisioned rule, labelled with its owner from `owners` (what `build`, `push` and `check` use)."""
    from .alert_rules import UNLABELLED_RULES

    return owned_rules(UNLABELLED_RULES, owners)


def unowned_surface_rule(owners: Owners) -> Rule:
    """Warning: a feature had model calls in the last hour and nobody owns it."""
    from .alert_rules import CALLS, Rule
    from .spec import CALLS_TIME_FILTER

    expression = owner_expression(owners, {"tenant", "service", "feature"})
    return Rule(
        uid=UNOWNED_SURFACE_UID,
        title="Unowned model surface",
        group="spend",
        severity="warning",
        window_seconds=3600,
        threshold=0,
        dashboard="tokentrail-spend",
        panel="Cost by feature",
        sql=f"""SELECT tenant, feature, '{UNOWNED}' AS owner, toFloat64(count()) AS value
FROM {CALLS}
WHERE {CALLS_TIME_FILTER} AND {expression} = '{UNOWNED}'
GROUP BY tenant, feature""",
        summary="Feature {{ $labels.feature }} (tenant {{ $labels.tenant }}) made {{ $values.B.Value }} "
        "model calls in the last hour and has no owner",
        description="Nobody would be paged for this feature's alerts. Add it to the owners file "
        "(--owners FILE or TOKENTRAIL_OWNERS_FILE, docs/owners.md) and run `tokentrail dashboards build` / `push`.",
    )


def contact_point_name(team: str) -> str:
    return f"tokentrail-owner-{team}"


IntegrationType = Literal["pagerduty", "slack", "webhook", "email"]


def contact_point_settings(team: Team) -> tuple[IntegrationType, dict[str, Any]]:
    """(Grafana integration type, settings with `$__env{}` references) for a team's receiver."""
    r = team.receiver

    def env(name: str) -> str:
        return f"$__env{{{name}}}"

    if isinstance(r, PagerDuty):
        return "pagerduty", {
            "integrationKey": env(r.integration_key_env),
            "severity": "critical",
            "class": "llm-telemetry",
            "component": "tokentrail",
            "group": "{{ .CommonLabels.alertname }}",
        }
    if isinstance(r, Slack):
        return "slack", {
            "url": env(r.webhook_env),
            "recipient": r.channel,
            "title": '{{ template "slack.default.title" . }}',
        }
    if isinstance(r, Webhook):
        return "webhook", {"url": env(r.url_env), "httpMethod": "POST"}
    return "email", {"addresses": ";".join(r.addresses), "singleEmail": True}


def owner_routes(owners: Owners | None) -> list[dict[str, Any]]:
    """Child routes of tokentrail's branch, one per team, ahead of the central pager route."""
    if owners is None:
        return []
    routes = []
    for team in sorted(owners.teams, key=lambda t: t.name):
        matchers = [["owner", "=", team.name]]
        if team.escalation == "notify":
            matchers.append(["severity", "!=", "page"])
        routes.append(
            {
                "receiver": contact_point_name(team.name),
                "object_matchers": matchers,
                "group_by": ["alertname", "owner", "tenant", "trace_id"],
                "repeat_interval": "1h" if team.escalation == "page" else "4h",
            }
        )
    return routes


def routed_team(labels: dict[str, str], severity: str, owners: Owners | None) -> Team | None:
    """The team whose contact point gets the alert (`owner_routes`), or None: the central routes get it."""
    owner = labels.get("owner", UNOWNED)
    team = owners.team(owner) if owners is not None and owner in {t.name for t in owners.teams} else None
    return team if team is not None and (team.escalation == "page" or severity != "page") else None


def who_is_paged(labels: dict[str, str], severity: str, owners: Owners | None) -> str:
    """Where an alert goes, in words, following the same routes as the provisioned policy."""
    owner = labels.get("owner", UNOWNED)
    team = owners.team(owner) if owners is not None and owner in {t.name for t in owners.teams} else None
    if (routed := routed_team(labels, severity, owners)) is not None:
        verb = "PAGE" if severity == "page" else "warn"
        return f"{verb} -> {routed.name} ({routed.receiver_summary()})"
    central = "PAGE -> PagerDuty (central)" if severity == "page" else "warn -> chat (central)"
    return central + (f", owner {owner}" if team is not None else ", unowned")
