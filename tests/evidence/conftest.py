"""The replayed store every evidence test reads (built once per session: see evidence_store.py)."""

from evidence_store import store  # noqa: F401  (the fixture)
