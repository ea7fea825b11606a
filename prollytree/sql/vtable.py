"""The apsw virtual-table module that serves SQLite's queries and writes from prolly trees.

One :class:`ProllyTable` per SQL table. Writes of a transaction go to an in-memory overlay (per
tree: key -> value, None = deleted) with an undo log, so ``ROLLBACK``, ``ROLLBACK TO`` and a
failed statement undo exactly; SQLite's commit of the transaction applies the overlay to the
trees (staged in the store until a version commit). ``BestIndex`` pushes equality and range
constraints on the primary key and on indexed columns down to tree range scans.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import apsw

from .coercion import coerce
from .keys import encode_key, encode_value, decode_key, prefix_end
from .rows import decode_row, encode_row
from .schema import CATALOG, IndexSchema, TableSchema, quote_ident, seq_key

__all__ = ["ProllyModule", "ProllyTable", "Session", "index_key"]

EQ = apsw.SQLITE_INDEX_CONSTRAINT_EQ
GT = apsw.SQLITE_INDEX_CONSTRAINT_GT
GE = apsw.SQLITE_INDEX_CONSTRAINT_GE
LT = apsw.SQLITE_INDEX_CONSTRAINT_LT
LE = apsw.SQLITE_INDEX_CONSTRAINT_LE
_IGNORE, _REPLACE = 2, 5

def index_key(idx: IndexSchema, row: list, key: bytes) -> bytes:
    """The entry of ``row`` (primary key encoding ``key``) in index ``idx``."""
    return encode_key([row[c] for c in idx.columns]) + key


def _merge(base: Iterator, over: list, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
    """Merge a tree scan with sorted overlay entries (overlay wins; None hides)."""
    if not over:
        yield from base
        return
    i, n = 0, len(over)
    for k, v in base:
        while i < n and (over[i][0] > k if reverse else over[i][0] < k):
            if over[i][1] is not None:
                yield over[i]
            i += 1
        if i < n and over[i][0] == k:
            if over[i][1] is not None:
                yield over[i]
            i += 1
            continue
        yield k, v
    for j in range(i, n):
        if over[j][1] is not None:
            yield over[j]


_OPS = {0: "-", GT: ">", GE: ">=", LT: "<", LE: "<="}
_OPNUM = {v: k for k, v in _OPS.items()}


def _plan_str(plan: dict) -> str:
    """The plan as EXPLAIN QUERY PLAN shows it, e.g. ``prolly pk eq=1 lo=- hi=- asc``."""
    return (f"prolly {'pk' if plan['t'] == 'pk' else 'index=' + plan['t']} eq={plan['eq']} "
            f"lo={_OPS[plan['lo']]} hi={_OPS[plan['hi']]} {'desc' if plan['r'] else 'asc'}")


def _parse_plan(s: str) -> dict:
    # from the right: an index name may hold spaces
    head, eq, lo, hi, d = s.rsplit(" ", 4)
    t = head[len("prolly "):]
    return {"t": "pk" if t == "pk" else t[len("index="):], "eq": int(eq[3:]),
            "lo": _OPNUM[lo[3:]], "hi": _OPNUM[hi[3:]], "r": d == "desc"}


_KEEP = {"INTEGER": {int, bytes}, "NUMERIC": {int, bytes}, "REAL": {float, bytes},
         "TEXT": {str, bytes}, "BLOB": {int, float, str, bytes}}


_CASTER = apsw.Connection(":memory:")


class Session:
    """What the tables of one SQLite connection share: where trees come from, the schemas,
    the connection, and the live tables (for statement rollback)."""

    def __init__(self, view: Callable[[str], Any], schemas: dict[str, TableSchema],
                 readonly: bool, shadow=None) -> None:
        self._view = view                 # tree name -> handle (get/items/insert_batch)
        self._views: dict[str, Any] = {}
        self.schemas = schemas            # lower-case table name -> TableSchema
        self.readonly = readonly
        self.shadow = shadow
        self.conn: apsw.Connection | None = None
        self.tables: dict[str, "ProllyTable"] = {}
        self.changes = 0
        self.bulk = False     # ProllySQLStore.insert's own transaction: all or nothing
        # lower table name -> column indexes the running INSERT left out (None: unknown,
        # then NULLs of columns with a DEFAULT take the default)
        self.omitted: dict[str, set[int]] | None = None

    def view(self, name: str):
        """The (cached) handle of tree ``name``."""
        h = self._views.get(name)
        if h is None:
            h = self._views[name] = self._view(name)
        return h

    def cast_text(self, v: float) -> str:
        """SQLite's text for a real (TEXT affinity): asked of SQLite itself."""
        return _CASTER.execute("SELECT CAST(? AS TEXT)", (v,)).fetchall()[0][0]

    def in_transaction(self) -> bool:
        return not self.conn.get_autocommit()

    def marks(self) -> dict:
        return {n: len(t.undo) for n, t in self.tables.items()}

    def undo_to(self, marks: dict) -> None:
        for n, t in self.tables.items():
            t.undo_to(marks.get(n, 0))


class ProllyModule:
    """The ``prolly`` module: ``CREATE VIRTUAL TABLE t USING prolly`` serves table ``t``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def Create(self, conn, modname, dbname, tablename, *args):
        s = self.session
        schema = s.schemas[tablename.lower()]
        conn.vtab_config(apsw.SQLITE_VTAB_CONSTRAINT_SUPPORT, 1)
        t = ProllyTable(s, schema)
        return schema.declaration(), t

    Connect = Create


def offer_plan(ii, got: tuple, first_arg: int,
               omit: Callable[[int], bool] = lambda i: False) -> bool:
    """Tell SQLite (``ii``, an apsw IndexInfo) the scan :meth:`ProllyTable.choose` chose
    (``got``): constraint ``i`` becomes filter argument ``first_arg + n`` and is not
    checked again where ``omit(i)``; plan, ordering, cost and row estimate. Returns
    whether the scan yields at most one row."""
    used, plan, obc, cost, unique = got
    for i, n in enumerate(used):
        if n is not None:
            ii.set_aConstraintUsage_argvIndex(i, n + first_arg)
            if omit(i):
                ii.set_aConstraintUsage_omit(i, True)
    ii.idxStr = plan
    ii.orderByConsumed = obc
    ii.estimatedCost = cost
    ii.estimatedRows = 1 if unique else max(1, int(cost))
    return unique


class ProllyTable:
    """One SQL table over its prolly tree and its index trees."""

    def __init__(self, session: Session, schema: TableSchema) -> None:
        self.s = session
        self.schema = schema
        self.main = schema.tree
        self.ov: dict[str, dict[bytes, bytes | None]] = {}
        self.undo: list = []
        self.sp: dict[int, int] = {}
        self._ids: dict[bytes, int] = {}
        self._keys: list[bytes] = []
        self._next: int | None = None
        self._plans: dict[str, tuple] = {}
        self._log_undo = True
        self._seq = 0   # highest rowid inserted in this transaction (AUTOINCREMENT)
        self._top: bytes | None | bool = False   # largest key (False: not known yet)
        self._defaults: dict[int, Any] = {}
        sc = schema
        self.keycols = sc.pk if sc.pk else [-1]
        self.rowid_keyed = not sc.pk or sc.rowid_alias is not None
        self.names = [c.name for c in sc.columns]
        for i, c in enumerate(sc.columns):
            if c.default is not None and session.shadow is not None:
                self._defaults[i] = c.default
        # per column: the Python types that need no affinity conversion
        self._fast = [(i, _KEEP[c.affinity] | (set() if c.notnull else {type(None)}), c)
                      for i, c in enumerate(sc.columns)]
        session.tables[sc.name.lower()] = self

    # -- reads ---------------------------------------------------------------------------

    def get(self, tree: str, key: bytes) -> bytes | None:
        o = self.ov.get(tree)
        if o is not None and key in o:
            return o[key]
        return self.s.view(tree).get(key)

    def scan(self, tree: str, lo: bytes | None, hi: bytes | None,
             reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        base = self.s.view(tree).items(lo, hi, reverse)
        o = self.ov.get(tree)
        if not o:
            return base
        over = sorted(((k, v) for k, v in o.items()
                       if (lo is None or k >= lo) and (hi is None or k < hi)), reverse=reverse)
        return _merge(base, over, reverse)

    # -- rowids --------------------------------------------------------------------------

    def rowid_of(self, key: bytes, row: list | None = None) -> int:
        if self.rowid_keyed:
            return decode_key(key)[0]
        i = self._ids.get(key)
        if i is None:
            i = self._ids[key] = len(self._keys) + 1
            self._keys.append(key)
        return i

    def key_of_rowid(self, rowid: int) -> bytes:
        if self.rowid_keyed:
            return encode_key((rowid,))
        return self._keys[rowid - 1]

    def next_rowid(self) -> int:
        """Max rowid + 1, as SQLite picks it (AUTOINCREMENT: never an id used before)."""
        if self._next is None:
            last = next(iter(self.scan(self.main, None, None, reverse=True)), None)
            top = decode_key(last[0])[0] if last else 0
            top = top if isinstance(top, int) else 0
            if self.schema.autoincrement:
                top = max(top, self._seq_committed(), self._seq)
            self._next = top + 1
        n = self._next
        self._next += 1
        return n

    def _seq_committed(self) -> int:
        raw = self.s.view(CATALOG).get(seq_key(self.schema.name))
        return decode_key(raw)[0] if raw else 0

    def _saw_rowid(self, rowid: int) -> None:
        if rowid > self._seq:
            self._seq = rowid

    # -- plans ---------------------------------------------------------------------------

    def _col(self, c: int) -> int:
        if c == -1 and self.schema.rowid_alias is not None:
            return self.schema.rowid_alias
        return c

    def BestIndexObject(self, ii) -> bool:
        """Offer SQLite a tree range scan: equality on a key (or index) prefix, then a
        range on the next column. Only BINARY-collated comparisons are pushed down (a key
        lookup cannot answer ``k = 'a' COLLATE NOCASE``)."""
        constraints = []
        for i in range(ii.nConstraint):
            ok = ii.get_aConstraint_usable(i) and \
                (ii.get_aConstraint_collation(i) or "BINARY").upper() == "BINARY"
            constraints.append((ii.get_aConstraint_iColumn(i) if ok else -99,
                                ii.get_aConstraint_op(i)))
        orderbys = [(ii.get_aOrderBy_iColumn(j), ii.get_aOrderBy_desc(j))
                    for j in range(ii.nOrderBy)]
        got = self.choose(constraints, orderbys)
        if got is None:
            ii.estimatedCost = 1e6
            ii.estimatedRows = 1_000_000
            return True
        # where the scan returns exactly the rows the comparison accepts, SQLite need not
        # check it again
        unique = offer_plan(ii, got, 1, lambda i: self._exact(constraints[i][0]))
        if unique:
            ii.idxFlags = apsw.SQLITE_INDEX_SCAN_UNIQUE
        return True

    def _exact(self, col: int) -> bool:
        """Whether key comparisons on column ``col`` give exactly SQLite's answer: integer
        columns (and the rowid), where affinity and order leave no room for doubt."""
        col = self._col(col)
        return col == -1 or self.schema.columns[col].affinity == "INTEGER"

    def choose(self, constraints, orderbys):
        """The best scan for ``constraints`` ([(column, op)], column -99: not usable) and
        ``orderbys``: (argv positions, plan string, order consumed, cost, unique) or None."""
        sc = self.schema
        cons = [(self._col(c), op) for c, op in constraints]
        cands = []
        if sc.pk_binary():
            cands.append(("pk", self.keycols, True, 1.0))
        for idx in sc.indexes:
            if idx.binary:
                cands.append((idx.name, idx.columns, idx.unique, 2.0))
        best = None
        for name, cols, unique, weight in cands:
            eq = []
            for c in cols:
                i = next((i for i, (cc, op) in enumerate(cons) if cc == c and op == EQ), None)
                if i is None:
                    break
                eq.append(i)
            lo = hi = None
            if len(eq) < len(cols):
                nc = cols[len(eq)]
                for i, (cc, op) in enumerate(cons):
                    if cc == nc:
                        if op in (GT, GE) and lo is None:
                            lo = i
                        elif op in (LT, LE) and hi is None:
                            hi = i
            obc, rev = self._order(cols, len(eq), orderbys)
            if not eq and lo is None and hi is None:
                if name == "pk" and obc:
                    cost = 1e6 * weight
                else:
                    continue
            elif len(eq) == len(cols):
                cost = (1 if unique else 20) * weight
            elif eq:
                cost = (50 if lo is None and hi is None else 30) * weight
            else:
                cost = (300 if lo is None or hi is None else 100) * weight
            if best is None or cost < best[0]:
                best = (cost, name, eq, lo, hi, obc, rev)
        if best is None:
            return None
        cost, name, eq, lo, hi, obc, rev = best
        used: list = [None] * len(constraints)
        n = 0
        for i in eq + [j for j in (lo, hi) if j is not None]:
            used[i] = n
            n += 1
        plan = {"t": name, "eq": len(eq), "lo": cons[lo][1] if lo is not None else 0,
                "hi": cons[hi][1] if hi is not None else 0, "r": rev}
        unique = cost <= 2 and len(eq) > 0
        return used, _plan_str(plan), obc, cost, unique

    def _order(self, cols: list[int], neq: int, orderbys) -> tuple[bool, bool]:
        if not orderbys:
            return False, False
        desc = {d for _, d in orderbys}
        if len(desc) != 1:
            return False, False
        want = [self._col(c) for c, _ in orderbys]
        if want == cols[neq:neq + len(want)]:
            return True, desc.pop()
        return False, False

    def Open(self) -> "ProllyCursor":
        return ProllyCursor(self)

    def _plan(self, idxstr: str) -> tuple:
        """(plan, key columns, tree, index or None, affinities) of a BestIndex plan string
        (parsed once per table)."""
        got = self._plans.get(idxstr)
        if got is None:
            plan = _parse_plan(idxstr)
            sc = self.schema
            if plan["t"] == "pk":
                cols, tree, idx = self.keycols, self.main, None
            else:
                idx = next(i for i in sc.indexes if i.name == plan["t"])
                cols, tree = idx.columns, idx.tree
            aff = [sc.columns[c].affinity if c >= 0 else "INTEGER" for c in cols]
            got = self._plans[idxstr] = (plan, cols, tree, idx, aff)
        return got

    def plan_iter(self, idxstr: str, args) -> Iterator[tuple[bytes, bytes]]:
        plan, cols, tree, idx, aff = self._plan(idxstr)
        if None in args:
            return iter(())  # a comparison with NULL is never true
        neq = plan["eq"]
        if neq == 1 and type(args[0]) is int and aff[0] in ("INTEGER", "NUMERIC", "BLOB"):
            p = encode_value(args[0])  # the common point lookup: no conversion needed
        else:
            p = encode_key([coerce(aff[i], args[i], self.s.cast_text) for i in range(neq)])
        a = neq
        if plan["lo"]:
            e = p + encode_value(coerce(aff[neq], args[a], self.s.cast_text))
            a += 1
            lo = e if plan["lo"] == GE else prefix_end(e)
        elif plan["hi"]:
            lo = p + b"\x02"  # NULL never satisfies a comparison
        else:
            lo = p or None
        if plan["hi"]:
            e = p + encode_value(coerce(aff[neq], args[a], self.s.cast_text))
            hi = e if plan["hi"] == LT else prefix_end(e)
        else:
            hi = prefix_end(p) if p else None
        if idx is None and neq == len(cols):
            v = self.get(tree, p)
            return iter(((p, v),) if v is not None else ())
        it = self.scan(tree, lo, hi, plan["r"])
        if idx is None:
            return it
        return self._rows_of(it)

    def _rows_of(self, it):
        get, main = self.get, self.main
        for _ik, key in it:
            v = get(main, key)
            if v is not None:
                yield key, v

    # -- writes --------------------------------------------------------------------------

    def _ro(self) -> None:
        if self.s.readonly:
            raise apsw.ReadOnlyError(f"table {self.schema.name} is read-only here "
                                     f"(a past version)")

    def _put(self, tree: str, key: bytes, value: bytes | None) -> None:
        o = self.ov.get(tree)
        if o is None:
            o = self.ov[tree] = {}
        if self._log_undo:
            if key in o:
                self.undo.append((tree, key, True, o[key]))
            else:
                self.undo.append((tree, key, False, None))
        o[key] = value

    def write_row(self, key: bytes, row: list | None, old: bytes | None) -> None:
        """Set (row) or delete (None) the row at ``key``, keeping the indexes in step."""
        if old is not None:
            oldrow = decode_row(old)
            for idx in self.schema.indexes:
                self._put(idx.tree, index_key(idx, oldrow, key), None)
        if row is None:
            self._put(self.main, key, None)
            return
        self._put(self.main, key, encode_row(row))
        if self._top is not False and (self._top is None or key > self._top):
            self._top = key
        for idx in self.schema.indexes:
            self._put(idx.tree, index_key(idx, row, key), key)

    def _check(self, row: list) -> list:
        """Affinity conversion and NOT NULL / CHECK constraints, as SQLite would apply."""
        sc = self.schema
        for i, ok, c in self._fast:  # (row is the caller's own list)
            v = row[i]
            if type(v) in ok:
                continue  # already of the column's storage class: nothing to convert
            if v is None:
                if c.notnull:
                    raise apsw.ConstraintError(f"NOT NULL constraint failed: "
                                               f"{sc.name}.{c.name}")
                continue
            row[i] = coerce(c.affinity, v, self.s.cast_text)
        a = sc.rowid_alias
        if a is not None and not isinstance(row[a], int):
            raise apsw.MismatchError("datatype mismatch")
        if sc.has_check and self.s.shadow is not None:
            db = self.s.shadow.db
            q = quote_ident(sc.name)
            with db:
                db.execute(f"INSERT INTO {q} VALUES ({','.join('?' * len(row))})", row)
                db.execute(f"DELETE FROM {q}")
        return row

    def _is_new_top(self, key: bytes) -> bool:
        """Whether ``key`` is above every key of the table (then it cannot exist): bulk
        inserts in key order skip the lookup."""
        top = self._top
        if top is False:
            last = next(iter(self.scan(self.main, None, None, reverse=True)), None)
            top = self._top = last[0] if last else None
        return top is None or key > top

    def _conflicts(self, key: bytes, row: list, self_key: bytes | None) -> list[bytes]:
        """Primary keys of other rows that ``row`` (at ``key``) would collide with."""
        out = []
        if key != self_key and not (self_key is None and self._is_new_top(key)) \
                and self.get(self.main, key) is not None:
            out.append(key)
        for idx in self.schema.indexes:
            if not idx.unique:
                continue
            vals = [row[c] for c in idx.columns]
            if any(v is None for v in vals):
                continue
            p = encode_key(vals)
            for _ik, k in self.scan(idx.tree, p, prefix_end(p)):
                if k != self_key and k not in out:
                    out.append(k)
        return out

    def _unique_error(self, key: bytes, row: list, self_key: bytes | None) -> str:
        sc = self.schema
        if key != self_key and self.get(self.main, key) is not None:
            cols = self.keycols
        else:
            cols = next(i.columns for i in sc.indexes if i.unique and
                        any(k != self_key for k in self._conflicts_in(i, row)))
        return "UNIQUE constraint failed: " + ", ".join(
            f"{sc.name}.{sc.columns[c].name if c >= 0 else 'rowid'}" for c in cols)

    def _conflicts_in(self, idx: IndexSchema, row: list) -> list[bytes]:
        vals = [row[c] for c in idx.columns]
        if any(v is None for v in vals):
            return []
        p = encode_key(vals)
        return [k for _ik, k in self.scan(idx.tree, p, prefix_end(p))]

    def _key(self, row: list, rowid: int | None) -> bytes:
        sc = self.schema
        if sc.pk:
            return encode_key([row[c] for c in sc.pk])
        return encode_key((rowid,))

    def _fill_defaults(self, fields) -> list:
        row = list(fields)
        if self._defaults:
            om = self.s.omitted
            only = om.get(self.schema.name.lower()) if om is not None else None
            for i, d in self._defaults.items():
                if row[i] is None and (only is None or i in only):
                    row[i] = self.s.shadow.db.execute(f"SELECT {d}").fetchall()[0][0]
        return row

    def UpdateInsertRow(self, rowid, fields):
        self._ro()
        sc = self.schema
        row = self._fill_defaults(fields)
        a = sc.rowid_alias
        if a is not None:
            if row[a] is None:
                row[a] = rowid if rowid is not None else self.next_rowid()
        elif not sc.pk and rowid is None:
            rowid = self.next_rowid()
        row = self._check(row)
        key = self._key(row, rowid)
        clash = self._conflicts(key, row, None)
        if clash:
            mode = self.s.conn.vtab_on_conflict()
            if mode == _IGNORE:
                return self.rowid_of(key)
            if mode != _REPLACE:
                raise apsw.ConstraintError(self._unique_error(key, row, None))
            for k in clash:
                self.write_row(k, None, self.get(self.main, k))
        self.write_row(key, row, None)
        self.s.changes += 1
        if a is not None:
            if sc.autoincrement:
                self._saw_rowid(row[a])
            return row[a]
        return self.rowid_of(key)

    def UpdateDeleteRow(self, rowid):
        self._ro()
        key = self.key_of_rowid(rowid)
        old = self.get(self.main, key)
        if old is not None:
            self.write_row(key, None, old)
            self.s.changes += 1
            self._next = None

    def UpdateChangeRow(self, rowid, newrowid, fields):
        self._ro()
        sc = self.schema
        key = self.key_of_rowid(rowid)
        old = self.get(self.main, key)
        row = list(fields)
        a = sc.rowid_alias
        if a is not None and newrowid != rowid and row[a] == rowid:
            row[a] = newrowid
        row = self._check(row)
        newkey = self._key(row, newrowid if not sc.pk else None)
        clash = self._conflicts(newkey, row, key)
        if clash:
            mode = self.s.conn.vtab_on_conflict()
            if mode == _IGNORE:
                return
            if mode != _REPLACE:
                raise apsw.ConstraintError(self._unique_error(newkey, row, key))
            for k in clash:
                self.write_row(k, None, self.get(self.main, k))
        if newkey != key:
            self.write_row(key, None, old)
            self.write_row(newkey, row, None)
            if not self.rowid_keyed:
                # the row keeps its synthetic rowid under its new key
                self._ids[newkey] = rowid
                self._keys[rowid - 1] = newkey
        else:
            self.write_row(key, row, old)
        self.s.changes += 1

    # -- transactions --------------------------------------------------------------------

    def undo_to(self, n: int) -> None:
        u = self.undo
        while len(u) > n:
            tree, key, had, old = u.pop()
            if had:
                self.ov[tree][key] = old
            else:
                del self.ov[tree][key]
        self._next = None
        self._top = False

    def Begin(self) -> None:
        # an autocommit statement is its own transaction: SQLite rolls all of it back
        # on failure, so only explicit transactions (statement rollback, savepoints)
        # need the undo log
        self._log_undo = not self.s.conn.get_autocommit() and not self.s.bulk

    def Sync(self) -> None:
        pass

    def Commit(self) -> None:
        view = self.s.view
        for tree, o in self.ov.items():
            if o:
                view(tree).insert_batch(sorted(o.items()))
        if self._seq > 0 and self._seq > self._seq_committed():
            view(CATALOG).insert(seq_key(self.schema.name), encode_key((self._seq,)))
        self._reset()

    def Rollback(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.ov = {}
        self.undo = []
        self.sp = {}
        self._seq = 0
        # synthetic rowids only live for the statements of one transaction
        self._ids = {}
        self._keys = []
        self._next = None
        self._top = False

    def Savepoint(self, level: int) -> None:
        self.sp = {k: v for k, v in self.sp.items() if k < level}
        self.sp[level] = len(self.undo)

    def Release(self, level: int) -> None:
        self.sp = {k: v for k, v in self.sp.items() if k < level}

    def RollbackTo(self, level: int) -> None:
        if level in self.sp:
            self.undo_to(self.sp[level])
        self.sp = {k: v for k, v in self.sp.items() if k <= level}

    def Disconnect(self) -> None:
        if self.s.tables.get(self.schema.name.lower()) is self:
            del self.s.tables[self.schema.name.lower()]

    Destroy = Disconnect


class ProllyCursor:
    def __init__(self, table: ProllyTable) -> None:
        self.t = table
        self.it: Iterator = iter(())
        self.key = self.raw = self.row = None
        self.eof = True

    def Filter(self, indexnum, indexname, constraintargs):
        if indexname:
            self.it = self.t.plan_iter(indexname, constraintargs)
        else:
            self.it = self.t.scan(self.t.main, None, None)
        self.Next()

    def Next(self) -> None:
        nxt = next(self.it, None)
        if nxt is None:
            self.eof = True
            self.key = self.raw = self.row = None
        else:
            self.eof = False
            self.key, self.raw = nxt
            self.row = None

    def Eof(self) -> bool:
        return self.eof

    def Rowid(self) -> int:
        return self.t.rowid_of(self.key)

    def Column(self, n: int):
        if n == -1:
            return self.t.rowid_of(self.key)
        row = self.row
        if row is None:
            row = self.row = decode_row(self.raw)
        return row[n] if n < len(row) else None

    def Close(self) -> None:
        self.it = iter(())
