"""Table and index schemas, read from SQLite itself.

The schema of a database is kept as SQL text in the catalog tree; at run time a *shadow*
in-memory SQLite database holds the same (empty) native tables and indexes, so SQLite parses and
validates every CREATE/ALTER, and its PRAGMAs tell us columns, keys and indexes. Rows are checked
against the shadow table too (CHECK constraints, type affinity) when Python cannot decide alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apsw
import msgpack

__all__ = ["SEQ", "seq_key", "Column", "IndexSchema", "TableSchema", "Shadow", "affinity", "quote_ident",
           "table_tree", "index_tree", "CATALOG"]

CATALOG = "sql/catalog"
# catalog key prefixes: a table entry, a view entry (then the lower-cased name)
CATALOG_TABLE, CATALOG_VIEW = b"t\x00", b"v\x00"
SEQ = b"s\x00"   # catalog key prefix: the AUTOINCREMENT high-water mark of a table


def seq_key(table: str) -> bytes:
    return SEQ + table.lower().encode()


def table_tree(name: str) -> str:
    return "sql/t/" + name.lower()


def index_tree(name: str) -> str:
    return "sql/i/" + name.lower()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def affinity(decl: str) -> str:
    """SQLite's column affinity for a declared type (datatype3.html section 3.1)."""
    t = (decl or "").upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


@dataclass
class Column:
    name: str
    type: str
    affinity: str
    notnull: bool
    default: str | None      # SQL expression text, as PRAGMA table_xinfo gives it
    collation: str


@dataclass
class IndexSchema:
    name: str
    table: str
    sql: str | None          # None for indexes SQLite makes for UNIQUE constraints
    columns: list[int]
    unique: bool
    binary: bool             # every column uses the BINARY collation (push-down allowed)

    @property
    def tree(self) -> str:
        return index_tree(self.name)


@dataclass
class TableSchema:
    name: str
    sql: str
    columns: list[Column]
    pk: list[int]                  # primary key columns (empty: keyed by rowid)
    rowid_alias: int | None        # the INTEGER PRIMARY KEY column, if any
    has_check: bool
    autoincrement: bool = False
    indexes: list[IndexSchema] = field(default_factory=list)

    @property
    def tree(self) -> str:
        return table_tree(self.name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def declaration(self) -> str:
        """The CREATE TABLE a virtual table declares (types give SQLite the affinities)."""
        cols = ", ".join(f"{quote_ident(c.name)} {c.type}" if c.type else quote_ident(c.name)
                         for c in self.columns)
        return f"CREATE TABLE x({cols})"

    def pk_binary(self) -> bool:
        return all(self.columns[i].collation.upper() == "BINARY" for i in self.pk)


class Shadow:
    """The in-memory SQLite database holding the schema (no rows)."""

    def __init__(self) -> None:
        self.db = apsw.Connection(":memory:")

    def close(self) -> None:
        self.db.close()

    def execute(self, sql: str, params=None) -> list:
        return list(self.db.execute(sql, params))

    def tables(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name")]

    def views(self) -> list[tuple[str, str]]:
        return list(self.db.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type='view' ORDER BY name"))

    def table_name(self, name: str) -> str | None:
        """The table's name as declared (names are case-insensitive), or None."""
        r = list(self.db.execute("SELECT name FROM sqlite_schema WHERE type='table' AND "
                                 "name = ? COLLATE NOCASE", (name,)))
        return r[0][0] if r else None

    def index_table(self, name: str) -> tuple[str, str] | None:
        r = list(self.db.execute("SELECT name, tbl_name FROM sqlite_schema WHERE type='index' "
                                 "AND name = ? COLLATE NOCASE", (name,)))
        return (r[0][0], r[0][1]) if r else None

    def schema(self, name: str) -> TableSchema:
        db = self.db
        q = quote_ident(name)
        (sql,) = next(db.execute("SELECT sql FROM sqlite_schema WHERE type='table' AND name=?",
                                 (name,)))
        cols, pk = [], []
        for cid, cname, ctype, notnull, dflt, pkpos, hidden in db.execute(
                f"PRAGMA table_xinfo({q})"):
            if hidden:
                raise ValueError(f"table {name!r}: generated columns are not supported")
            coll = db.column_metadata("main", name, cname)[1] or "BINARY"
            cols.append(Column(cname, ctype, affinity(ctype), bool(notnull), dflt, coll))
            if pkpos:
                pk.append((pkpos, cid))
        pk_cols = [c for _, c in sorted(pk)]
        alias = None
        if len(pk_cols) == 1 and cols[pk_cols[0]].type.upper() == "INTEGER":
            # INTEGER PRIMARY KEY is a rowid alias unless declared DESC (a quirk we follow:
            # SQLite keeps "INTEGER PRIMARY KEY DESC" a separate key)
            origin = [r for r in db.execute(f"PRAGMA index_list({q})") if r[3] == "pk"]
            if not origin:
                alias = pk_cols[0]
        t = TableSchema(name, sql, cols, pk_cols, alias, "CHECK" in sql.upper(),
                        alias is not None and "AUTOINCREMENT" in sql.upper())
        for _seq, iname, unique, origin, partial in db.execute(f"PRAGMA index_list({q})"):
            if origin == "pk":
                continue
            if partial:
                raise ValueError(f"index {iname!r}: partial indexes are not supported")
            icols, binary = [], True
            for _n, cid, _cn, _desc, coll, key in db.execute(
                    f"PRAGMA index_xinfo({quote_ident(iname)})"):
                if not key:
                    continue
                if cid < 0:
                    raise ValueError(f"index {iname!r}: indexes on expressions are not "
                                     f"supported")
                icols.append(cid)
                binary = binary and (coll or "BINARY").upper() == "BINARY"
            isql = next(db.execute("SELECT sql FROM sqlite_schema WHERE type='index' AND "
                                   "name=?", (iname,)))[0]
            t.indexes.append(IndexSchema(iname, name, isql, icols, bool(unique), binary))
        t.indexes.sort(key=lambda i: i.name)
        return t

    def catalog_entry(self, name: str) -> bytes:
        """The catalog value of table ``name``: its SQL and its indexes' SQL, canonical."""
        t = self.schema(name)
        return msgpack.packb({"sql": t.sql,
                              "indexes": sorted(i.sql for i in t.indexes if i.sql)})

    def load_entry(self, value: bytes) -> None:
        e = msgpack.unpackb(value)
        self.db.execute(e["sql"])
        for s in e["indexes"]:
            self.db.execute(s)
