"""Silent-change detection: a value that should be stable for a group starts to differ.

Three kinds, each a group and the value watched in it (KINDS is the single definition; the SQL
in `jobs` is generated from it):

* ``response_model``: per (tenant, feature, model), the ``response_model`` the provider reports.
  A provider serving a new snapshot under the same requested name shows up here.
* ``system_prompt``: per (feature, prompt_id, prompt_version), the system prompt's hash. An edit
  that was not announced by a version bump shows up here.
* ``prompt_version``: per (feature, prompt_id), the ``prompt_version``. Announced changes,
  recorded as such (``silent=False``), so a dashboard can show them next to the silent ones.

Semantics (exact, and the same however the history is split into runs):

* Observations of a group are taken in time order, ties (the same millisecond) broken by value
  so the answer never depends on the order rows come back in; empty values are ignored (an
  errored call has no response_model, an output not joined to its prompt has no hash).
* The first value ever seen in a group is its baseline, not a change.
* A change is the first observation of a value never seen before in the group. ``from`` is the
  value of the group's observation immediately before it, ``first_seen`` its time.
* A value seen before is never reported again: flapping A, B, A reports B once and not A. Why:
  rollouts and rollbacks overlap (canaries, in-flight traces started before a deploy, several
  replicas), so a group legitimately alternates between old and new for a while; reporting every
  alternation would page on-call once per call. A change back to A is visible in `calls`.

Only the first occurrence of each value and the observation just before it decide the result,
which is what lets the job feed a few rows per group instead of the whole history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = [
    "KINDS",
    "Kind",
    "ChangeKey",
    "Observation",
    "Change",
    "detect_changes",
    "observations_from_calls",
    "change_id",
]

CHANGE_NAMESPACE = uuid.UUID("2b0c7a8e-5f43-4d61-9a1e-7c3d2f9e8b14")
KEY_FIELDS = ("tenant", "feature", "model", "prompt_id", "prompt_version")


@dataclass(frozen=True)
class Kind:
    """One kind of change: the `calls` columns that form its group, the watched column, and the
    columns that must be non-empty for a call to count (calls without a prompt id opted out of
    prompt tracking; their system prompts may legitimately differ per call)."""

    name: str
    group: tuple[str, ...]
    value: str
    required: tuple[str, ...]
    silent: bool


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("response_model", ("tenant", "feature", "model"), "response_model", ("response_model",), True),
        Kind(
            "system_prompt",
            ("feature", "prompt_id", "prompt_version"),
            "system_prompt_hash",
            ("system_prompt_hash", "prompt_id"),
            True,
        ),
        Kind("prompt_version", ("feature", "prompt_id"), "prompt_version", ("prompt_id", "prompt_version"), False),
    )
}


class ChangeKey(NamedTuple):
    """A group, with '' in the fields that are not part of its kind's group."""

    tenant: str = ""
    feature: str = ""
    model: str = ""
    prompt_id: str = ""
    prompt_version: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """One call's value for one kind of change."""

    kind: str
    key: ChangeKey
    value: str
    ts: datetime


def change_id(kind: str, key: ChangeKey, to_value: str) -> uuid.UUID:
    """Deterministic: a value appears for the first time in a group once, so this names the change."""
    return uuid.uuid5(CHANGE_NAMESPACE, "\x00".join((kind, *key, to_value)))


@dataclass(frozen=True, slots=True)
class Change:
    """A new value in a group: what it was, what it became, and when the new value first appeared."""

    kind: str
    key: ChangeKey
    from_value: str
    to_value: str
    first_seen: datetime

    @property
    def change_id(self) -> uuid.UUID:
        return change_id(self.kind, self.key, self.to_value)

    @property
    def silent(self) -> bool:
        return KINDS[self.kind].silent

    def row(self) -> dict[str, Any]:
        """The `changes` table row (detected_at is left to the column default)."""
        return {
            "change_id": self.change_id,
            "kind": self.kind,
            "silent": self.silent,
            **self.key._asdict(),
            "from_value": self.from_value,
            "to_value": self.to_value,
            "first_seen": self.first_seen,
        }

    def to_alert(self) -> dict[str, Any]:
        """The message for the alerts topic (JSON-ready)."""
        return {
            "type": "change",
            "id": str(self.change_id),
            "kind": self.kind,
            "silent": self.silent,
            "severity": "warning" if self.silent else "info",
            **self.key._asdict(),
            "from": self.from_value,
            "to": self.to_value,
            "ts": iso(self.first_seen),
        }


def iso(ts: datetime) -> str:
    """RFC 3339 with milliseconds and Z, the wire format's timestamp form (naive means UTC)."""
    ts = ts.astimezone(UTC) if ts.tzinfo else ts
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def group_key(kind: Kind, row: dict[str, Any]) -> ChangeKey:
    return ChangeKey(**{name: str(row[name]) for name in kind.group})


def observations_from_calls(calls: Iterable[dict[str, Any]]) -> list[Observation]:
    """Every kind's observations in `calls` rows (dicts with ts and the `calls` columns KINDS uses)."""
    out: list[Observation] = []
    for row in calls:
        for kind in KINDS.values():
            if all(row.get(col) for col in kind.required):
                out.append(Observation(kind.name, group_key(kind, row), str(row[kind.value]), row["ts"]))
    return out


def detect_changes(observations: Iterable[Observation]) -> list[Change]:
    """The changes in a history of observations (see the module docstring), in first-seen order."""
    seen: dict[tuple[str, ChangeKey], set[str]] = {}
    last: dict[tuple[str, ChangeKey], str] = {}
    changes: list[Change] = []
    for obs in sorted(observations, key=lambda o: (o.ts, o.value, o.kind, o.key)):
        if not obs.value:
            continue
        group = (obs.kind, obs.key)
        values = seen.get(group)
        if values is None:
            seen[group] = {obs.value}
        elif obs.value not in values:
            values.add(obs.value)
            changes.append(Change(obs.kind, obs.key, last[group], obs.value, obs.ts))
        last[group] = obs.value
    return changes
