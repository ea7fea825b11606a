"""Versioning of a SQL store: commits, branches, checkout, diff, history, merge (cell-wise
row merges, constraint and index repair) and the deferred operations SQL functions run."""

from __future__ import annotations

from typing import Any, Iterable

import apsw

from ..errors import MergeConflictError
from ..tree import ConflictResolution
from ..versioning import Unresolved
from .keys import decode_key, encode_key
from .rows import decode_row, encode_row
from .schema import CATALOG, CATALOG_TABLE, Shadow, TableSchema, quote_ident, table_tree
from .database import locked
from .trees import Trees
from .vtable import index_key


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



class VersionOperations:
    """The versioning half of :class:`~.store.ProllySQLStore` (a mixin over its state)."""

    def _no_txn(self, what: str) -> None:
        if self._db.session.in_transaction():
            raise ValueError(f"cannot {what} inside a SQL transaction: COMMIT or ROLLBACK "
                             f"first")

    @locked
    def commit(self, message: str) -> str:
        """Commit every table, index and the schema as one version; returns its id."""
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        self._no_txn("commit")
        return self._kv.commit(message)

    def branch(self, name: str, start: str | None = None) -> str:
        """Create branch ``name`` (at ``start``, default HEAD) without switching to it."""
        return self._kv.branch(name, start)

    @locked
    def create_branch(self, name: str, start: str | None = None) -> str:
        """Create branch ``name`` and switch to it."""
        self._no_txn("create a branch")
        cid = self._kv.create_branch(name, start)
        self._load()
        return cid

    @locked
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
                    if k.startswith(CATALOG_TABLE):
                        shadow.load_entry(v)
                got = {n.lower(): shadow.schema(n) for n in shadow.tables()}
            finally:
                shadow.close()
            if len(self._schema_cache) > 16:
                self._schema_cache.clear()
            self._schema_cache[root] = got
        return got

    @locked
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

    @locked
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

