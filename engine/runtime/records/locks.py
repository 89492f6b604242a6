"""Named locks for checks that read before they write (a unique name, a tree's shape).

A check such as "is this name free?" or "is this record already under that one?" reads
committed rows; two transactions can both pass it and then both write, leaving what it was
to prevent. On PostgreSQL `hold` takes a transaction-scoped advisory lock on a name, so the
second transaction waits for the first to end and then (read committed: each statement sees
what is committed) checks again what the first wrote. SQLite runs one write transaction at
a time (BEGIN IMMEDIATE, engine/runtime/db.py), so it needs none.

>>> # hold(conn, "tree", "account", "parent")  # every parent change of accounts, in turn
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, func, select


def hold(conn: Connection, *name: str) -> None:
    """Lock `name` until `conn`'s transaction ends (PostgreSQL; nothing on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(lock_key(*name))))


def lock_key(*name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (its parts joined unambiguously)."""
    digest = hashlib.blake2b("\x00".join(name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
