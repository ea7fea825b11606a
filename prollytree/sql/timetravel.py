"""``prolly_at_<t>('ref')``: a table as of any ref, as a table-valued function.

The rows come from the table's tree at that commit, through the same virtual-table code as the
current table, so equality and range constraints on the primary key and indexed columns are
pushed down here too (a join with the current table does one key lookup per row, not a scan).
"""

from __future__ import annotations

import apsw

from .schema import TableSchema, quote_ident
from .vtable import ProllyTable, Session, offer_plan

__all__ = ["AtModule"]


class AtModule:
    """The eponymous module ``prolly_at_<t>`` for table ``schema`` of ``store``."""

    def __init__(self, store, schema: TableSchema) -> None:
        self.store = store
        self.schema = schema

    def Connect(self, conn, modname, dbname, tablename, *args):
        cols = ", ".join(f"{quote_ident(c.name)} {c.type}" for c in self.schema.columns)
        return f"CREATE TABLE x({cols}, ref HIDDEN)", AtTable(self.store, self.schema)

    Create = Connect


class AtTable:
    def __init__(self, store, schema: TableSchema) -> None:
        self.store = store
        self.schema = schema
        # the planner of the current table (its key and indexes) chooses the scans
        self.planner = ProllyTable(Session(lambda n: None, {}, True), schema)
        self._at: dict[str, tuple] = {}

    def BestIndexObject(self, ii) -> bool:
        ncols = len(self.schema.columns)
        ref = None
        cons = []
        for i in range(ii.nConstraint):
            c, op = ii.get_aConstraint_iColumn(i), ii.get_aConstraint_op(i)
            usable = ii.get_aConstraint_usable(i)
            if c == ncols:
                if op == apsw.SQLITE_INDEX_CONSTRAINT_EQ and usable and ref is None:
                    ref = i
                cons.append((-99, op))
                continue
            ok = usable and (ii.get_aConstraint_collation(i) or "BINARY").upper() == "BINARY"
            cons.append((c if ok else -99, op))
        if ref is None:
            ii.estimatedCost = 1e12  # the ref argument is required
            return True
        ii.set_aConstraintUsage_argvIndex(ref, 1)
        ii.set_aConstraintUsage_omit(ref, True)
        orderbys = [(ii.get_aOrderBy_iColumn(j), ii.get_aOrderBy_desc(j))
                    for j in range(ii.nOrderBy)]
        got = self.planner.choose(cons, orderbys)
        if got is None:
            ii.idxStr = ""
            ii.estimatedCost = 1e6
            return True
        offer_plan(ii, got, 2)  # argument 1 is the ref
        return True

    def table_at(self, ref) -> tuple[ProllyTable | None, list[int] | None]:
        """(the table at ``ref`` or None, column remap or None) for the commit ``ref``."""
        if not isinstance(ref, str):
            raise apsw.SQLError("prolly_at_<table>(ref): ref must be text")
        cid = self.store.kv.resolve_ref(ref)
        got = self._at.get(cid)
        if got is None:
            schemas = self.store.schemas_at(cid)
            past = schemas.get(self.schema.name.lower())
            if past is None:
                got = (None, None)
            else:
                trees = self.store.trees
                t = ProllyTable(Session(lambda n: trees.tree_at(cid, n), schemas, True), past)
                now = [c.name.lower() for c in self.schema.columns]
                then = [c.name.lower() for c in past.columns]
                remap = None if now == then else [then.index(n) if n in then else -1
                                                  for n in now]
                got = (t, remap)
            if len(self._at) > 8:
                self._at.clear()
            self._at[cid] = got
        return got

    def Open(self):
        return AtCursor(self)

    def Disconnect(self) -> None:
        pass

    Destroy = Disconnect


class AtCursor:
    def __init__(self, table: AtTable) -> None:
        self.tab = table
        self.it = iter(())
        self.raw = self.row = None
        self.remap = None
        self.ref = None
        self.eof = True

    def Filter(self, indexnum, indexname, args):
        from .rows import decode_row
        self._decode = decode_row
        if not args:
            raise apsw.SQLError(f"prolly_at_{self.tab.schema.name}(ref) needs a ref")
        self.ref = args[0]
        t, remap = self.tab.table_at(args[0])
        self.remap = remap
        if t is None:
            self.it = iter(())
        elif indexname and remap is None:
            self.it = t.plan_iter(indexname, args[1:])
        else:
            # the schema changed since: scan, and let SQLite check the constraints
            self.it = t.scan(t.main, None, None)
        self.Next()

    def Next(self) -> None:
        nxt = next(self.it, None)
        self.eof = nxt is None
        self.raw = None if nxt is None else nxt[1]
        self.row = None

    def Eof(self) -> bool:
        return self.eof

    def Rowid(self) -> int:
        return 0

    def Column(self, n: int):
        ncols = len(self.tab.schema.columns)
        if n == ncols:
            return self.ref
        if self.row is None:
            self.row = self._decode(self.raw)
        if self.remap is not None:
            n = self.remap[n] if n >= 0 else n
            if n < 0:
                return None
        return self.row[n] if n < len(self.row) else None

    def Close(self) -> None:
        self.it = iter(())
