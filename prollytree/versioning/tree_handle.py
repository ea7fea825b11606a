"""TreeHandle: one named tree of a versioned store's working copy.

A handle is a name bound to a store: every call goes through the store's public methods
with ``tree=name``, so it sees the store's staged writes and current commit, and writes
are staged in the store's journal and committed with everything else by
``store.commit()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..tree import EMPTY_ROOT, prefix_end

if TYPE_CHECKING:  # pragma: no cover
    from .kv_store import VersionedKvStore


class TreeHandle:
    """The named tree ``name`` of ``store``'s working copy (staged over committed)."""

    __slots__ = ("store", "name")

    def __init__(self, store: "VersionedKvStore", name: str) -> None:
        self.store = store
        self.name = name

    def __repr__(self) -> str:
        return f"<TreeHandle {self.name!r} of {self.store!r}>"

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` (staged, else committed); None when absent. O(log n)."""
        return self.store.get(key, tree=self.name)

    find = get

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def insert(self, key: bytes, value: bytes) -> None:
        """Stage ``key`` = ``value``; creates the tree if needed. O(1) (a journal append)."""
        self.store.insert(key, value, tree=self.name)

    def update(self, key: bytes, value: bytes) -> bool:
        """Stage a new value for an existing key; False (nothing staged) when absent."""
        return self.store.update(key, value, tree=self.name)

    def delete(self, key: bytes) -> bool:
        """Stage the removal of ``key``; returns whether it existed."""
        return self.store.delete(key, tree=self.name)

    def insert_batch(self, pairs: Any) -> int:
        """Stage many (key, value) pairs in one journal append (value None deletes);
        returns how many."""
        return self.store.insert_batch(pairs, tree=self.name)

    def delete_batch(self, keys: Iterable[bytes]) -> int:
        """Stage the removal of ``keys``; returns how many existed."""
        keys = list(keys)
        present = [k for k in keys if self.get(k) is not None]
        self.store.insert_batch([(k, None) for k in present], tree=self.name)
        return len(present)

    def items(self, start: bytes | None = None, end: bytes | None = None,
              reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < end`` in key order (or reversed), lazily."""
        return self.store.iter_items(start, end, tree=self.name, reverse=reverse)

    def keys(self, start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False) -> Iterator[bytes]:
        return (k for k, _ in self.items(start, end, reverse))

    def prefix(self, prefix: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with ``prefix``, in key order (or reversed)."""
        if not isinstance(prefix, bytes):
            raise TypeError(f"prefix must be bytes, not {type(prefix).__name__}")
        return self.items(prefix, prefix_end(prefix), reverse)

    def exists(self) -> bool:
        """Whether the tree is in the working view."""
        return self.store.tree_exists(self.name)

    def root_hash(self) -> bytes:
        """Root address of the tree at the current commit (committed content only; the
        empty tree's root when the commit has no such tree)."""
        return self.store.tree_root(self.name) or EMPTY_ROOT
