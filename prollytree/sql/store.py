"""ProllySQLStore: the full SQLite dialect over versioned prolly trees.

SQLite (through apsw) runs every statement; each table is a virtual table served by
:mod:`.vtable` from its prolly tree. DDL is run first on a shadow schema database (SQLite parses
and validates it), then the catalog tree, the table and index trees and the virtual tables are
brought in line with it. Versions are made by :meth:`ProllySQLStore.commit` (or ``SELECT
prolly_commit('message')``).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterable

import apsw

from ..versioning import VersionedKvStore
from .schema import CATALOG, TableSchema, quote_ident
from .dml import insert_target, run_upsert, split_upsert
from .statements import dml_kind, kind_of, split
from .trees import Trees

from .database import Database, locked
from .ddl import DDLOperations
from .results import FORMATS, check_format, format_rows
from .versions import VersionOperations

__all__ = ["ProllySQLStore", "FORMATS", "format_rows"]

_RESULT = {"create_table": "create", "ctas": "create", "create_index": "create_index",
           "create_view": "create_view", "drop_table": "drop_table", "drop_index": "drop_index",
           "drop_view": "drop_view", "alter_table": "alter_table", "create_temp": "create"}


class ProllySQLStore(DDLOperations, VersionOperations):
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

    @locked
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

    @locked
    def execute(self, query: str, format: str = "dict", params: Any = None):
        """Run ``query`` (one or more statements; the result of the last is returned).

        Queries give their rows as ``format``: "dict"/"dicts" (list of dicts), "tuples"
        (``(labels, rows)``), "json" or "csv"; other statements give ``{"type": "insert" |
        "update" | "delete", "count": n}`` or ``{"type": "create" | ..., "success": True}``.
        ``params`` (a sequence or a dict) binds ``?`` / ``:name`` placeholders."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        check_format(format)
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

    @locked
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

    # -- time travel -----------------------------------------------------------------------

    def _at(self, ref: str) -> Database:
        if not isinstance(ref, str):
            raise TypeError(f"ref must be a str, not {type(ref).__name__}")
        cid = self._kv.resolve_ref(ref)
        trees = self._trees
        return Database(lambda name: trees.tree_at(cid, name),
                        trees.tree_at(cid, CATALOG).items(), True)

    @locked
    def query_at_commit(self, ref: str, query: str, format: str = "dict", params: Any = None):
        """Run the read-only ``query`` against the database as it was at ``ref`` (branch,
        tag, commit id or prefix, ``HEAD~N``...)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        check_format(format)
        db = self._at(ref)
        try:
            result: Any = []
            for s in split(query):
                labels, rows, _q = db.query(s, params)
                result = format_rows(labels, rows, format)
            return result
        finally:
            db.close()
