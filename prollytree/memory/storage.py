"""Every access the memory system (and the LangGraph integration) makes to the versioned
store, in one place.

Each memory kind is a tree named ``memory/<kind>`` in one :class:`VersionedKvStore`
dataset (the LangGraph saver and store use ``langgraph/...`` trees), so they commit,
branch, checkout and merge together. This module maps the application's calls (per tree
name: get/put/scan; per store: commit, checkout, merge, history) onto the store's API.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

from ..tree import ProllyTree, prefix_end
from ..versioning import MergeConflict, StorageBackend, Unresolved, VersionedKvStore

TREES = ("memory/short_term", "memory/semantic", "memory/episodic", "memory/procedural")


class NamedTreeStorage:
    """An application's view of one dataset as a few named trees of one commit (not
    thread-safe: the caller locks). ``trees``: the tree names the application owns; it
    neither reads nor writes any other tree."""

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None,
                 trees: tuple[str, ...] = ()) -> None:
        self.store = VersionedKvStore(path, storage_backend)
        self.trees = tuple(trees)
        self._sources: tuple[str, list] | None = None

    # -- working copy (staged over committed) ---------------------------------------------------

    def get(self, tree: str, key: bytes) -> bytes | None:
        return self.store.get(key, tree=tree)

    def put_batch(self, tree: str, pairs: list[tuple[bytes, bytes | None]]) -> None:
        """Stage writes (value None deletes), one journal append."""
        if pairs:
            self.store.insert_batch(pairs, tree=tree)

    def scan(self, tree: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of the working copy whose key starts with ``prefix``, in order."""
        return self.store.iter_items(prefix or None, prefix_end(prefix) if prefix else None,
                                     tree=tree)

    def _staged(self) -> list[tuple[str, bytes]]:
        return [(t, k) for t, k, _ in self.store.tree_status()
                if t in self.trees and k is not None]

    def staged_keys(self) -> list[tuple[str, bytes]]:
        """(tree, key) of every staged change to one of the application's trees."""
        return self._staged()

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
        """(index name, committed tree at HEAD) pairs covering the application's trees
        (an index name is the tree name)."""
        cid = self.store.current_commit()
        if self._sources is None or self._sources[0] != cid:
            self._sources = (cid, [(t, self.store.tree_at(cid, t)) for t in self.trees])
        return self._sources[1]

    def index_key(self, tree: str, key: bytes) -> tuple[str, bytes]:
        """Where a tree's key lives in :meth:`index_sources`."""
        return tree, key

    def from_index_key(self, name: str, raw: bytes) -> tuple[str, bytes] | None:
        """The (tree, key) of an index source's key, or None when it is none of ours."""
        return (name, raw) if name in self.trees else None

    @staticmethod
    def key_in_tree(raw: bytes) -> bytes:
        """The key within its tree of an index source's key (for document functions,
        which see keys without their tree)."""
        return raw

    # -- versions -------------------------------------------------------------------------------

    def commit(self, message: str) -> str:
        return self.store.commit(message)

    def has_staged(self) -> bool:
        return bool(self._staged())

    def discard_staged(self) -> None:
        """Undo every staged change to the application's trees (each key goes back to
        its committed value; a write equal to the committed value is no change)."""
        store = self.store
        by_tree: dict[str, list] = {}
        for t, k in self._staged():
            by_tree.setdefault(t, []).append((k, store.get_at("HEAD", k, t)))
        for t, pairs in by_tree.items():
            store.insert_batch(pairs, tree=t)

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
        """Three-way merge ``source`` into the current branch (every tree); for a key of
        one of our trees changed on both sides, ``resolve(tree, key, base,
        source_value, destination_value)`` picks the value; conflicts elsewhere stop
        the merge."""
        def resolver(c: MergeConflict) -> Any:
            if c.tree not in self.trees:
                return Unresolved
            return resolve(c.tree, c.key, c.base_value, c.source_value, c.destination_value)
        return self.store.merge(source, resolver)

    def log(self, ref: str | None = None, limit: int | None = None) -> list[dict]:
        return self.store.log(ref, limit)

    def diff(self, tree: str, a: str, b: str) -> list[tuple[bytes, bytes | None, bytes | None]]:
        """(key, value at a, value at b) for every key of ``tree`` that differs."""
        return [(d.key, d.old_value, d.new_value) for d in self.store.diff(a, b, tree)]

    def commits_for_key(self, tree: str, key: bytes) -> list[dict]:
        return self.store.get_commits_for_key(key, tree)

    def get_at(self, ref: str, tree: str, key: bytes) -> bytes | None:
        return self.store.get_at(ref, key, tree)

    def close(self) -> None:
        self.store.close()


class MemoryStorage(NamedTreeStorage):
    """The memory system's four trees."""

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None) -> None:
        super().__init__(path, storage_backend, TREES)


__all__ = ["NamedTreeStorage", "MemoryStorage", "TREES", "StorageBackend"]
