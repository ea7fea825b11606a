"""Every access the memory system (and the LangGraph integration) makes to the versioned
store, in one place.

Each memory kind is a tree named ``memory/<kind>`` in one :class:`VersionedKvStore`
dataset, so all four commit, branch, checkout and merge together. This module maps the
memory layer's calls (per tree name: get/put/scan; per store: commit, checkout, merge,
history) onto the store's API.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

from ..tree import ProllyTree
from ..versioning import MergeConflict, StorageBackend, Unresolved, VersionedKvStore

TREES = ("memory/short_term", "memory/semantic", "memory/episodic", "memory/procedural")

# Until named trees exist, every kind lives in the default tree under "<tree name>\0".
_SEP = b"\x00"


def _raw(tree: str, key: bytes) -> bytes:
    return tree.encode() + _SEP + key


def _end(prefix: bytes) -> bytes | None:
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


class NamedTreeStorage:
    """An application's view of one dataset as a few named trees (not thread-safe: the
    caller locks). ``trees``: the tree names the application owns."""

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None,
                 trees: tuple[str, ...] = ()) -> None:
        self.store = VersionedKvStore(path, storage_backend)
        self.trees = tuple(trees)

    # -- working copy (staged over committed) ---------------------------------------------------

    def get(self, tree: str, key: bytes) -> bytes | None:
        return self.store.get(_raw(tree, key))

    def put_batch(self, tree: str, pairs: list[tuple[bytes, bytes | None]]) -> None:
        """Stage writes (value None deletes)."""
        store = self.store
        ins = [(_raw(tree, k), v) for k, v in pairs if v is not None]
        if ins:
            store.insert_batch(ins)
        for k, v in pairs:
            if v is None:
                store.delete(_raw(tree, k))

    def scan(self, tree: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of the working copy whose key starts with ``prefix``, in order."""
        start = _raw(tree, prefix)
        cut = len(tree.encode()) + 1
        for k, v in self.store.iter_items(start, _end(start)):
            yield k[cut:], v

    def staged_keys(self) -> list[tuple[str, bytes]]:
        """(tree, key) of every staged write to a memory tree."""
        out = []
        for raw, _ in self.store.staged():
            loc = self.from_index_key("", raw)
            if loc is not None:
                out.append(loc)
        return out

    def cache_dir(self, name: str = "memory-cache") -> str | None:
        """Where derived caches (search indexes) of this dataset live; None: keep them
        in memory (an InMemory dataset)."""
        state = self.store.backend.state_dir
        if state is not None:
            return os.path.join(state, name)
        if self.store.storage_backend is StorageBackend.InMemory:
            return None
        return os.path.join(self.store.path, name)

    # -- committed trees, for the search indexes ------------------------------------------------

    def index_sources(self) -> list[tuple[str, ProllyTree]]:
        """(index name, committed tree at HEAD) pairs covering every memory tree."""
        return [("", self.store.tree_at("HEAD"))]

    def index_key(self, tree: str, key: bytes) -> tuple[str, bytes]:
        """Where a memory tree's key lives in :meth:`index_sources`."""
        return "", _raw(tree, key)

    def from_index_key(self, name: str, raw: bytes) -> tuple[str, bytes] | None:
        """The (tree, key) of an index source's key, or None when it is no memory's."""
        tree, sep, key = raw.partition(_SEP)
        if not sep or tree.decode(errors="replace") not in self.trees:
            return None
        return tree.decode(), key

    # -- versions -------------------------------------------------------------------------------

    def commit(self, message: str) -> str:
        return self.store.commit(message)

    def has_staged(self) -> bool:
        return bool(self.store.status())

    def discard_staged(self) -> None:
        """Undo every staged write (each key goes back to its committed value; the store
        has no public "discard", and a write equal to the committed value is no change)."""
        store = self.store
        back = [(k, store.get_at("HEAD", k)) for k, _ in store.staged()]
        ins = [(k, v) for k, v in back if v is not None]
        if ins:
            store.insert_batch(ins)
        for k, v in back:
            if v is None:
                store.delete(k)

    def current_commit(self) -> str:
        return self.store.current_commit()

    def current_branch(self) -> str | None:
        return self.store.current_branch()

    def resolve(self, ref: str) -> str:
        return self.store.resolve_ref(ref)

    def checkout(self, ref: str, staged: str = "error") -> None:
        self.store.checkout(ref, staged=staged)

    def create_branch(self, name: str) -> str:
        return self.store.create_branch(name)

    def list_branches(self) -> list[str]:
        return self.store.list_branches()

    def merge(self, source: str, resolve: Callable[..., bytes | None]) -> str:
        """Three-way merge ``source`` into the current branch; for a key changed on both
        sides, ``resolve(tree, key, base, source_value, destination_value)`` picks the
        value."""
        def resolver(c: MergeConflict) -> Any:
            where = self.from_index_key("", c.key)
            if where is None:
                return Unresolved
            return resolve(where[0], where[1], c.base_value, c.source_value,
                           c.destination_value)
        return self.store.merge(source, resolver)

    def log(self, ref: str | None = None, limit: int | None = None) -> list[dict]:
        return self.store.log(ref, limit)

    def diff(self, tree: str, a: str, b: str) -> list[tuple[bytes, bytes | None, bytes | None]]:
        """(key, value at a, value at b) for every key of ``tree`` that differs."""
        old = self.store.tree_at(a)
        new = self.store.tree_at(b)
        pre = tree.encode() + _SEP
        out = []
        for k, x, y in old.changes(new):
            if k.startswith(pre):
                out.append((k[len(pre):], x, y))
        return out

    def commits_for_key(self, tree: str, key: bytes) -> list[dict]:
        return self.store.get_commits_for_key(_raw(tree, key))

    def get_at(self, ref: str, tree: str, key: bytes) -> bytes | None:
        return self.store.get_at(ref, _raw(tree, key))

    def close(self) -> None:
        self.store.close()


class MemoryStorage(NamedTreeStorage):
    """The memory system's four trees."""

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None) -> None:
        super().__init__(path, storage_backend, TREES)


__all__ = ["NamedTreeStorage", "MemoryStorage", "TREES", "StorageBackend"]
