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

import apsw
import apsw.ext

from .rows import decode_row, encode_row
from .schema import quote_ident
from .timetravel import AtModule
from .coercion import coerce

__all__ = ["install"]


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S")


def _table(db, name, fn, columns) -> None:
    fn.columns = tuple(columns)
    fn.column_access = apsw.ext.VTColumnAccess.By_Index
    apsw.ext.make_virtual_module(db.conn, name, fn)


class _Table:
    """What every system table does on disconnect: nothing (its rows are computed)."""

    def Disconnect(self):
        pass

    Destroy = Disconnect


class _RowsCursor:
    """A cursor over ``self.rows``, a list the subclass's ``Filter`` fills; the rowid is
    the position."""

    def __init__(self, table) -> None:
        self.tab = table
        self.rows: list = []
        self.i = 0

    def Eof(self):
        return self.i >= len(self.rows)

    def Rowid(self):
        return self.i

    def Column(self, n):
        return self.i if n == -1 else self.rows[self.i][n]

    def Next(self):
        self.i += 1

    def Close(self):
        self.rows = []


class _HistoryModule:
    """``prolly_history_<t>``: every version of every row, with the commit that made it.
    Equality on the whole primary key is pushed down to the store's per-key history, and
    equality on ``commit_hash`` to the diff of that one commit."""

    def __init__(self, store, schema) -> None:
        self.store = store
        self.t = schema

    def Connect(self, conn, modname, dbname, tablename, *args):
        cols = ", ".join(quote_ident(n) for n in
                         self.t.names + ["commit_hash", "committer", "commit_date"])
        return f"CREATE TABLE x({cols})", _HistoryTable(self.store, self.t)

    Create = Connect


class _HistoryTable(_Table):
    def __init__(self, store, schema) -> None:
        self.store = store
        self.t = schema

    def BestIndex(self, constraints, orderbys):
        t = self.t
        eq = apsw.SQLITE_INDEX_CONSTRAINT_EQ
        ncols = len(t.columns)
        pk = t.pk if t.pk else None
        used = [None] * len(constraints)
        if pk:
            pos = {}
            for i, (c, op) in enumerate(constraints):
                if op == eq and c in pk and c not in pos:
                    pos[c] = i
            if len(pos) == len(pk):
                for n, c in enumerate(pk):
                    used[pos[c]] = n
                return used, 1, "key", False, 10
        for i, (c, op) in enumerate(constraints):
            if op == eq and c == ncols:
                used[i] = 0
                return used, 2, "commit", False, 100
        return None

    def Open(self):
        return _HistoryCursor(self)


class _HistoryCursor(_RowsCursor):

    def Filter(self, idxnum, idxstr, args):
        store, t = self.tab.store, self.tab.t
        if idxnum == 1:
            key = tuple(coerce(t.columns[c].affinity, v) for c, v in zip(t.pk, args))
            it = store.history(t.name, key=key)
        elif idxnum == 2:
            it = store.commit_changes(t.name, args[0])
        else:
            it = store.history(t.name)
        n = len(t.columns)
        self.rows = [tuple((row + [None] * n)[:n] + [c["id"], c["committer"],
                                                     _when(c["timestamp"])])
                     for row, c in it]
        self.i = 0


class _ConflictsModule:
    """``prolly_conflicts_<t>``: the conflicts of the last merge that stopped, one row per
    conflicting row: ``base_<c>``, ``our_<c>``, ``their_<c>``. Editing it resolves them:
    DELETE keeps our row; UPDATE keeps the row given by the ``our_<c>`` columns (set them
    from ``their_<c>`` to take theirs; all NULL deletes the row). Merge the same source
    again to apply the resolutions."""

    def __init__(self, store, schema, session) -> None:
        self.store = store
        self.t = schema
        self.session = session

    def Connect(self, conn, modname, dbname, tablename, *args):
        names = self.t.names
        cols = [f"base_{n}" for n in names] + [f"our_{n}" for n in names] + \
            [f"their_{n}" for n in names]
        return (f"CREATE TABLE x({', '.join(quote_ident(c) for c in cols)})",
                _ConflictsTable(self.store, self.t, self.session))

    Create = Connect


class _ConflictsTable(_Table):
    def __init__(self, store, schema, session) -> None:
        self.store = store
        self.t = schema
        self.session = session
        self.rows: list = []

    def BestIndex(self, constraints, orderbys):
        return None

    def Open(self):
        return _ConflictsCursor(self)

    def load_rows(self) -> list:
        """The unresolved conflicts of this table (read at each scan)."""
        lname = self.t.name.lower()
        self.rows = [c for c in self.store.merge_conflicts() if c[0].lower() == lname]
        return self.rows

    def UpdateDeleteRow(self, rowid):
        _t, key, _b, ours, _theirs = self.rows[rowid]
        self.store.resolve_conflict(self.t.name, key, ours)
        self.session.changes += 1

    def UpdateChangeRow(self, rowid, newrowid, fields):
        _t, key, _b, _ours, _theirs = self.rows[rowid]
        n = len(self.t.columns)
        ours = list(fields[n:2 * n])
        self.store.resolve_conflict(self.t.name, key,
                                    None if all(v is None for v in ours) else encode_row(ours))
        self.session.changes += 1

    def UpdateInsertRow(self, rowid, fields):
        raise apsw.ReadOnlyError("rows cannot be added to a conflicts table")


class _ConflictsCursor(_RowsCursor):

    def Filter(self, *args):
        self.rows = self.tab.load_rows()
        self.i = 0

    def Column(self, n):
        if n == -1:
            return self.i
        width = len(self.tab.t.columns)
        raw = self.rows[self.i][2 + n // width]
        r = decode_row(raw) if raw is not None else []
        k = n % width
        return r[k] if k < len(r) else None


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

    db.conn.create_module(f"prolly_at_{lname}", AtModule(store, t), eponymous_only=True,
                          read_only=True, use_bestindex_object=True)

    def diff(from_commit="HEAD~1", to_commit="HEAD"):
        for d in store.diff(from_commit, to_commit, table=t.name):
            old = d["old"] or {}
            new = d["new"] or {}
            yield tuple([d["type"]] + [old.get(n) for n in names] + [new.get(n) for n in names])

    _table(db, f"prolly_diff_{lname}", diff,
           ["diff_type"] + [f"from_{n}" for n in names] + [f"to_{n}" for n in names])

    db.conn.create_module(f"prolly_history_{lname}", _HistoryModule(store, t),
                          eponymous_only=True, read_only=True)

    db.conn.create_module(f"prolly_conflicts_{lname}", _ConflictsModule(store, t, db.session),
                          eponymous_only=True)
