"""The part every search index shares: a SQLite file (apsw) that caches something derived
from trees, keyed by the root each tree had when the cache was brought up to date.

:meth:`DerivedIndex.sync` moves the cache from the root it reflects to a tree's current
root by walking the structural diff between the two roots (identical subtrees are
skipped by address), so the cost grows with the number of changed keys, not with the
size of the tree. Staged (uncommitted) writes can be laid over the committed root: they
are remembered and undone on the next sync. Checking out an older version is just
another sync: the answers are then exactly those of a fresh index over that version.
Deleting the file loses nothing; the next sync rebuilds it.
"""

from __future__ import annotations

from contextlib import contextmanager

import os
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..errors import MissingNodeError, ProllyError, StoreError
from ..tree import ProllyTree
from ..tree import NodeCache, Snapshot

#: decoded nodes kept between syncs (the old root's nodes are the next diff's old side)
NODE_CACHE_BYTES = 16 << 20

try:
    import apsw
except ImportError as e:  # pragma: no cover - depends on the extra
    raise ImportError("prollytree.search needs apsw and numpy: "
                      "pip install 'prollytree-py[search]'") from e

#: ``document(key, value) -> text or None``: what of a tree's entry is indexed (None: skip).
Document = Callable[[bytes, bytes], "str | None"]

SCHEMA_VERSION = "2"


class IndexMismatchError(ProllyError, ValueError):
    """An index file was built with another embedder, kind or schema than requested."""


def utf8_document(key: bytes, value: bytes) -> str | None:
    """The default :data:`Document`: the value decoded as UTF-8 (entries that are not
    valid UTF-8 are not indexed)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    return name


def _check_staged(staged: Any) -> dict[bytes, bytes | None]:
    if staged is None:
        return {}
    items = staged.items() if isinstance(staged, Mapping) else staged
    out: dict[bytes, bytes | None] = {}
    for pair in items:
        try:
            k, v = pair
        except (TypeError, ValueError):
            raise TypeError("staged must be a mapping or pairs of (key, value or None)") from None
        if not isinstance(k, bytes) or not (v is None or isinstance(v, bytes)):
            raise TypeError("staged keys must be bytes and values bytes or None")
        out[k] = v
    return out


class DerivedIndex:
    """Base of :class:`~prollytree.search.TextIndex` and
    :class:`~prollytree.search.VectorIndex`. ``path`` None keeps the cache in memory.

    Subclasses define ``KIND``, ``_create_tables()``, ``_identity()`` (what must match
    on reopen), ``_apply(name, changes)`` (write the changed documents; ``changes`` maps
    key -> text or None) and ``_drop(name)`` (forget every document of one tree)."""

    KIND = "derived"

    def __init__(self, path: str | os.PathLike | None = None, *,
                 document: Document = utf8_document) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str, os.PathLike or None, not {type(path).__name__}")
        if not callable(document):
            raise TypeError("document must be callable (key, value) -> str | None")
        self._document = document
        # one connection per index object; the lock makes sync/search safe to call from
        # several threads (other processes are kept apart by SQLite's own locking)
        self._lock = threading.RLock()
        self._nodes: NodeCache | None = None
        self.path = None if path is None else os.path.abspath(os.fspath(path))
        if self.path is not None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._db = apsw.Connection(self.path if self.path is not None else ":memory:")
        try:
            self._db.set_busy_timeout(30_000)
            self._db.execute("PRAGMA journal_mode=WAL" if self.path else "PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.execute("CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT)")
                self._db.execute("CREATE TABLE IF NOT EXISTS roots(name TEXT PRIMARY KEY, "
                                 "root BLOB NOT NULL)")
                self._db.execute("CREATE TABLE IF NOT EXISTS overlay(name TEXT NOT NULL, "
                                 "key BLOB NOT NULL, PRIMARY KEY(name, key)) WITHOUT ROWID")
                self._create_tables()
                want = {"kind": self.KIND, "schema": SCHEMA_VERSION, **self._identity()}
                have = dict(self._db.execute("SELECT k, v FROM meta"))
                if "kind" not in have:  # a new file (subclass counters may exist already)
                    self._db.executemany("INSERT INTO meta VALUES (?, ?)",
                                         [(k, str(v)) for k, v in want.items()])
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('gen', '0')")
                else:
                    diff = {k: (have.get(k), str(v)) for k, v in want.items()
                            if have.get(k) != str(v)}
                    if diff:
                        what = ", ".join(f"{k} {a!r} (requested {b!r})"
                                         for k, (a, b) in sorted(diff.items()))
                        raise IndexMismatchError(
                            f"index {self.path or ':memory:'} was built with {what}; open it "
                            f"with the same settings, or delete the file to rebuild it")
        except BaseException:
            self._db.close()
            raise

    # -- subclass hooks ----------------------------------------------------------------------

    def _create_tables(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _identity(self) -> dict[str, Any]:
        return {}

    def _apply(self, name: str, changes: dict[bytes, str | None]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _drop(self, name: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_write(self, committed: bool) -> None:
        """Called after every write transaction (to refresh in-memory mirrors)."""

    # -- state -------------------------------------------------------------------------------

    def generation(self) -> int:
        """A counter bumped by every sync that changed something (in any process)."""
        return int(self._db.execute("SELECT v FROM meta WHERE k='gen'").fetchall()[0][0])

    def root(self, name: str = "") -> bytes | None:
        """The root of tree ``name`` this index reflects (None: never synced)."""
        _check_name(name)
        row = self._db.execute("SELECT root FROM roots WHERE name=?", (name,)).fetchall()
        return row[0][0] if row else None

    def names(self) -> list[str]:
        """The tree names this index holds documents of."""
        return [r[0] for r in self._db.execute("SELECT name FROM roots ORDER BY name")]

    # -- sync ----------------------------------------------------------------------------------

    def sync(self, tree: ProllyTree, *, name: str = "",
             staged: Mapping[bytes, bytes | None] | Iterable | None = None,
             replace: bool = True) -> int:
        """Bring the documents of tree ``name`` up to ``tree``'s root, with ``staged``
        (key -> value, or None for a delete) laid over it. Returns how many keys were
        re-indexed.

        ``replace`` True: ``staged`` is the whole overlay (the previous one is undone).
        ``replace`` False: while the root is unchanged, ``staged`` only adds to the
        overlay (pass just what changed since the last sync); when the root moved the
        old overlay is undone and ``staged`` becomes the overlay.

        Cost: O(changed keys x depth) plus the overlay keys touched; a first sync (or
        one whose old root is no longer in ``tree``'s store) reads the whole tree.
        Atomic: on failure the index keeps its old state."""
        if not isinstance(tree, ProllyTree):
            raise TypeError(f"tree must be a ProllyTree, not {type(tree).__name__}")
        _check_name(name)
        if not isinstance(replace, bool):
            raise TypeError(f"replace must be a bool, not {type(replace).__name__}")
        overlay = _check_staged(staged)
        with self._lock:
            return self._sync(tree, name, overlay, replace)

    def _sync(self, tree: ProllyTree, name: str, overlay: dict[bytes, bytes | None],
              replace: bool) -> int:
        new_root = tree.get_root_hash()
        row = self._db.execute("SELECT root FROM roots WHERE name=?", (name,)).fetchall()
        old_root = row[0][0] if row else None
        moved = old_root != new_root
        undo: list[bytes] = []
        if moved or replace:
            undo = [r[0] for r in self._db.execute("SELECT key FROM overlay WHERE name=?",
                                                    (name,))]
        if not moved and not undo and not overlay:
            return 0
        full = False
        changes: dict[bytes, bytes | None] = {}
        if old_root is None:
            full = True
        elif moved:
            try:
                changes = self._diff(old_root, new_root, tree)
            except MissingNodeError:
                full = True  # the old version is not in this store: start over
        if not full:
            for key in undo:
                if key not in changes and key not in overlay:
                    changes[key] = tree.find(key)  # back to the committed value
        changes.update(overlay)
        docs: dict[bytes, str | None] = {}
        document = self._document
        for key, value in (tree.items() if full else changes.items()):
            docs[key] = None if value is None else document(key, value)
        if full:
            for key, value in overlay.items():
                docs[key] = None if value is None else document(key, value)
        with self._writing():
            if full:
                self._drop(name)
            self._apply(name, docs)
            self._db.execute("INSERT OR REPLACE INTO roots VALUES (?, ?)", (name, new_root))
            if undo:
                self._db.execute("DELETE FROM overlay WHERE name=?", (name,))
            self._db.executemany("INSERT OR IGNORE INTO overlay VALUES (?, ?)",
                                 [(name, k) for k in overlay])
        return len(docs)

    def _diff(self, old_root: bytes, new_root: bytes, tree: ProllyTree
              ) -> dict[bytes, bytes | None]:
        """key -> new value (None: deleted) from ``old_root`` to ``new_root``. Nodes are
        read through a cache kept between syncs (content-addressed, so valid for any
        root of the store), which already holds most of the old side; a cache over
        another store that lacks the nodes is replaced by one over ``tree``'s store."""
        for attempt in (0, 1):
            cache = self._nodes
            if cache is None or attempt:
                cache = NodeCache(tree.store, NODE_CACHE_BYTES)
            try:
                old = Snapshot(cache, old_root, tree.config)
                out = {k: new for k, _, new in old.diff(Snapshot(cache, new_root, tree.config))}
            except (MissingNodeError, StoreError):
                if attempt or self._nodes is None:
                    raise
                continue
            self._nodes = cache
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def overlay_keys(self, name: str = "") -> list[bytes]:
        """The staged keys laid over tree ``name``'s root, sorted."""
        _check_name(name)
        return [r[0] for r in self._db.execute(
            "SELECT key FROM overlay WHERE name=? ORDER BY key", (name,))]

    def forget(self, name: str = "") -> None:
        """Drop every document of tree ``name`` (e.g. the tree was dropped)."""
        _check_name(name)
        with self._lock:
            self._forget(name)

    def _forget(self, name: str) -> None:
        with self._writing():
            self._drop(name)
            self._db.execute("DELETE FROM roots WHERE name=?", (name,))
            self._db.execute("DELETE FROM overlay WHERE name=?", (name,))

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction of the cache file: bumps its generation with the changes,
        rolls everything back on any error (``_after_write`` learns which)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k='gen'")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._after_write(False)
            raise
        self._after_write(True)

    def close(self) -> None:
        """Close the cache file (idempotent)."""
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple = ()) -> Iterator[tuple]:
        return self._db.execute(sql, args)
