"""DDL of a SQL store: CREATE/ALTER/DROP reconciled into the catalog, table and index trees
(rewriting rows when a table's layout changes, building indexes), and CREATE TABLE AS."""

from __future__ import annotations

import re

import apsw
import msgpack

from ..errors import ReadOnlyError
from .rows import decode_row, encode_row
from .schema import CATALOG, CATALOG_TABLE, CATALOG_VIEW, TableSchema, affinity, quote_ident, seq_key
from .dml import unquote
from .vtable import index_key


def ctas_type(decl: str | None) -> str:
    """The column type CREATE TABLE AS gives a result column: its affinity's name."""
    if not decl:
        return ""
    return {"INTEGER": "INT", "TEXT": "TEXT", "REAL": "REAL", "NUMERIC": "NUM",
            "BLOB": ""}[affinity(decl)]



class DDLOperations:
    """The DDL half of :class:`~.store.ProllySQLStore` (a mixin over its state)."""

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
                cat.insert(CATALOG_TABLE + n.encode(), shadow.catalog_entry(t.name))
        for n in before:
            if n not in after:
                cat.delete(CATALOG_TABLE + n.encode())
                if before[n].autoincrement:
                    seq = cat.get(seq_key(n))
                    cat.delete(seq_key(n))
                    renamed = [m for m in after if m not in before]
                    if kind == "alter_table" and len(renamed) == 1 and seq is not None:
                        cat.insert(seq_key(renamed[0]), seq)
        if views_after != views_before:
            for name, _sql in views_before:
                cat.delete(CATALOG_VIEW + name.lower().encode())
            for name, sql in views_after:
                cat.insert(CATALOG_VIEW + name.lower().encode(), msgpack.packb({"sql": sql}))
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
        cols = ", ".join(f"{quote_ident(n)} {ctas_type(t)}".rstrip() for n, t in desc)
        self._ddl(f"CREATE TABLE {name} ({cols})", "create_table", None)
        self.execute(f"INSERT INTO {name} {query}", params=params)

