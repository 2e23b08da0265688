"""The one rule for names this package splices into SQL: databases, tables, roles, users.

Why a rule and not quoting: these names come from configuration and code, never from events, and
a plain identifier needs no quoting in any statement (DDL, GRANT, row policies), so every
statement stays readable and a name that would need quoting is refused up front.
"""

from __future__ import annotations

import re

__all__ = ["IDENT_RE", "check_identifier"]

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(value: str, what: str) -> str:
    """Return ``value`` if it is a plain identifier, else raise ``ValueError`` naming ``what``."""
    if not isinstance(value, str) or not IDENT_RE.match(value):
        raise ValueError(f"{what} {value!r} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return value
