"""ProllySQLStore: the full SQLite dialect over versioned prolly trees.

SQLite (through apsw) runs every statement; each table is a virtual table served by
:mod:`.vtable` from its prolly tree. DDL is run first on a shadow schema database (SQLite parses
and validates it), then the catalog tree, the table and index trees and the virtual tables are
brought in line with it. Versions are made by :meth:`ProllySQLStore.commit` (or ``SELECT
prolly_commit('message')``).
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import threading
from typing import Any, Iterable

import apsw
import msgpack

from ..errors import MergeConflictError, ReadOnlyError
from ..tree import ConflictResolution
from ..versioning import Unresolved, VersionedKvStore
from .keys import decode_key, encode_key
from .rows import decode_row, encode_row
from .schema import CATALOG, Shadow, TableSchema, affinity, quote_ident, seq_key, table_tree
from .dml import unquote, insert_target, run_upsert, split_upsert
from .statements import dml_kind, kind_of, split
from .trees import Trees
from .vtable import ProllyModule, Session, index_key

__all__ = ["ProllySQLStore", "FORMATS", "format_rows"]

FORMATS = ("dict", "dicts", "tuples", "json", "csv")
_T, _V = b"t\x00", b"v\x00"
_RESULT = {"create_table": "create", "ctas": "create", "create_index": "create_index",
           "create_view": "create_view", "drop_table": "drop_table", "drop_index": "drop_index",
           "drop_view": "drop_view", "alter_table": "alter_table", "create_temp": "create"}


def _locked(method):
    """Run ``method`` under the store's lock: one statement or version operation at a time
    per store object, so the object can be shared between threads."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return run


class Database:
    """One SQLite connection whose tables are served from a set of named trees."""

    def __init__(self, view, catalog: Iterable[tuple[bytes, bytes]], readonly: bool,
                 functions=None) -> None:
        self.shadow = Shadow()
        views = []
        for k, v in catalog:
            if k.startswith(_T):
                self.shadow.load_entry(v)
            elif k.startswith(_V):
                views.append(msgpack.unpackb(v)["sql"])
        for sql in views:
            self.shadow.execute(sql)
        self.schemas: dict[str, TableSchema] = {
            n.lower(): self.shadow.schema(n) for n in self.shadow.tables()}
        self.session = Session(view, self.schemas, readonly, self.shadow)
        self.conn = conn = apsw.Connection(":memory:")
        self.session.conn = conn
        conn.create_module("prolly", ProllyModule(self.session), iVersion=3,
                           use_bestindex_object=True)
        for t in self.schemas.values():
            conn.execute(f"CREATE VIRTUAL TABLE {quote_ident(t.name)} USING prolly")
        for sql in views:
            conn.execute(sql)
        if functions is not None:
            functions(self)

    def close(self) -> None:
        self.conn.close()
        self.shadow.close()

    def query(self, sql: str, params=None) -> tuple[list[str], list[tuple], bool]:
        """Run one statement: (column labels, rows, whether it is a query)."""
        cur = self.conn.cursor()
        desc: list = []

        def trace(c, _sql, _b):
            desc[:] = [d[0] for d in c.get_description()]
            if self.session.readonly and not c.is_readonly:
                raise apsw.ReadOnlyError("this database is read-only (a past version)")
            return True

        cur.exec_trace = trace
        s = self.session
        marks = s.marks() if s.in_transaction() else None
        s.changes = 0
        try:
            rows = cur.execute(sql, params).fetchall()
        except BaseException:
            if marks is not None and s.in_transaction():
                s.undo_to(marks)  # a failed statement changes nothing
            raise
        return desc, rows, bool(desc)


def format_rows(labels: list[str], rows: list[tuple], format: str):
    """Rows as ``format``: dicts, ``(labels, rows)``, a JSON string or CSV text."""
    if format in ("dict", "dicts"):
        return [dict(zip(labels, r)) for r in rows]
    if format == "tuples":
        return labels, [list(r) for r in rows]
    if format == "json":
        return json.dumps([dict(zip(labels, [_jsonable(v) for v in r])) for r in rows],
                          indent=2)
    out = io.StringIO()
    out.write(",".join(labels) + "\n")
    for r in rows:
        out.write(",".join(_csv_cell(v) for v in r) + "\n")
    return out.getvalue()


def _jsonable(v):
    return v.hex() if isinstance(v, bytes) else v


def _csv_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, bytes):
        v = v.hex()
    return '"' + str(v).replace('"', '""') + '"'


def _ctas_type(decl: str | None) -> str:
    """The column type CREATE TABLE AS gives a result column: its affinity's name."""
    if not decl:
        return ""
    return {"INTEGER": "INT", "TEXT": "TEXT", "REAL": "REAL", "NUMERIC": "NUM",
            "BLOB": ""}[affinity(decl)]


def _cellwise(base: bytes | None, src: bytes | None, dst: bytes | None) -> bytes | None:
    """The row merging both sides' changes cell by cell, or None on a true conflict."""
    if base is None or src is None or dst is None:
        return None
    b, s, d = decode_row(base), decode_row(src), decode_row(dst)
    if not len(b) == len(s) == len(d):
        return None
    out = []
    for x, y, z in zip(b, s, d):
        if y == x:
            out.append(z)
        elif z == x or z == y:
            out.append(y)
        else:
            return None
    return encode_row(out)


def _strategy(res, c) -> bytes | None:
    if res is ConflictResolution.TakeSource:
        return c.source_value
    if isinstance(res, ConflictResolution):
        return c.destination_value
    return res(c)


def _check_format(format: Any) -> None:
    if not isinstance(format, str):
        raise TypeError(f"format must be a str, not {type(format).__name__}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")


class ProllySQLStore:
    """A SQL database (the SQLite dialect) stored as versioned prolly trees at ``path``.

    Creates or opens the dataset (inside a Git repository by default; ``storage_backend`` as
    for :class:`VersionedKvStore`). Each table is one named tree keyed by an order-preserving
    encoding of its primary key; each index is another tree; the schema lives in a catalog
    tree. All of them commit, branch, diff and merge together.
    """

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None) -> None:
        kv = VersionedKvStore(path, storage_backend)
        try:
            self._init(kv)
        except BaseException:
            kv.close()
            raise

    def _init(self, kv: VersionedKvStore) -> None:
        self._lock = threading.RLock()
        self._kv = kv
        self._trees = Trees(self._kv)
        self._db: Database | None = None
        self._reload = False
        self._schema_cache: dict[bytes | None, dict[str, TableSchema]] = {}
        # the conflicts of the last merge that stopped: (table, key, base, ours, theirs),
        # and the resolutions recorded by editing prolly_conflicts_<t>: (table, key) -> row
        self._conflicts: list[tuple[str, bytes, bytes | None, bytes | None, bytes | None]] = []
        self._resolved: dict[tuple[str, bytes], bytes | None] = {}
        self._conflict_source: str | None = None
        self._load()

    @staticmethod
    def open(path: str | os.PathLike, storage_backend: Any = None) -> "ProllySQLStore":
        """Open an existing dataset only (ValueError ``not a dataset: PATH`` otherwise)."""
        kv = VersionedKvStore.open(path, storage_backend)
        self = ProllySQLStore.__new__(ProllySQLStore)
        try:
            self._init(kv)
        except BaseException:
            kv.close()
            raise
        return self

    # -- connection ------------------------------------------------------------------------

    def _load(self) -> None:
        if self._db is not None:
            self._db.close()
        from .system import install
        # a detached HEAD is read-only: writes fail in the statement, not at its commit
        readonly = self._kv.current_branch() is None
        self._db = Database(self._trees.tree, self._trees.tree(CATALOG).items(), readonly,
                            lambda db: install(self, db))

    @property
    def kv(self) -> VersionedKvStore:
        """The underlying :class:`VersionedKvStore` (refs, tags, fsck, gc ...)."""
        return self._kv

    @property
    def connection(self) -> apsw.Connection:
        """The apsw connection serving the working copy (for tools such as apsw's shell;
        DDL must go through :meth:`execute`)."""
        return self._db.conn

    @_locked
    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._kv.close()

    def __enter__(self) -> "ProllySQLStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- SQL -------------------------------------------------------------------------------

    @_locked
    def execute(self, query: str, format: str = "dict", params: Any = None):
        """Run ``query`` (one or more statements; the result of the last is returned).

        Queries give their rows as ``format``: "dict"/"dicts" (list of dicts), "tuples"
        (``(labels, rows)``), "json" or "csv"; other statements give ``{"type": "insert" |
        "update" | "delete", "count": n}`` or ``{"type": "create" | ..., "success": True}``.
        ``params`` (a sequence or a dict) binds ``?`` / ``:name`` placeholders."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        _check_format(format)
        if params is not None and not isinstance(params, (list, tuple, dict)):
            raise TypeError(f"params must be a sequence or a dict, not "
                            f"{type(params).__name__}")
        stmts = split(query)
        if params is not None and len(stmts) > 1:
            raise ValueError("params can only be bound to a single statement")
        result: Any = {"type": "empty", "success": True}
        for s in stmts:
            result = self._run(s, format, params)
        return result

    def execute_many(self, queries: Iterable[str], format: str = "dict") -> list:
        """:meth:`execute` each query in turn; the list of their results."""
        if isinstance(queries, str):
            raise TypeError("queries must be an iterable of str, not a str")
        return [self.execute(q, format) for q in queries]

    def _run(self, stmt: str, format: str, params):
        kind = kind_of(stmt)
        if kind in ("create_table", "create_index", "create_view", "drop_table",
                    "drop_index", "drop_view", "alter_table", "ctas"):
            self._ddl(stmt, kind, params)
            return {"type": _RESULT[kind], "success": True}
        if kind in ("create_trigger", "create_virtual"):
            raise ValueError(f"{kind.replace('_', ' ').upper()} is not supported on a "
                             f"ProllySQLStore")
        if kind in ("insert", "replace"):
            up = split_upsert(stmt)
            if up is not None:
                return self._upsert(stmt, up, params)
        db = self._db
        t = insert_target(stmt) if kind in ("insert", "replace") else None
        if t is not None and t[0].lower() in db.schemas:
            sc = db.schemas[t[0].lower()]
            names = [c.name.lower() for c in sc.columns]
            listed = {c.lower() for c in t[1]} if t[1] is not None else None
            omitted = set(range(len(names))) if t[2] else \
                {i for i, n in enumerate(names) if listed is not None and n not in listed}
            db.session.omitted = {sc.name.lower(): omitted}
        try:
            labels, rows, is_query = db.query(stmt, params)
        finally:
            db.session.omitted = None
            db.session.bulk = False
            if self._reload:  # a prolly_checkout / prolly_merge inside the statement
                self._reload = False
                self._load()
        if is_query:
            return format_rows(labels, rows, format)
        k = dml_kind(stmt)
        if k in ("insert", "update", "delete"):
            return {"type": k, "count": self._db.session.changes}
        return {"type": _RESULT.get(k, k), "success": True}

    def _upsert(self, stmt: str, up, params) -> dict:
        db = self._db
        head, target, sets, where = up
        t = insert_target(head)
        if t is None or t[0].lower() not in db.schemas:
            raise apsw.SQLError(f"no such table: {t[0] if t else '?'}")
        conn = db.conn
        s = db.session
        marks = s.marks()
        conn.execute("SAVEPOINT prolly_upsert")
        try:
            n = run_upsert(s, db.schemas[t[0].lower()], head, target, sets, where, params)
        except BaseException:
            conn.execute("ROLLBACK TO prolly_upsert")
            conn.execute("RELEASE prolly_upsert")
            s.undo_to(marks)
            raise
        conn.execute("RELEASE prolly_upsert")
        return {"type": "insert", "count": n}

    # -- DDL -------------------------------------------------------------------------------

    def _ddl(self, stmt: str, kind: str, params) -> None:
        db = self._db
        if db.session.in_transaction():
            raise ValueError("schema changes inside a SQL transaction are not supported: "
                             "COMMIT or ROLLBACK first")
        if db.session.readonly:
            raise ReadOnlyError("HEAD is detached: the database is read-only; checkout a "
                                "branch to change the schema")
        if kind == "ctas":
            return self._ctas(stmt, params)
        shadow = db.shadow
        before = {n.lower(): shadow.schema(n) for n in shadow.tables()}
        views_before = shadow.views()
        with shadow.db:  # a failed reconciliation leaves the shadow as it was
            shadow.db.execute(stmt, params)
            after = {n.lower(): shadow.schema(n) for n in shadow.tables()}
            self._reconcile(before, after, kind)
        views_after = shadow.views()
        trees = self._trees
        cat = trees.tree(CATALOG)
        for n, t in after.items():
            if n not in before or before[n].sql != t.sql or \
                    [i.sql for i in before[n].indexes] != [i.sql for i in t.indexes]:
                cat.insert(_T + n.encode(), shadow.catalog_entry(t.name))
        for n in before:
            if n not in after:
                cat.delete(_T + n.encode())
                if before[n].autoincrement:
                    seq = cat.get(seq_key(n))
                    cat.delete(seq_key(n))
                    renamed = [m for m in after if m not in before]
                    if kind == "alter_table" and len(renamed) == 1 and seq is not None:
                        cat.insert(seq_key(renamed[0]), seq)
        if views_after != views_before:
            for name, _sql in views_before:
                cat.delete(_V + name.lower().encode())
            for name, sql in views_after:
                cat.insert(_V + name.lower().encode(), msgpack.packb({"sql": sql}))
        self._load()

    def _reconcile(self, before: dict, after: dict, kind: str) -> None:
        """Bring the table and index trees in line with a schema change."""
        trees = self._trees
        gone = [n for n in before if n not in after]
        new = [n for n in after if n not in before]
        if kind == "alter_table" and len(gone) == 1 and len(new) == 1:
            # RENAME TO: move the rows to the new table's tree
            old, nw = before[gone[0]], after[new[0]]
            src, dst = trees.tree(old.tree), trees.tree(nw.tree)
            trees.create_tree(nw.tree)
            dst.insert_batch(list(src.items()))
            trees.drop_tree(old.tree)
            for idx in old.indexes:
                trees.drop_tree(idx.tree)
            self._build_indexes(nw, nw.indexes)
            return
        for n in gone:
            trees.drop_tree(before[n].tree)
            for idx in before[n].indexes:
                trees.drop_tree(idx.tree)
        for n in new:
            trees.create_tree(after[n].tree)
            for idx in after[n].indexes:
                trees.create_tree(idx.tree)
        for n in after:
            if n not in before:
                continue
            b, a = before[n], after[n]
            if [c.name for c in b.columns] != [c.name for c in a.columns]:
                self._rewrite_rows(b, a)
            bi = {i.name: i for i in b.indexes}
            ai = {i.name: i for i in a.indexes}
            for name, idx in bi.items():
                if name not in ai or ai[name].columns != idx.columns:
                    trees.drop_tree(idx.tree)
            added = [i for name, i in ai.items()
                     if name not in bi or bi[name].columns != i.columns]
            self._build_indexes(a, added)

    def _rewrite_rows(self, b: TableSchema, a: TableSchema) -> None:
        """ALTER TABLE ADD / DROP COLUMN: rewrite every row (RENAME keeps positions)."""
        bn = [c.name.lower() for c in b.columns]
        an = [c.name.lower() for c in a.columns]
        if len(an) == len(bn):
            return
        if len(an) > len(bn):
            t = self._trees.tree(a.tree)
            extra = []
            for c in a.columns[len(bn):]:
                v = None
                if c.default is not None:
                    v = self._db.shadow.execute(f"SELECT {c.default}")[0][0]
                if v is None and c.notnull and next(iter(t.items()), None) is not None:
                    # SQLite checks this against the rows, which the shadow table lacks
                    raise apsw.SQLError("Cannot add a NOT NULL column with default value NULL")
                extra.append(v)
            t.insert_batch([(k, encode_row(decode_row(v) + extra)) for k, v in t.items()])
            return
        keep = [i for i, n in enumerate(bn) if n in an]
        t = self._trees.tree(a.tree)
        t.insert_batch([(k, encode_row([r[i] for i in keep]))
                        for k, r in ((k, decode_row(v)) for k, v in t.items())])

    def _build_indexes(self, t: TableSchema, indexes) -> None:
        trees = self._trees
        for idx in indexes:
            seen: dict[bytes, bytes] = {}
            pairs = []
            for k, v in trees.tree(t.tree).items():
                row = decode_row(v)
                ik = index_key(idx, row, k)
                if idx.unique:
                    vals = [row[c] for c in idx.columns]
                    if None not in vals:
                        p = ik[:len(ik) - len(k)]
                        if p in seen:
                            cols = ", ".join(f"{t.name}.{t.columns[c].name}"
                                             for c in idx.columns)
                            raise apsw.ConstraintError(f"UNIQUE constraint failed: {cols}")
                        seen[p] = k
                pairs.append((ik, k))
            trees.drop_tree(idx.tree)
            trees.create_tree(idx.tree)
            if pairs:
                trees.tree(idx.tree).insert_batch(pairs)

    def _ctas(self, stmt: str, params) -> None:
        """CREATE TABLE name AS SELECT: the columns (names, declared types) of the query,
        then its rows."""
        m = re.match(r"\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(.*?)\s+AS\s+(.*)\Z",
                     stmt.strip().rstrip(";"), re.I | re.S)
        if not m:
            raise apsw.SQLError("cannot read CREATE TABLE ... AS")
        name, query = m.group(2).strip(), m.group(3)
        if self._db.shadow.table_name(unquote(name)) is not None:
            if m.group(1):
                return
            raise apsw.SQLError(f"table {name} already exists")
        cur = self._db.conn.cursor()
        desc: list = []

        def trace(c, _sql, _b):
            desc[:] = c.get_description()
            return False  # only prepare: learn the columns

        cur.exec_trace = trace
        try:
            cur.execute(query, params)
        except apsw.ExecTraceAbort:
            pass
        cols = ", ".join(f"{quote_ident(n)} {_ctas_type(t)}".rstrip() for n, t in desc)
        self._ddl(f"CREATE TABLE {name} ({cols})", "create_table", None)
        self.execute(f"INSERT INTO {name} {query}", params=params)

    # -- seed conveniences -----------------------------------------------------------------

    def create_table(self, table_name: str, columns: Iterable[tuple[str, str]]):
        """CREATE TABLE ``table_name`` with ``[(column, type_sql), ...]``."""
        if not isinstance(table_name, str):
            raise TypeError(f"table_name must be a str, not {type(table_name).__name__}")
        cols = []
        for c in columns:
            if not (isinstance(c, (tuple, list)) and len(c) == 2 and
                    all(isinstance(x, str) for x in c)):
                raise TypeError(f"columns must be (name, type_sql) pairs of str, not {c!r}")
            cols.append(f"{quote_ident(c[0])} {c[1]}")
        if not cols:
            raise ValueError("a table needs at least one column")
        return self.execute(f"CREATE TABLE {quote_ident(table_name)} ({', '.join(cols)})")

    @_locked
    def insert(self, table_name: str, values: Iterable):
        """Insert rows (sequences of Python values, bound safely); ``{"type": "insert",
        "count": n}``."""
        if not isinstance(table_name, str):
            raise TypeError(f"table_name must be a str, not {type(table_name).__name__}")
        rows = [list(r) for r in values]
        if not rows:
            return {"type": "insert", "count": 0}
        width = len(rows[0])
        if any(len(r) != width for r in rows):
            raise ValueError("every row must have the same number of values")
        sql = f"INSERT INTO {quote_ident(table_name)} VALUES ({','.join('?' * width)})"
        db = self._db
        db.session.omitted = {table_name.lower(): set()}   # every column is given
        own = not db.session.in_transaction()
        db.session.bulk = own
        if own:
            db.conn.execute("BEGIN")
        try:
            db.conn.executemany(sql, rows)
            if own:
                db.conn.execute("COMMIT")
        except BaseException:
            if own and db.session.in_transaction():
                db.conn.execute("ROLLBACK")
            raise
        finally:
            db.session.omitted = None
            db.session.bulk = False
        return {"type": "insert", "count": len(rows)}

    def select(self, table_name: str, columns: list[str] | None = None,
               where_clause: str | None = None, format: str = "dict"):
        """SELECT ``columns`` (default all) FROM ``table_name`` [WHERE ``where_clause``]."""
        if not isinstance(table_name, str):
            raise TypeError(f"table_name must be a str, not {type(table_name).__name__}")
        cols = "*" if not columns else ", ".join(quote_ident(c) for c in columns)
        sql = f"SELECT {cols} FROM {quote_ident(table_name)}"
        if where_clause:
            sql += f" WHERE {where_clause}"
        return self.execute(sql, format)

    # -- versions --------------------------------------------------------------------------

    def _no_txn(self, what: str) -> None:
        if self._db.session.in_transaction():
            raise ValueError(f"cannot {what} inside a SQL transaction: COMMIT or ROLLBACK "
                             f"first")

    @_locked
    def commit(self, message: str) -> str:
        """Commit every table, index and the schema as one version; returns its id."""
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        self._no_txn("commit")
        return self._kv.commit(message)

    def branch(self, name: str, start: str | None = None) -> str:
        """Create branch ``name`` (at ``start``, default HEAD) without switching to it."""
        return self._kv.branch(name, start)

    @_locked
    def create_branch(self, name: str, start: str | None = None) -> str:
        """Create branch ``name`` and switch to it."""
        self._no_txn("create a branch")
        cid = self._kv.create_branch(name, start)
        self._load()
        return cid

    @_locked
    def checkout(self, ref: str) -> None:
        """Switch to a branch (or detach at any commit, read-only)."""
        self._no_txn("checkout")
        self._kv.checkout(ref)
        self._load()

    def current_branch(self) -> str | None:
        """The branch checked out (None when HEAD is detached)."""
        return self._kv.current_branch()

    def list_branches(self) -> list[str]:
        """Every branch name, sorted."""
        return self._kv.list_branches()

    def log(self, ref: str | None = None, limit: int | None = None) -> list[dict]:
        """Commits reachable from ``ref`` (default HEAD), newest first, as
        :meth:`VersionedKvStore.log` gives them."""
        return self._kv.log(ref, limit)

    def tables(self, ref: str | None = None) -> list[str]:
        """The table names (of the working copy, or at ``ref``)."""
        if ref is None:
            return sorted(t.name for t in self._db.schemas.values())
        return sorted(t.name for t in self._schemas_at(ref).values())

    @property
    def trees(self) -> Trees:
        """The named trees the database lives in (see :mod:`prollytree.sql.trees`)."""
        return self._trees

    def schemas_at(self, ref: str) -> dict[str, TableSchema]:
        """The table schemas (by lower-case name) at ``ref``."""
        return self._schemas_at(ref)

    def _schemas_at(self, ref: str) -> dict[str, TableSchema]:
        """The table schemas at ``ref`` (cached by the catalog's root: a catalog that did
        not change is read once)."""
        if not isinstance(ref, str):
            raise TypeError(f"ref must be a str, not {type(ref).__name__}")
        cid = self._kv.resolve_ref(ref)
        root = self._trees.root_hash(CATALOG, cid)
        got = self._schema_cache.get(root)
        if got is None:
            shadow = Shadow()
            try:
                for k, v in self._trees.tree_at(cid, CATALOG).items():
                    if k.startswith(_T):
                        shadow.load_entry(v)
                got = {n.lower(): shadow.schema(n) for n in shadow.tables()}
            finally:
                shadow.close()
            if len(self._schema_cache) > 16:
                self._schema_cache.clear()
            self._schema_cache[root] = got
        return got

    @_locked
    def diff(self, from_ref: str, to_ref: str, table: str | None = None) -> list[dict]:
        """Row changes between two commits (of every table, or of ``table``): dicts with
        ``table``, ``type`` ("added", "removed", "modified"), ``key`` (primary key tuple),
        ``old`` and ``new`` (row dicts or None). Computed structurally per table tree: the
        cost grows with the number of changes."""
        a, b = self._schemas_at(from_ref), self._schemas_at(to_ref)
        out = []
        names = sorted(set(a) | set(b))
        if table is not None:
            names = [n for n in names if n == table.lower()]
        for n in names:
            sa, sb = a.get(n), b.get(n)
            tree = (sb or sa).tree
            for k, old, new in self._trees.diff(from_ref, to_ref, tree):
                out.append({
                    "table": (sb or sa).name,
                    "type": "added" if old is None else "removed" if new is None
                    else "modified",
                    "key": decode_key(k),
                    "old": dict(zip(sa.names, decode_row(old))) if old and sa else None,
                    "new": dict(zip(sb.names, decode_row(new))) if new and sb else None})
        return out

    def status(self) -> list[tuple[str, tuple, str]]:
        """Uncommitted row changes: (table, primary key tuple, "added"/"modified"/"removed")."""
        by_tree = {t.tree: t.name for t in self._db.schemas.values()}
        return [(by_tree[tree], decode_key(k), what)
                for tree, k, what in self._trees.status() if tree in by_tree]

    def hashof_table(self, table: str, ref: str = "HEAD") -> str | None:
        """The hex root hash of ``table``'s tree at ``ref`` (None when absent there)."""
        h = self._trees.root_hash(table_tree(table), ref)
        return h.hex() if h is not None else None

    def rows_at(self, ref: str, table: str) -> Iterable[tuple]:
        """The rows of ``table`` at ``ref`` as tuples, in primary key order."""
        cid = self._kv.resolve_ref(ref)
        for _k, v in self._trees.tree_at(cid, table_tree(table)).items():
            yield tuple(decode_row(v))

    def history(self, table: str, ref: str = "HEAD", key: tuple | None = None
                ) -> Iterable[tuple[list, dict]]:
        """Every version of every row of ``table``: (row, commit) for each commit (newest
        first) that set that row, compared with its first parent (structural diffs).
        With ``key`` (the primary key tuple), only that row's versions, found by the
        store's per-key history (one lookup per commit)."""
        tree = table_tree(table)
        if key is not None:
            k = encode_key(tuple(key))
            for c in self._trees.commits_for_key(tree, k):
                v = self._trees.tree_at(c["id"], tree).get(k)
                if v is not None:
                    yield decode_row(v), c
            return
        for c in self._kv.log(ref):
            parent = c["parents"][0] if c["parents"] else None
            if parent is None:
                changes = [(k, None, v) for k, v in self._trees.tree_at(c["id"], tree).items()]
            else:
                changes = self._trees.diff(parent, c["id"], tree)
            for _k, _old, new in changes:
                if new is not None:
                    yield decode_row(new), c

    def commit_changes(self, table: str, ref: str) -> Iterable[tuple[list, dict]]:
        """(row, commit) for the rows of ``table`` that commit ``ref`` set (against its
        first parent)."""
        tree = table_tree(table)
        try:
            c = self._kv.commit_info(ref)
        except ValueError:
            return
        if c["parents"]:
            changes = self._trees.diff(c["parents"][0], c["id"], tree)
        else:
            changes = [(k, None, v) for k, v in self._trees.tree_at(c["id"], tree).items()]
        for _k, _old, new in changes:
            if new is not None:
                yield decode_row(new), c

    def merge_conflicts(self) -> list[tuple[str, bytes, bytes | None, bytes | None,
                                            bytes | None]]:
        """(table, key, base row, our row, their row) of the last merge stopped by
        conflicts, without those already resolved (encoded rows; None: absent)."""
        return [c for c in self._conflicts if (c[0].lower(), c[1]) not in self._resolved]

    def resolve_conflict(self, table: str, key: bytes, row: bytes | None) -> None:
        """Record how a conflict of the last stopped merge is to be resolved (the encoded
        row to keep, None to delete it); merging the same source again applies it.
        ``DELETE FROM prolly_conflicts_<t>`` keeps our row, ``UPDATE ... SET our_<c> = ...``
        keeps the edited row."""
        self._resolved[(table.lower(), key)] = row

    @_locked
    def merge(self, source: str, conflict_resolution: Any = None) -> str:
        """Three-way merge of ``source`` into the current branch, row by row; the same row
        changed on both sides in different columns merges cell by cell. True conflicts
        (the same cell changed differently, or a change against a delete) are resolved by
        ``conflict_resolution`` (a ``ConflictResolution`` or a callable, as for the store);
        without one the merge raises MergeConflictError, changes nothing, and lists them
        in ``prolly_conflicts_<table>``. Returns the resulting commit id."""
        res = conflict_resolution
        if res is not None and not isinstance(res, ConflictResolution) and not callable(res):
            raise TypeError(f"conflict_resolution must be a ConflictResolution or a callable, "
                            f"not {type(res).__name__}")
        self._no_txn("merge")
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, not {type(source).__name__}")
        violations = self._merge_violations(source)
        if violations:
            raise MergeConflictError(
                f"merging {source!r} would violate constraints; nothing was merged: "
                + "; ".join(violations[:10]) + (" ..." if len(violations) > 10 else ""), [])
        by_tree = {t.tree: t for t in self._db.schemas.values()}
        trees = self._trees
        conflicts: list = []
        fixups: list = []
        resolved = self._resolved if self._conflict_source == source else {}

        def resolve(c):
            loc = trees.conflict_location(c)
            if loc is None or loc[0] == CATALOG:
                if res is None:
                    conflicts.append(("<schema>" if loc else "<kv>", c.key, c.base_value,
                                      c.destination_value, c.source_value))
                    return Unresolved
                return _strategy(res, c)
            tree, key = loc
            if tree.startswith("sql/i/"):
                return c.destination_value  # index entries are recomputed below
            t = by_tree.get(tree)
            merged = _cellwise(c.base_value, c.source_value, c.destination_value)
            if merged is None:
                name = t.name if t else tree
                if (name.lower(), key) in resolved:
                    merged = resolved[(name.lower(), key)]
                elif res is None:
                    conflicts.append((name, key, c.base_value, c.destination_value,
                                      c.source_value))
                    return Unresolved
                else:
                    merged = _strategy(res, c)
            if t is not None:
                fixups.append((t, key, c, merged))
            return merged

        try:
            cid = trees.merge(source, resolve)
        except MergeConflictError:
            self._conflicts = conflicts
            self._resolved = dict(resolved)
            self._conflict_source = source
            raise
        self._conflicts = []
        self._resolved = {}
        self._conflict_source = None
        if fixups and self._fix_indexes(fixups):
            cid = self._kv.commit(f"Merge {source}: index entries of cell-merged rows")
        self._load()
        return cid

    def _merge_violations(self, source: str) -> list[str]:
        """UNIQUE and CHECK violations the merge of ``source`` would create (rows merged
        from both sides can break constraints each side kept). Reads the two sides'
        changes since the merge base (structural diffs) and the current indexes."""
        kv, trees = self._kv, self._trees
        head = kv.current_commit()
        src = kv.resolve_ref(source)
        base = kv.merge_base(head, src)
        if base is None or base in (head, src):
            return []  # fast-forward or nothing to do: the result is a state already valid
        out: list[str] = []
        for t in self._db.schemas.values():
            ours = {k: new for k, _old, new in trees.diff(base, head, t.tree)}
            theirs = {k: new for k, _old, new in trees.diff(base, src, t.tree)}
            if not theirs:
                continue
            merged: dict[bytes, bytes | None] = {}
            cellwise: set[bytes] = set()
            for k, new in theirs.items():
                if k not in ours:
                    merged[k] = new
                elif ours[k] != new:
                    m = _cellwise(trees.tree_at(base, t.tree).get(k), new, ours[k])
                    if m is not None:
                        merged[k] = m
                        cellwise.add(k)
            rows = {k: decode_row(v) for k, v in merged.items() if v is not None}
            for idx in t.indexes:
                if not idx.unique:
                    continue
                seen: dict[bytes, bytes] = {}
                for k, row in rows.items():
                    vals = [row[c] for c in idx.columns]
                    if any(v is None for v in vals) or len(row) != len(t.columns):
                        continue
                    p = encode_key(vals)
                    others = {k2 for _ik, k2 in trees.tree(idx.tree).prefix(p)}
                    if p in seen:
                        others.add(seen[p])
                    seen[p] = k
                    for k2 in others - {k}:
                        # still there with those values once merged?
                        if k2 in merged:
                            r2 = rows.get(k2)
                            if r2 is None or [r2[c] for c in idx.columns] != vals:
                                continue
                        cols = ", ".join(f"{t.name}.{t.columns[c].name}" for c in idx.columns)
                        out.append(f"UNIQUE {cols} = {tuple(vals)!r}")
            if t.has_check:
                db = self._db.shadow.db
                q = quote_ident(t.name)
                for k in cellwise:
                    row = rows.get(k)
                    if row is None:
                        continue
                    try:
                        with db:
                            db.execute(f"INSERT INTO {q} VALUES "
                                       f"({','.join('?' * len(row))})", row)
                            db.execute(f"DELETE FROM {q}")
                    except apsw.ConstraintError as e:
                        out.append(f"{e} for {t.name} key {decode_key(k)!r}")
        return out

    def _fix_indexes(self, fixups) -> bool:
        """Index entries of rows a merge resolved may mix both sides: recompute them."""
        changed = False
        for t, key, c, merged in fixups:
            for idx in t.indexes:
                want = set()
                if merged is not None:
                    want.add(index_key(idx, decode_row(merged), key))
                h = self._trees.tree(idx.tree)
                for raw in (c.base_value, c.source_value, c.destination_value):
                    if raw is None:
                        continue
                    ik = index_key(idx, decode_row(raw), key)
                    if ik not in want and h.get(ik) is not None:
                        h.delete(ik)
                        changed = True
                for ik in want:
                    if h.get(ik) != key:
                        h.insert(ik, key)
                        changed = True
        return changed

    def deferred_checkout(self, ref: str) -> str:
        """prolly_checkout(): checkout now, reload the connection after the statement."""
        self._no_txn("checkout")
        self._kv.checkout(ref)
        self._reload = True
        return self._kv.current_commit()

    def deferred_merge(self, ref: str) -> str:
        """prolly_merge(): merge now, reload the connection after the statement."""
        cid = self.merge(ref)
        self._reload = True
        return cid

    # -- time travel -----------------------------------------------------------------------

    def _at(self, ref: str) -> Database:
        if not isinstance(ref, str):
            raise TypeError(f"ref must be a str, not {type(ref).__name__}")
        cid = self._kv.resolve_ref(ref)
        trees = self._trees
        return Database(lambda name: trees.tree_at(cid, name),
                        trees.tree_at(cid, CATALOG).items(), True)

    @_locked
    def query_at_commit(self, ref: str, query: str, format: str = "dict", params: Any = None):
        """Run the read-only ``query`` against the database as it was at ``ref`` (branch,
        tag, commit id or prefix, ``HEAD~N``...)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        _check_format(format)
        db = self._at(ref)
        try:
            result: Any = []
            for s in split(query):
                labels, rows, _q = db.query(s, params)
                result = format_rows(labels, rows, format)
            return result
        finally:
            db.close()
