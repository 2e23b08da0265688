"""The loop detector's per-trace state, kept in a faust Table (changelog, recovery, rebalancing).

The detector keys its states by (tenant, trace) (`state_key`), so that a tenant reusing another
tenant's trace id never reaches the other's state. The table stays keyed by the raw trace_id
bytes, like the events topic: its changelog partition is the events' partition (the producer's
murmur2 of the same key), so each worker restores exactly the traces it consumes, and producers
keep keying events by trace_id alone. One table value holds the states of every tenant that used
that trace id: `{"tenants": {tenant: state}}`. A value written before tenants were kept apart is
one state with its `tenant` field, read as that tenant's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from ..detectors.loops import split_state_key, state_key

# Tenants sharing one trace id in one table value. Legitimately one; past this bound (a writer
# that picks tenants and trace ids at will) the least recently seen tenant's state goes.
MAX_TENANTS_PER_TRACE = 32


def tenant_states(value: Any) -> dict[str, Any]:
    """A table value as {tenant: state}, whichever form it was written in."""
    if not value:
        return {}
    if "tenants" in value:
        return dict(value["tenants"])
    return {str(value.get("tenant", "")): value}  # one state, written before tenants were kept apart


class TraceKeyedTable(MutableMapping[str, Any]):
    """The faust Table seen as a mapping keyed by `state_key(tenant, trace_id)`.

    Table keys go to Kafka as the raw trace_id bytes; see the module docstring.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def _tenants(self, trace_id: str) -> dict[str, Any]:
        return tenant_states(self.table.get(trace_id.encode()))

    def _write(self, trace_id: str, tenants: dict[str, Any]) -> None:
        if not tenants:
            self.table.pop(trace_id.encode(), None)
            return
        while len(tenants) > MAX_TENANTS_PER_TRACE:
            del tenants[min(tenants, key=lambda t: tenants[t].get("seen_ms", 0))]
        self.table[trace_id.encode()] = {"tenants": tenants}

    def __getitem__(self, key: str) -> Any:
        tenant, trace_id = split_state_key(key)
        return self._tenants(trace_id)[tenant]

    def __setitem__(self, key: str, value: Any) -> None:
        tenant, trace_id = split_state_key(key)
        tenants = self._tenants(trace_id)
        tenants[tenant] = value
        self._write(trace_id, tenants)

    def __delitem__(self, key: str) -> None:
        tenant, trace_id = split_state_key(key)
        tenants = self._tenants(trace_id)
        del tenants[tenant]
        self._write(trace_id, tenants)

    def __iter__(self) -> Iterator[str]:
        for raw, value in list(self.table.items()):
            trace_id = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            for tenant in tenant_states(value):
                yield state_key(tenant, trace_id)

    def __len__(self) -> int:
        return sum(len(tenant_states(value)) for value in list(self.table.values()))

    def seeds(self, trace_keys: Iterable[bytes]) -> dict[str, Any]:
        """Every tenant's state for these message keys (raw trace ids), keyed by `state_key`:
        what the pipeline process needs for a batch (stream/pipeline_process.py)."""
        out: dict[str, Any] = {}
        for raw in set(trace_keys):
            trace_id = raw.decode("utf-8", "replace")
            for tenant, st in tenant_states(self.table.get(raw)).items():
                out[state_key(tenant, trace_id)] = st
        return out
