"""Version control from SQL: ``prolly_*`` functions and system tables on a connection.

Tables (read-only, computed on demand): ``prolly_log``, ``prolly_branches``, ``prolly_status``,
and per table ``t``: ``prolly_at_t('ref')`` (the table as of any ref), ``prolly_diff_t`` (row
changes between ``from_commit`` and ``to_commit``, structural), ``prolly_history_t`` (every
version of every row with the commit that made it) and ``prolly_conflicts_t`` (the conflicts of
the last merge that stopped). Functions: ``prolly_commit(msg)``, ``prolly_branch(name)``,
``prolly_checkout(ref)``, ``prolly_merge(ref)``, ``active_branch()``,
``prolly_hashof_table(t)``.
"""

from __future__ import annotations

import datetime

import apsw.ext

from .rows import decode_row

__all__ = ["install"]


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S")


def _table(db, name, fn, columns) -> None:
    fn.columns = tuple(columns)
    fn.column_access = apsw.ext.VTColumnAccess.By_Index
    apsw.ext.make_virtual_module(db.conn, name, fn)


def install(store, db) -> None:
    """Register the ``prolly_*`` functions and system tables on ``db.conn`` for ``store``."""
    conn = db.conn
    conn.create_scalar_function("prolly_commit", store.commit, 1)
    conn.create_scalar_function("prolly_branch", lambda n: store.branch(n), 1)
    conn.create_scalar_function("prolly_checkout", store.deferred_checkout, 1)
    conn.create_scalar_function("prolly_merge", store.deferred_merge, 1)
    conn.create_scalar_function("active_branch", store.current_branch, 0)
    conn.create_scalar_function("prolly_hashof_table", store.hashof_table, 1)
    conn.create_scalar_function("prolly_hashof_table", store.hashof_table, 2)

    def log():
        for c in store.log():
            yield (c["id"], c["committer"], _when(c["timestamp"]), c["message"],
                   ",".join(c["parents"]))

    _table(db, "prolly_log", log,
           ["commit_hash", "committer", "date", "message", "parents"])

    def branches():
        cur = store.current_branch()
        for name in store.list_branches():
            yield name, store.kv.resolve_ref(name), int(name == cur)

    _table(db, "prolly_branches", branches, ["name", "hash", "is_current"])

    def status():
        for table, key, what in store.status():
            yield table, repr(key), what

    _table(db, "prolly_status", status, ["table_name", "key", "status"])

    for t in db.schemas.values():
        _per_table(store, db, t)


def _per_table(store, db, t) -> None:
    names = t.names
    lname = t.name.lower()

    def at(ref):
        yield from store.rows_at(ref, t.name)

    _table(db, f"prolly_at_{lname}", at, names)

    def diff(from_commit="HEAD~1", to_commit="HEAD"):
        for d in store.diff(from_commit, to_commit, table=t.name):
            old = d["old"] or {}
            new = d["new"] or {}
            yield tuple([d["type"]] + [old.get(n) for n in names] + [new.get(n) for n in names])

    _table(db, f"prolly_diff_{lname}", diff,
           ["diff_type"] + [f"from_{n}" for n in names] + [f"to_{n}" for n in names])

    def history():
        for row, c in store.history(t.name):
            yield tuple(row + [c["id"], c["committer"], _when(c["timestamp"])])

    _table(db, f"prolly_history_{lname}", history,
           names + ["commit_hash", "committer", "commit_date"])

    def conflicts():
        for tname, base, ours, theirs in store.merge_conflicts():
            if tname.lower() != lname:
                continue
            cells = []
            for raw in (base, ours, theirs):
                r = decode_row(raw) if raw is not None else []
                cells += [r[i] if i < len(r) else None for i in range(len(names))]
            yield tuple(cells)

    _table(db, f"prolly_conflicts_{lname}", conflicts,
           [f"base_{n}" for n in names] + [f"our_{n}" for n in names]
           + [f"their_{n}" for n in names])
