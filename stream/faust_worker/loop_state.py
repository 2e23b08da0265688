"""The loop detector's per-trace state, kept in a faust Table (changelog, recovery, rebalancing)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any


class TraceKeyedTable(MutableMapping[str, Any]):
    """The faust Table seen as a str-keyed mapping: keys go to Kafka as the raw trace_id bytes."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() if isinstance(k, bytes) else k for k in list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)
