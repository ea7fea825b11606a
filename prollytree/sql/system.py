"""Version control from SQL: functions and system tables (installed on a connection)."""

from __future__ import annotations


def install(store, db) -> None:
    """Register the ``prolly_*`` functions on ``db.conn`` for ``store``."""
    conn = db.conn
    conn.create_scalar_function("prolly_commit", lambda msg: store.commit(msg), 1)
    conn.create_scalar_function("active_branch", lambda: store.current_branch(), 0)
