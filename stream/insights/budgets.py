"""Spend budgets per tenant and per feature over rolling hour and day windows.

Configuration (YAML or JSON)::

    step_seconds: 300          # optional: how often a rolling window is evaluated (divides 3600)
    budgets:
      - {scope: tenant, key: "*", window: hour, warning: 5, critical: 20}
      - {scope: tenant, key: acme, window: day, critical: 250}
      - {scope: feature, key: code-review, window: day, warning: 100, critical: 200}

``key: "*"`` applies to every tenant (or feature) that has no rule of its own for that window;
a named key overrides it. Feature budgets add up the feature's spend across tenants. Amounts are
USD; at least one of warning / critical is required, and warning < critical.

Windows: rolling, evaluated on a grid. Spend is bucketed by ``step_seconds`` (5 minutes by
default); the window ending at every bucket boundary t covers [t - 1h, t) or [t - 1d, t). Why
not fixed calendar buckets: a burst from 09:50 to 10:10 splits across two hour buckets and can
stay under both, while a rolling window sees all of it. Why not "the window ending at each run":
that depends on when the job happens to run, so a replay, a restart or two workers would give
different answers. On a fixed grid the answer depends only on the stored calls.

Breaches: a crossing is a window end whose spend reached the threshold (>=) while the window one
step earlier had not. An episode starts at a crossing with no other crossing in the window length
before it, and is one row and one alert however long the spend stays above, and however often it
wobbles around the threshold meanwhile (without that debounce, spend hovering at a budget would
page every few minutes). Its id derives from (scope, key, window, level, threshold, window end),
so evaluating the same grid points again yields the same ids: the job is idempotent and can run
incrementally. Both rules look back a bounded distance, which is why the spend needed to
evaluate window ends from t on starts at t - 2 x window - step (`lookback`).
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .changes import iso

__all__ = [
    "WINDOWS",
    "SCOPES",
    "LEVELS",
    "BudgetRule",
    "BudgetConfig",
    "load_budgets",
    "SpendBucket",
    "Breach",
    "evaluate_budgets",
    "evaluate_series",
    "spend_series",
]

WINDOWS = {"hour": 3600, "day": 86400}
SCOPES = ("tenant", "feature")
LEVELS = ("warning", "critical")
BREACH_NAMESPACE = uuid.UUID("0d3f8b52-9c1e-4a7b-8e65-3a2c1b9d7f40")
_RULE_FIELDS = {"scope", "key", "window", "warning", "critical"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BudgetRule:
    scope: str
    key: str
    window: str
    warning: Decimal | None = None
    critical: Decimal | None = None

    def levels(self) -> list[tuple[str, Decimal]]:
        return [
            (level, amount)
            for level, amount in (("warning", self.warning), ("critical", self.critical))
            if amount is not None
        ]


@dataclass(frozen=True)
class BudgetConfig:
    """Validated budget rules. Build with `BudgetConfig.from_dict` or `load_budgets(path)`."""

    rules: tuple[BudgetRule, ...]
    step_seconds: int = 300
    source: str = field(default="<config>", compare=False)

    def __post_init__(self) -> None:
        step = self.step_seconds
        if isinstance(step, bool) or not isinstance(step, int) or step < 1 or 3600 % step:
            raise ValueError(
                f"{self.source}: step_seconds must be a whole number of seconds dividing 3600 "
                f"(e.g. 60, 300, 900), got {step!r}"
            )

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> BudgetConfig:
        """Validate loudly: every error names the entry, the field and the fix."""
        unknown = set(data) - {"budgets", "step_seconds"} if isinstance(data, dict) else set()
        if unknown:
            raise ValueError(f"{source}: unknown top-level key(s) {sorted(unknown)}; allowed: budgets, step_seconds")
        if not isinstance(data, dict) or not isinstance(data.get("budgets"), list):
            raise ValueError(
                f"{source}: expected a mapping with a 'budgets' list, e.g. "
                "budgets: [{scope: tenant, key: '*', window: hour, warning: 5, critical: 20}]"
            )
        rules: list[BudgetRule] = []
        seen: dict[tuple[str, str, str], int] = {}
        for index, item in enumerate(data["budgets"]):
            rule = _rule(item, f"{source}: budgets[{index}]")
            ident = (rule.scope, rule.key, rule.window)
            if ident in seen:
                raise ValueError(
                    f"{source}: budgets[{index}] repeats scope={rule.scope} key={rule.key!r} window={rule.window} "
                    f"of budgets[{seen[ident]}]; merge them into one entry"
                )
            seen[ident] = index
            rules.append(rule)
        return cls(tuple(rules), data.get("step_seconds", 300), source)

    def rule_for(self, scope: str, key: str, window: str) -> BudgetRule | None:
        """The named rule for `key`, else the "*" rule, else None."""
        wildcard = None
        for rule in self.rules:
            if rule.scope == scope and rule.window == window:
                if rule.key == key:
                    return rule
                if rule.key == "*":
                    wildcard = rule
        return wildcard

    @property
    def lookback(self) -> timedelta:
        """How much spend before the first evaluated window end the evaluation needs (see above)."""
        return timedelta(seconds=2 * max((WINDOWS[r.window] for r in self.rules), default=0) + self.step_seconds)


def _amount(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"{where} must be a USD amount like 12.5, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where} must be a USD amount like 12.5, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{where} must be a positive USD amount, got {value!r}")
    return amount


def _rule(item: Any, where: str) -> BudgetRule:
    if not isinstance(item, dict):
        raise ValueError(
            f"{where} must be a mapping like {{scope: tenant, key: '*', window: hour, warning: 5, critical: 20}}, "
            f"got {item!r}"
        )
    unknown = set(item) - _RULE_FIELDS
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {sorted(unknown)}; allowed: {sorted(_RULE_FIELDS)}")
    scope, key, window = item.get("scope"), item.get("key"), item.get("window")
    if scope not in SCOPES:
        raise ValueError(f"{where}.scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not isinstance(key, str) or not key:
        raise ValueError(f'{where}.key must be a {scope} name, or "*" for every {scope}; got {key!r}')
    if window not in WINDOWS:
        raise ValueError(f"{where}.window must be one of {', '.join(WINDOWS)}, got {window!r}")
    warning, critical = (
        _amount(item.get("warning"), f"{where}.warning"),
        _amount(item.get("critical"), f"{where}.critical"),
    )
    if warning is None and critical is None:
        raise ValueError(f"{where} needs a warning and/or a critical amount in USD")
    if warning is not None and critical is not None and warning >= critical:
        raise ValueError(f"{where}: warning ({warning}) must be below critical ({critical}); swap or fix them")
    return BudgetRule(scope, key, window, warning, critical)


def load_budgets(path: str | Path) -> BudgetConfig:
    """Read a budget file (.yaml/.yml or .json); errors name the file and the fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read budget file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"budget file {path} is not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"budget file {path} is not valid YAML: {exc}") from None
    return BudgetConfig.from_dict(data, str(path))


@dataclass(frozen=True, slots=True)
class SpendBucket:
    """Spend of one (tenant, feature) in [start, start + step_seconds)."""

    tenant: str
    feature: str
    start: datetime
    spend: Decimal


@dataclass(frozen=True, slots=True)
class Breach:
    """The first rolling window of an episode whose spend reached a threshold."""

    scope: str
    key: str
    window: str
    level: str
    window_start: datetime
    window_end: datetime
    spend: Decimal
    threshold: Decimal

    @property
    def breach_id(self) -> uuid.UUID:
        parts = (
            self.scope,
            self.key,
            self.window,
            self.level,
            str(self.threshold.normalize()),
            self.window_end.isoformat(),
        )
        return uuid.uuid5(BREACH_NAMESPACE, "\x00".join(parts))

    def row(self) -> dict[str, Any]:
        return {
            "breach_id": self.breach_id,
            "scope": self.scope,
            "key": self.key,
            "window": self.window,
            "level": self.level,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "spend": self.spend,
            "threshold": self.threshold,
        }

    def to_alert(self) -> dict[str, Any]:
        """The message for the alerts topic (JSON-ready)."""
        return {
            "type": "budget_breach",
            "id": str(self.breach_id),
            "severity": self.level,
            "scope": self.scope,
            "key": self.key,
            "window": self.window,
            "level": self.level,
            "window_start": iso(self.window_start),
            "window_end": iso(self.window_end),
            "spend_usd": str(self.spend),
            "threshold_usd": str(self.threshold),
        }


def _index(ts: datetime, step: int) -> int:
    seconds = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)) - _EPOCH
    whole, rest = divmod(int(seconds.total_seconds() * 1000), step * 1000)
    if rest:
        raise ValueError(f"spend bucket {ts.isoformat()} is not aligned to step_seconds={step}")
    return whole


def _at(index: int, step: int) -> datetime:
    return _EPOCH + timedelta(seconds=index * step)


Series = dict[tuple[str, str], dict[int, Decimal]]  # (scope, key) -> bucket index -> spend


def spend_series(spend: Iterable[SpendBucket], step: int, into: Series | None = None) -> Series:
    """Spend per (scope, key) and bucket index (bucket start / step): each bucket counts for its
    tenant and for its feature. Adds into `into` if given."""
    series: Series = {} if into is None else into
    for bucket in spend:
        i = _index(bucket.start, step)
        for scope, key in (("tenant", bucket.tenant), ("feature", bucket.feature)):
            per_key = series.setdefault((scope, key), {})
            per_key[i] = per_key.get(i, Decimal(0)) + Decimal(bucket.spend)
    return series


def evaluate_budgets(
    spend: Iterable[SpendBucket],
    config: BudgetConfig,
    *,
    first_end: datetime | None = None,
    last_end: datetime | None = None,
) -> list[Breach]:
    """Breaches whose episode starts at a window end in [first_end, last_end] (module docstring).

    For a complete answer `spend` must hold the buckets from `first_end - lookback(config)` on;
    without bounds, every window end from the first bucket's end to the last one's is evaluated.
    """
    return evaluate_series(spend_series(spend, config.step_seconds), config, first_end=first_end, last_end=last_end)


def evaluate_series(
    series: Series, config: BudgetConfig, *, first_end: datetime | None = None, last_end: datetime | None = None
) -> list[Breach]:
    """`evaluate_budgets` on spend already summed per (scope, key) and bucket index (`spend_series`)."""
    step = config.step_seconds
    lo = _index(first_end, step) if first_end is not None else None
    hi = _index(last_end, step) if last_end is not None else None
    breaches = []
    for (scope, key), buckets in sorted(series.items()):
        indexes = sorted(buckets)
        cumulative = [Decimal(0)]
        for i in indexes:
            cumulative.append(cumulative[-1] + buckets[i])

        def window_spend(
            end: int, length: int, cumulative: list[Decimal] = cumulative, indexes: list[int] = indexes
        ) -> Decimal:
            """Spend in buckets [end - length, end) of this series (bound now: the loop moves on)."""
            return cumulative[bisect_left(indexes, end)] - cumulative[bisect_left(indexes, end - length)]

        for window, seconds in WINDOWS.items():
            rule = config.rule_for(scope, key, window)
            if rule is None:
                continue
            length = seconds // step
            for level, threshold in rule.levels():
                last_crossing = None
                # Spend only rises when a bucket enters the window, so a crossing can only happen
                # at the end of a non-empty bucket: no need to walk every grid point.
                for end in (i + 1 for i in indexes if buckets[i] > 0):
                    if lo is not None and end < lo - length:
                        continue  # a crossing this early cannot debounce one from first_end on
                    if hi is not None and end > hi:
                        break
                    spent = window_spend(end, length)
                    if not spent >= threshold > window_spend(end - 1, length):
                        continue
                    starts_episode = last_crossing is None or end - last_crossing > length
                    last_crossing = end
                    if starts_episode and (lo is None or end >= lo):
                        breaches.append(
                            Breach(scope, key, window, level, _at(end - length, step), _at(end, step), spent, threshold)
                        )
    breaches.sort(key=lambda b: (b.window_end, b.scope, b.key, b.window, LEVELS.index(b.level)))
    return breaches
