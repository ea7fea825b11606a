"""ProllyTree: the user-facing ordered, content-addressed key/value map.

A ``ProllyTree`` is a root address in a node store plus a small write buffer. Single
writes go to the buffer (a dict) and are applied in one batch - O(changes x depth) node
writes, never a rebuild - before anything that needs the tree itself: the root hash,
proofs, diffs, scans, ``size()``. ``find`` reads the buffer first, so every read sees
every write.

Persistent trees (``"file"``, ``"rocksdb"``, ``"lmdb"``) keep their root in the store's
``root`` ref and their config in its ``config`` ref. Writes are durable once ``flush()``
or ``close()`` returns (or the ``with`` block exits); a normal interpreter exit flushes
open trees too.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import threading
import weakref
from typing import Any, Iterable, Iterator

from ..errors import ReadOnlyError
from ..storage import NodeStore, open_store
from .codec import EMPTY_ROOT, Envelope, Node
from .config import TreeConfig
from .cursor import LeafIndex, iter_items, lookup, prefix_end
from .diff import diff_roots
from .merge import ConflictResolution, three_way_merge
from .mutate import apply_edits, build
from .node_cache import DEFAULT_LEAF_CACHE_BYTES, NodeCache
from .checks import check_key as _check_key
from .checks import check_value as _check_value
from .proof import generate_proof, proven_value, verify_proof
from .upkeep import TreeUpkeep, locked
from . import values as _values

ROOT_REF = "root"
CONFIG_REF = "config"


def _children(data: bytes) -> tuple[list, bool]:
    """(addresses named by stored ``data``, whether those need no reading), for the file
    store's automatic compaction: a node's children, or the chunks and chunk indexes a
    leaf's large values need (:func:`.values.children`). A plain leaf (5 elements) names
    nothing; every other object is read, since a leaf may hold chunked values."""
    if data[:2] == b"\x95\x00":
        return [], False
    return _values.children(data), False


#: Buffered single writes are applied automatically beyond this many pending keys.
AUTO_FLUSH_PENDING = 1 << 17

_MISSING = object()


class _ClosedRoot:
    """Stands in for the root node of a closed tree: any read through it raises."""

    __slots__ = ()

    def __getattr__(self, name: str):
        raise ValueError("tree is closed")


_CLOSED_ROOT = _ClosedRoot()


def _all_bytes(objects: Iterable) -> bool:
    """Whether every object is exactly ``bytes`` (one C-level pass)."""
    return set(map(type, objects)) <= {bytes}


def value_length(value: bytes) -> int:
    """Length of the value a leaf value stands for (an envelope's recorded length)."""
    return _values.value_info(value).length if type(value) is Envelope else len(value)


# Trees with a persistent store are flushed at interpreter exit (weakly held, so that
# registering does not keep a tree alive).
_OPEN_TREES: "weakref.WeakSet[ProllyTree]" = weakref.WeakSet()


@atexit.register
def _flush_open_trees() -> None:
    for tree in list(_OPEN_TREES):
        try:
            tree.close()
        except Exception:  # exit must not fail on one tree; others still get flushed
            pass


class ProllyTree(TreeUpkeep):
    """An ordered map of bytes to bytes stored as a prolly tree.

    ``ProllyTree(storage_type="memory", path=None, config=None)``: ``storage_type`` is
    ``"memory"``, ``"file"``, ``"rocksdb"`` or ``"lmdb"``; persistent kinds need ``path``
    and reopen whatever tree is stored there (``config`` must then match the stored one,
    or be None). ``cache_bytes`` bounds the leaf data kept decoded (default 64 MiB).
    """

    def __init__(self, storage_type: str = "memory", path: str | os.PathLike | None = None,
                 config: TreeConfig | None = None, *, read_only: bool = False,
                 cache_bytes: int = DEFAULT_LEAF_CACHE_BYTES) -> None:
        if config is not None and not isinstance(config, TreeConfig):
            raise TypeError(f"config must be a TreeConfig, not {type(config).__name__}")
        if storage_type == "memory" and read_only:
            raise ValueError("a memory tree cannot be read-only")
        # checked before the store is opened: a failed call must not create a tree on disk
        if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int):
            raise TypeError(f"cache_bytes must be an int, not {type(cache_bytes).__name__}")
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {cache_bytes}")
        store = open_store(storage_type, path if storage_type != "memory" else None,
                           read_only=read_only)
        try:
            stored_config = store.get_ref(CONFIG_REF)
            if stored_config is not None:
                saved = TreeConfig.from_bytes(stored_config)
                if config is not None and config != saved:
                    raise ValueError(f"the tree at {os.fspath(path)!r} was created with "
                                     f"{saved!r}, not {config!r}")
                config = saved
            config = config or TreeConfig()
            root = store.get_ref(ROOT_REF) or EMPTY_ROOT
            if stored_config is None and not read_only and storage_type != "memory":
                store.set_ref(CONFIG_REF, config.to_bytes())
                store.flush()
            self._init(store, config, root, ROOT_REF if storage_type != "memory" else None,
                       cache_bytes)
            if not read_only and hasattr(store, "enable_auto_compaction"):
                # the store may drop what this tree's root no longer reaches
                store.enable_auto_compaction([ROOT_REF], _children)
        except BaseException:
            store.close()  # e.g. a missing root node: do not keep the store (and its lock)
            raise
        if self._root_ref is not None and not read_only:
            _OPEN_TREES.add(self)

    def _init(self, store: NodeStore, config: TreeConfig, root: bytes,
              root_ref: str | None, cache_bytes: int = DEFAULT_LEAF_CACHE_BYTES) -> None:
        # Threads: applying the write buffer, batch writes, root snapshots and everything
        # else that changes the tree hold this lock. insert() and find() do not (a lock
        # would cost single-threaded use 15-30%):
        # - insert() stores into the current buffer dict (one atomic dict operation); a
        #   buffer dict is only ever replaced under the lock, so when insert() finds it was
        #   replaced meanwhile, it repeats the store under the lock. No write is lost.
        # - _apply() first moves the buffer aside (_applying), so find() - which reads
        #   the buffer, then _applying, then the root - sees every acknowledged write at
        #   every moment: the root is replaced before _applying is cleared.
        self._lock = threading.RLock()
        self._applying: dict | None = None
        self._frozen = store.read_only  # closed or read-only: insert() must refuse
        self._store = store
        self._config = config
        self._cache = NodeCache(store, cache_bytes)
        self._root = root
        self._root_node: Node = self._cache.load(root)
        self._index: LeafIndex | None = None
        self._reads = 0
        self._pending: dict[bytes, bytes | None] = {}
        self._root_ref = root_ref
        # the root as last read from / written to the root ref, and the store's ref
        # counter then: another tree object sharing this store (the same path opened
        # twice in one process) moves the ref, and this tree adopts its root
        self._synced_root = root
        self._seen_gen = store.ref_generation
        self._closed = False
        self._threshold = _values.DEFAULT_THRESHOLD

    @classmethod
    def from_root(cls, root_hash: bytes, store: NodeStore,
                  config: TreeConfig | None = None) -> "ProllyTree":
        """A tree over ``store`` positioned at an existing root address (no copy, no
        rebuild). Its root is not written to any ref; the caller tracks it. Without
        ``config``, the config recorded in the store is used (the default when none is):
        writing with another config than the tree was built with would give roots that
        match no canonical tree."""
        if not isinstance(root_hash, bytes):
            raise TypeError(f"root_hash must be bytes, not {type(root_hash).__name__}")
        if not isinstance(store, NodeStore):
            raise TypeError(f"store must be a NodeStore, not {type(store).__name__}")
        if config is not None and not isinstance(config, TreeConfig):
            raise TypeError(f"config must be a TreeConfig, not {type(config).__name__}")
        if len(root_hash) != 32:
            raise ValueError(f"root_hash must be 32 bytes, got {len(root_hash)}")
        if config is None:
            stored = store.get_ref(CONFIG_REF)
            config = TreeConfig.from_bytes(stored) if stored is not None else TreeConfig()
        tree = cls.__new__(cls)
        tree._init(store, config, root_hash, None)
        return tree

    # -- properties ----------------------------------------------------------------

    @property
    def config(self) -> TreeConfig:
        """The tree's chunking parameters."""
        return self._config

    @property
    def store(self) -> NodeStore:
        """The node store holding the tree."""
        return self._store

    @property
    def node_cache(self) -> NodeCache:
        """The decoded-node cache this tree reads through (shared by trees derived from it)."""
        return self._cache

    # -- writes ------------------------------------------------------------------------

    def _writable(self) -> None:
        if self._closed:
            raise ValueError("tree is closed")
        if self._store.read_only:
            raise ReadOnlyError("tree is open read-only")

    def insert(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value`` (inserting or overwriting)."""
        if type(key) is not bytes or type(value) is not bytes:
            _check_key(key)
            _check_value(value)
        if self._frozen:
            self._writable()
        if len(value) > self._threshold:
            value = self._chunked(value)
        pending = self._pending
        pending[key] = value
        if self._pending is not pending:  # replaced meanwhile: the store may be lost
            with self._lock:
                self._writable()
                self._pending[key] = value
        if len(pending) >= AUTO_FLUSH_PENDING:
            with self._lock:
                self._apply()

    @locked
    def insert_batch(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Set many pairs at once; a later duplicate key wins. Nothing is applied unless
        every pair is valid."""
        self._writable()
        try:
            batch = dict(items)  # C speed; the types are checked below, all at once
        except (TypeError, ValueError):
            raise TypeError("insert_batch expects (key, value) pairs") from None
        if not _all_bytes(batch) or not _all_bytes(batch.values()):
            for key, value in batch.items():  # name the first offender
                _check_key(key)
                _check_value(value)
        if batch and max(map(len, batch.values())) > self._threshold:
            for key, value in batch.items():
                if len(value) > self._threshold and type(value) is not Envelope:
                    batch[key] = self._chunked(value)
        if self._pending:
            self._pending.update(batch)
        elif not self._root_node.size and batch:
            # into an empty tree: build directly; sorted input (common for bulk loads)
            # keeps the dict's order, so the values come out in one C pass
            keys = list(batch)
            ordered = sorted(keys)
            vals = list(batch.values()) if ordered == keys else list(map(batch.__getitem__, ordered))
            self._set_root(self._build(ordered, vals))
            return
        else:
            self._pending = batch
        self._apply()

    def _build(self, keys: list, vals: list) -> bytes:
        # Bulk builds allocate many small objects that all stay alive: pausing the cyclic
        # GC (nothing here makes cycles) saves its repeated full scans.
        paused = len(keys) > 50_000 and gc.isenabled()
        if paused:
            gc.disable()
        try:
            return build(self._cache, self._config, keys, vals)
        finally:
            if paused:
                gc.enable()

    @locked
    def update(self, key: bytes, value: bytes) -> bool:
        """Change the value of an existing key; returns False (changing nothing) when
        ``key`` is absent."""
        _check_key(key)
        _check_value(value)
        self._writable()
        if self.find_raw(key) is None:
            return False
        if len(value) > self._threshold and type(value) is not Envelope:
            value = self._chunked(value)
        self._pending[key] = value
        if len(self._pending) >= AUTO_FLUSH_PENDING:
            self._apply()
        return True

    @locked
    def delete(self, key: bytes) -> bool:
        """Remove ``key``; returns whether it was present."""
        _check_key(key)
        self._writable()
        if self.find_raw(key) is None:
            return False
        self._pending[key] = None
        if len(self._pending) >= AUTO_FLUSH_PENDING:
            self._apply()
        return True

    @locked
    def delete_batch(self, keys: Iterable[bytes]) -> int:
        """Remove many keys; returns how many were present. Nothing is applied unless
        every key is valid."""
        self._writable()
        keys = list(keys)
        for key in keys:
            _check_key(key)
        removed = 0
        pending = self._pending
        for key in dict.fromkeys(keys):
            if self.find_raw(key) is not None:
                pending[key] = None
                removed += 1
        self._apply()
        return removed

    def _apply(self) -> None:
        """Apply buffered writes to the tree (the root only changes if all succeed).
        The caller holds the lock."""
        if self._closed:
            raise ValueError("tree is closed")
        if self._store.ref_generation != self._seen_gen:
            self._refresh()
        pending = self._pending
        if not pending:
            return
        self._applying = pending  # readers keep seeing these writes (see _init)
        self._pending = {}
        snapshot = pending.copy()  # one C call: inserts racing with it land in either
        # Bulk applies allocate millions of small objects that all stay alive: pausing
        # the cyclic GC (nothing here makes cycles) saves its repeated full scans.
        paused = len(snapshot) > 50_000 and gc.isenabled()
        if paused:
            gc.disable()
        try:
            if not self._root_node.size and None not in snapshot.values():
                keys = sorted(snapshot)  # into an empty tree: build directly
                root = build(self._cache, self._config, keys,
                             list(map(snapshot.__getitem__, keys)))
            else:
                # keys are unique, so tuples compare by key alone
                root = apply_edits(self._cache, self._config, self._root,
                                   sorted(snapshot.items()))
            self._set_root(root)
        except BaseException:
            # keep every write buffered; those made since the swap are the newer ones
            restored = pending.copy()
            restored.update(self._pending.copy())
            self._pending = restored
            raise
        finally:
            self._applying = None
            if paused:
                gc.enable()

    def _refresh(self, force: bool = False) -> bytes | None:
        """Adopt the root another tree object on the same store recorded in the root ref
        since this tree last synced, keeping this tree's own unflushed changes on top
        (a three-way merge: ours win where both changed a key). Returns the ref's raw
        value (for a compare-and-swap). The caller holds the lock."""
        store = self._store
        if self._root_ref is None or (not force and store.ref_generation == self._seen_gen):
            return None
        self._seen_gen = store.ref_generation
        raw = store.get_ref(self._root_ref)
        cur = raw or EMPTY_ROOT
        if cur != self._synced_root:
            if self._root == self._synced_root:
                self._set_root(cur)
            else:
                edits, _ = three_way_merge(self._cache, self._synced_root, cur, self._root,
                                           ConflictResolution.TakeSource)
                self._set_root(apply_edits(self._cache, self._config, cur, edits)
                               if edits else cur)
            self._synced_root = cur
        return raw

    def _set_root(self, root: bytes) -> None:
        if root != self._root:
            self._root = root
            self._root_node = self._cache.load(root)
            self._index = None
            self._reads = 0

    # -- reads -------------------------------------------------------------------------

    def find(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when absent (a chunked value is read in full:
        use :meth:`open_value` to stream it)."""
        v = self.find_raw(key)
        if type(v) is Envelope:
            return _values.read_value(self._cache.raw, v)
        return v

    get = find

    def find_raw(self, key: bytes) -> bytes | None:
        """The value of ``key`` as its leaf holds it: an :class:`~.codec.Envelope` for a
        chunked value (nothing is read beyond the leaf), else the value."""
        if type(key) is not bytes:
            _check_key(key)
        pending = self._pending
        if pending:
            v = pending.get(key, _MISSING)
            if v is not _MISSING:
                return v
        applying = self._applying
        if applying is not None:
            v = applying.get(key, _MISSING)
            if v is not _MISSING:
                return v
        if self._store.ref_generation != self._seen_gen:
            with self._lock:
                self._refresh()
        index = self._index
        if index is not None:
            return index.get(key)
        root = self._root_node
        if root.level:
            # a flat leaf index pays for itself after a few reads of one root (its cost
            # grows with the number of leaves, as does the number of reads it waits for)
            self._reads += 1
            if self._reads > 32 + (root.total >> 9):
                with self._lock:  # never install an index for a root already replaced
                    if self._root_node is root and self._index is None:
                        self._index = LeafIndex(self._cache, root)
                    self._reads = 0
        return lookup(self._cache, root, key)

    @property
    def value_threshold(self) -> int:
        """Values longer than this many bytes are stored as content-defined chunks
        (default 64 KiB). Root hashes depend on it like on the config: trees meant to
        compare equal must use one threshold."""
        return self._threshold

    @value_threshold.setter
    def value_threshold(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"value_threshold must be an int, not {type(n).__name__}")
        if n < 0:
            raise ValueError(f"value_threshold must be >= 0, got {n}")
        self._threshold = n

    def _chunked(self, value: bytes) -> Envelope:
        """Store ``value``'s chunks now; its envelope goes where the value would."""
        return _values.write_value(self._store.put_many, value)

    def _resolve(self, pairs: Iterator) -> Iterator:
        raw = self._cache.raw
        for k, v in pairs:
            yield k, (_values.read_value(raw, v) if type(v) is Envelope else v)

    def open_value(self, key: bytes):
        """A read-only, seekable binary file object reading ``key``'s value chunk by
        chunk (memory: one chunk; seek O(log chunks)); raises KeyError when absent.
        Small values are served from memory."""
        _check_key(key)
        v = self.find_raw(key)
        if v is None:
            raise KeyError(key)
        return _values.open_value(self._cache.raw, v)

    @locked
    def insert_stream(self, key: bytes, fileobj: Any) -> int:
        """Set ``key`` to the bytes read from binary ``fileobj`` (its ``read(n)`` until
        b""), without holding the value: chunks are stored as they are read (memory
        about 4 MiB). Returns the value's length."""
        _check_key(key)
        read = getattr(fileobj, "read", None)
        if not callable(read):
            raise TypeError(f"fileobj must have a read() method, not {type(fileobj).__name__}")
        self._writable()
        # a store that can stream one write session (Git: one pack per value) gets one
        session = getattr(self._store, "write_session", None)
        with session() if session is not None else contextlib.nullcontext():
            value = _values.write_stream(self._store.put_many, read, self._threshold)
        self._pending[key] = value
        if len(self._pending) >= AUTO_FLUSH_PENDING:
            self._apply()
        return value_length(value)

    def __getitem__(self, key: bytes) -> bytes:
        value = self.find(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.find_raw(key) is not None

    @locked
    def size(self) -> int:
        """Number of key/value pairs."""
        self._apply()
        return self._root_node.total

    __len__ = size

    @locked
    def depth(self) -> int:
        """Number of node levels (1 for a tree that fits in one leaf, including empty)."""
        self._apply()
        return self._root_node.level + 1

    @locked
    def get_root_hash(self) -> bytes:
        """The 32-byte root address; equal trees (same config, same pairs) share it."""
        self._apply()
        return self._root

    root_hash = property(get_root_hash, doc="The 32-byte root address.")

    def items(self, start: bytes | None = None, end: bytes | None = None,
              reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``start <= key < end`` in key order (or reversed).
        The iterator reads a snapshot: later writes do not affect it."""
        if start is not None:
            _check_key(start)
        if end is not None:
            _check_key(end)
        if not isinstance(reverse, bool):
            raise TypeError(f"reverse must be a bool, not {type(reverse).__name__}")
        with self._lock:
            self._apply()
            root = self._root_node
        return self._resolve(iter_items(self._cache, root, start, end, reverse))

    def keys(self, start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False) -> Iterator[bytes]:
        """Keys in ``[start, end)`` in order (or reversed)."""
        return (k for k, _ in self.items(start, end, reverse))

    def values(self, start: bytes | None = None, end: bytes | None = None,
               reverse: bool = False) -> Iterator[bytes]:
        """Values of the keys in ``[start, end)`` in key order (or reversed)."""
        return (v for _, v in self.items(start, end, reverse))

    def range(self, start: bytes | None = None, end: bytes | None = None,
              reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Alias of :meth:`items`: pairs with ``start <= key < end``."""
        return self.items(start, end, reverse)

    def prefix(self, prefix: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with ``prefix``, in key order (or reversed)."""
        _check_key(prefix)
        return self.items(prefix, prefix_end(prefix), reverse)

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def __reversed__(self) -> Iterator[bytes]:
        return self.keys(reverse=True)

    def first(self) -> tuple[bytes, bytes] | None:
        """The pair with the smallest key, or None when empty."""
        return next(self.items(), None)

    def last(self) -> tuple[bytes, bytes] | None:
        """The pair with the greatest key, or None when empty."""
        return next(self.items(reverse=True), None)

    def diff(self, other: "ProllyTree") -> dict[str, dict]:
        """Differences from this tree to ``other``: ``{"added": {k: v}, "removed": {k: v},
        "modified": {k: {"old": v1, "new": v2}}}``. Identical subtrees are skipped by
        address, so the cost grows with the number of differences."""
        if not isinstance(other, ProllyTree):
            raise TypeError(f"diff expects a ProllyTree, not {type(other).__name__}")
        added: dict = {}
        removed: dict = {}
        modified: dict = {}
        for key, old, new in self.changes(other):
            if old is None:
                added[key] = new
            elif new is None:
                removed[key] = old
            else:
                modified[key] = {"old": old, "new": new}
        return {"added": added, "removed": removed, "modified": modified}

    def changes(self, other: "ProllyTree") -> Iterator[tuple[bytes, bytes | None, bytes | None]]:
        """Like :meth:`diff`, as a key-ordered stream of (key, old or None, new or None)."""
        if not isinstance(other, ProllyTree):
            raise TypeError(f"expected a ProllyTree, not {type(other).__name__}")
        with self._lock:  # one lock at a time: two threads diffing a-b and b-a never deadlock
            self._apply()
            mine = self._root
        with other._lock:
            other._apply()
            theirs = other._root
        other_cache = None if other._store is self._store else other._cache
        # values are compared as their leaves hold them (envelopes: nothing read); only
        # the changes reported read their chunked values
        raw_new = (other_cache or self._cache).raw
        raw_old = self._cache.raw
        read = _values.read_value
        return ((k, None if o is None else read(raw_old, o),
                 None if n is None else read(raw_new, n))
                for k, o, n in diff_roots(self._cache, mine, theirs, other_cache))

    # -- proofs ----------------------------------------------------------------------------

    @locked
    def generate_proof(self, key: bytes) -> bytes:
        """A portable proof of ``key``'s value (or absence) under the current root hash;
        check it with :func:`prollytree.verify_proof` given only the root hash."""
        _check_key(key)
        self._apply()
        return generate_proof(self._cache, self._root, key)

    def verify_proof(self, proof_bytes: bytes, key: bytes,
                     expected_value: bytes | None = None) -> bool:
        """Whether ``proof_bytes`` proves ``key`` present under this tree's current root
        hash (with ``expected_value``, when given)."""
        return verify_proof(self.get_root_hash(), proof_bytes, key, expected_value)

    def proven_value(self, proof_bytes: bytes, key: bytes) -> bytes | None:
        """The value the proof shows for ``key`` under the current root (None = absent);
        raises ProofError for a proof that does not check out."""
        return proven_value(self.get_root_hash(), proof_bytes, key)

    # -- persistence -------------------------------------------------------------------------

    @locked
    def save_config(self) -> None:
        """Store the config next to the tree (persistent stores keep it from creation; this
        re-saves it and makes it durable)."""
        self._writable()
        self._store.set_ref(CONFIG_REF, self._config.to_bytes())
        self._store.flush()

    @locked
    def flush(self) -> None:
        """Apply buffered writes, record the root (persistent trees) and make it durable."""
        if self._closed:
            return
        self._apply()
        if self._root_ref is not None and not self._store.read_only:
            store = self._store
            while True:
                raw = self._refresh(force=True)   # another tree's root, ours on top
                if raw == self._root or store.set_ref(self._root_ref, self._root,
                                                      expected=raw):
                    break
            self._synced_root = self._root
            self._seen_gen = store.ref_generation
            store.flush()

    @locked
    def close(self) -> None:
        """Flush and release the store. Further use raises ValueError."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._frozen = True
            # reads must not go on half-working from the node cache
            self._root_node = _CLOSED_ROOT
            self._index = None
            self._pending = {}
            _OPEN_TREES.discard(self)
            self._store.close()

    def __enter__(self) -> "ProllyTree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"root={self._root.hex()[:12]}"
        return f"<ProllyTree {self._store.kind} {state} pending={len(self._pending)}>"
