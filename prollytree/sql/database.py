"""The SQLite connection of a SQL store: one apsw connection whose tables are served from a
set of named trees, and the lock that serialises a store's statements."""

from __future__ import annotations

import functools
from typing import Iterable

import apsw
import msgpack

from .schema import CATALOG_TABLE, CATALOG_VIEW, Shadow, TableSchema, quote_ident
from .vtable import ProllyModule, Session


def locked(method):
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
            if k.startswith(CATALOG_TABLE):
                self.shadow.load_entry(v)
            elif k.startswith(CATALOG_VIEW):
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

