"""The kill switch's records: a halt is honoured for its tenant's trace only (tests/stream/test_kill_switch.py
runs the same through a real broker; here the listener's bookkeeping without one)."""

from __future__ import annotations

import json

from tokentrail.collectors.control import HaltListener, halt_key


def _listener() -> HaltListener:
    """The listener's record handling, without its consumer thread (no broker here)."""
    listener = HaltListener.__new__(HaltListener)
    listener._halted = {}
    return listener


def _record(tenant: str | None, trace_id: str) -> bytes:
    record = {"halt": True, "trace_id": trace_id, "kind": "repeated_tool_call", "repeats": 5}
    if tenant is not None:
        record["tenant"] = tenant
    return json.dumps(record).encode()


def test_a_halt_counts_for_its_tenant_only_and_a_tombstone_lifts_it():
    """acme's halt of trace t1 halts acme's t1, not globex's t1; the tombstone under the same key lifts it."""
    listener = _listener()
    listener._apply(halt_key("acme", "t1"), _record("acme", "t1"))
    assert listener.halted("t1", "acme") is not None
    assert listener.halted("t1", "globex") is None
    listener._apply(halt_key("acme", "t1"), None)
    assert listener.halted("t1", "acme") is None


def test_records_that_cannot_say_whose_trace_are_ignored():
    """An older worker's record (key: the trace id alone, no tenant) and a record whose body names
    another tenant than its key are not honoured: a missed halt, never a wrong one."""
    listener = _listener()
    listener._apply(b"t1", _record(None, "t1"))
    listener._apply(halt_key("acme", "t2"), _record("globex", "t2"))
    assert listener._halted == {}
    assert listener.halted("t1", "acme") is None and listener.halted("t2", "globex") is None


def test_the_key_is_the_nfc_tenant_then_nul_then_the_trace():
    """The processor stores tenants NFC-normalised; a collector's decomposed spelling finds the same halt."""
    decomposed = "cafe\u0301"
    assert halt_key(decomposed, "t1") == "caf\u00e9\x00t1".encode()
    listener = _listener()
    listener._apply(halt_key("caf\u00e9", "t1"), _record("caf\u00e9", "t1"))
    assert listener.halted("t1", decomposed) is not None
