"""Silent changes from the store, incrementally: first-seen state plus the new window of `calls`.

Only the first occurrence of each value in its group, and the observation just before it, decide
the changes (`changes` module docstring). The first occurrences over all history are kept in
`insights_first_seen` (migration 0009), so a run reads only the calls of its window, folds their
first and last occurrences into the state, and computes the changes from the state. The
observation just before a new value is read from `calls` only for changes not stored yet (rare),
with a lookback that widens from an hour until it finds one.

Without state (a new store, or the first run after upgrading) the window is all of `calls`: a
one-off catch-up scan. State rows are written when a value is new, when a late call moves its
first occurrence earlier, or when its last occurrence moved on by a day (the row's TTL runs from
last_seen, so an active value never expires). Reading min / max per key makes the state right
before merges and if two runs race (each writes only what it saw in `calls`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .changes import KEY_FIELDS, KINDS, Change, ChangeKey, Observation, change_id, detect_changes

__all__ = ["STATE_REFRESH", "FirstSeen", "StateUpdate", "read_state", "scan_calls", "merge", "find_changes"]

STATE_REFRESH = timedelta(days=1)
# How far back the observation before a new value is searched, in turn (None: all history).
_PREDECESSOR_LOOKBACKS = (timedelta(hours=1), timedelta(days=1), timedelta(days=31), None)
_STATE_COLUMNS = ("kind", *KEY_FIELDS, "value", "first_seen", "last_seen")

StateKey = tuple[str, ChangeKey, str]  # kind, group, value


@dataclass(frozen=True, slots=True)
class FirstSeen:
    """When a value was first and last seen in its group."""

    first: datetime
    last: datetime


@dataclass
class StateUpdate:
    """The state after folding in a window of calls, and the rows that must be stored for it."""

    state: dict[StateKey, FirstSeen] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def read_state(client: Any, database: str) -> dict[StateKey, FirstSeen]:
    """The stored state, one entry per (kind, group, value); small (values per group, not calls)."""
    keys = ", ".join(("kind", *KEY_FIELDS, "value"))
    result = client.query(
        f"SELECT {keys}, min(first_seen), max(last_seen) FROM {database}.insights_first_seen GROUP BY {keys}"
    ).result_rows
    return {(kind, ChangeKey(*key), value): FirstSeen(_utc(a), _utc(b)) for kind, *key, value, a, b in result}


# Conditions on the hour of ts, next to those on ts (named parameter inserted by format).
_HOURS_TO = "toStartOfHour(ts) <= toStartOfHour({{{}:DateTime64(3, 'UTC')}})"
_HOURS_FROM = "toStartOfHour(ts) >= toStartOfHour({{{}:DateTime64(3, 'UTC')}})"


def scan_calls(client: Any, database: str, lo: datetime | None, hi: datetime) -> dict[StateKey, FirstSeen]:
    """First and last occurrence of every value per group among calls with lo <= ts < hi (lo None: all).

    No FINAL: a duplicated row has the same ts and value, so it cannot move a minimum or maximum.
    """
    out: dict[StateKey, FirstSeen] = {}
    params = {"hi": _utc(hi), **({"lo": _utc(lo)} if lo else {})}
    for kind in KINDS.values():
        cols = ", ".join(kind.group)
        # The hours too: `calls` is keyed by the hour first (migration 0011); ClickHouse does not derive them from ts.
        where = [f"{c} != ''" for c in kind.required] + ["ts < {hi:DateTime64(3, 'UTC')}", _HOURS_TO.format("hi")]
        where += ["ts >= {lo:DateTime64(3, 'UTC')}", _HOURS_FROM.format("lo")] if lo else []
        result = client.query(
            f"""SELECT {cols}, {kind.value} AS value, min(ts), max(ts)
                FROM {database}.calls WHERE {" AND ".join(where)} GROUP BY {cols}, value""",
            parameters=params,
        ).result_rows
        width = len(kind.group)
        for row in result:
            key = ChangeKey(**dict(zip(kind.group, row[:width], strict=True)))
            out[(kind.name, key, row[width])] = FirstSeen(_utc(row[width + 1]), _utc(row[width + 2]))
    return out


def merge(state: dict[StateKey, FirstSeen], window: dict[StateKey, FirstSeen]) -> StateUpdate:
    """Fold a window's occurrences into the state; rows for what is new, earlier, or a day later."""
    update = StateUpdate(dict(state))
    for key, seen in sorted(window.items(), key=lambda item: item[0]):
        old = state.get(key)
        new = seen if old is None else FirstSeen(min(old.first, seen.first), max(old.last, seen.last))
        update.state[key] = new
        if old is None or new.first < old.first or new.last - old.last >= STATE_REFRESH:
            kind, group, value = key
            update.rows.append(dict(zip(_STATE_COLUMNS, (kind, *group, value, new.first, new.last), strict=True)))
    return update


def _predecessor(client: Any, database: str, first: Observation) -> Observation | None:
    """The group's observation immediately before `first` in (ts, value) order, or None."""
    kind = KINDS[first.kind]
    conditions = [f"{c} = {{g_{c}:String}}" for c in kind.group] + [f"{c} != ''" for c in kind.required]
    conditions += [
        "ts <= {ts:DateTime64(3, 'UTC')}",
        _HOURS_TO.format("ts"),
        f"(ts < {{ts:DateTime64(3, 'UTC')}} OR {kind.value} < {{value:String}})",
    ]
    params: dict[str, Any] = {f"g_{c}": getattr(first.key, c) for c in kind.group}
    params.update(ts=first.ts, value=first.value)
    for lookback in _PREDECESSOR_LOOKBACKS:
        bounded = conditions + (["ts >= {lo:DateTime64(3, 'UTC')}", _HOURS_FROM.format("lo")] if lookback else [])
        if lookback:
            params["lo"] = first.ts - lookback
        value, ts, count = client.query(
            f"""SELECT argMax({kind.value}, (ts, {kind.value})), max(ts), count()
                FROM {database}.calls WHERE {" AND ".join(bounded)}""",
            parameters=params,
        ).result_rows[0]
        if count:
            return Observation(first.kind, first.key, value, _utc(ts))
    return None


def find_changes(
    client: Any, database: str, state: dict[StateKey, FirstSeen], *, now: datetime, known: set[str] | None = None
) -> list[Change]:
    """Every change whose new value was first seen before `now`; `from` is exact for ids not in `known`."""
    known = known or set()
    firsts = [
        Observation(kind, group, value, seen.first)
        for (kind, group, value), seen in state.items()
        if seen.first < now and value
    ]
    baseline: dict[tuple[str, ChangeKey], tuple[datetime, str]] = {}
    for obs in firsts:
        group = (obs.kind, obs.key)
        baseline[group] = min(baseline.get(group, (obs.ts, obs.value)), (obs.ts, obs.value))
    observations = list(firsts)
    for obs in firsts:
        if (obs.ts, obs.value) == baseline[(obs.kind, obs.key)]:
            continue
        if str(change_id(obs.kind, obs.key, obs.value)) in known:
            continue
        previous = _predecessor(client, database, obs)
        if previous is not None:
            observations.append(previous)
    return detect_changes(observations)
