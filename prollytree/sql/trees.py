"""The one module through which the SQL layer reaches its named trees.

A database is a catalog tree plus one tree per table and per index, all committed together.
Everything above this module uses :class:`Trees` only, so the storage of named trees can change
here alone.

This version emulates named trees inside the store's default tree: tree ``name`` holds its
keys under the prefix ``\\x00sqltree\\x00<name>\\x00`` and exists while the marker key
``\\x00sqltrees\\x00<name>`` does. (To be replaced by the store's named-tree API.)
"""

from __future__ import annotations

from typing import Iterator

from .keys import prefix_end

__all__ = ["Trees", "TreeView"]

_DATA = b"\x00sqltree\x00"
_MARK = b"\x00sqltrees\x00"


def _p(name: str) -> bytes:
    return _DATA + name.encode() + b"\x00"


class TreeView:
    """Read access to one named tree, in the working view or at a commit."""

    def __init__(self, trees: "Trees", name: str, ref: str | None) -> None:
        self._s = trees.store
        self.name = name
        self._ref = ref
        self._pre = _p(name)

    def get(self, key: bytes) -> bytes | None:
        if self._ref is None:
            return self._s.get(self._pre + key)
        return self._s.get_at(self._ref, self._pre + key)

    def items(self, start: bytes | None = None, end: bytes | None = None,
              reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``start <= key < end`` in key order (or reversed)."""
        pre = self._pre
        lo = pre + (start or b"")
        hi = pre + end if end is not None else prefix_end(pre)
        if self._ref is None:
            it = self._s.iter_items(lo, hi)
        else:
            it = self._s.iter_items_at(self._ref, lo, hi)
        n = len(pre)
        if reverse:
            return iter([(k[n:], v) for k, v in reversed(list(it))])
        return ((k[n:], v) for k, v in it)

    def prefix(self, p: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self.items(p, prefix_end(p), reverse) if p else self.items(None, None, reverse)


class TreeHandle(TreeView):
    """A named tree of the working copy: reads see staged writes; writes are staged."""

    def insert(self, key: bytes, value: bytes) -> None:
        self._mark()
        self._s.insert(self._pre + key, value)

    def delete(self, key: bytes) -> bool:
        return self._s.delete(self._pre + key)

    def insert_batch(self, pairs) -> int:
        """Stage (key, value) pairs; a None value deletes. Returns how many."""
        puts, n = [], 0
        pre = self._pre
        for k, v in pairs:
            n += 1
            if v is None:
                self._s.delete(pre + k)
            else:
                puts.append((pre + k, v))
        if puts:
            self._mark()
            self._s.insert_batch(puts)
        return n

    def _mark(self) -> None:
        if self._s.get(_MARK + self.name.encode()) is None:
            self._s.insert(_MARK + self.name.encode(), b"")


class Trees:
    """Named trees of one :class:`VersionedKvStore` (working copy and any commit)."""

    def __init__(self, store) -> None:
        self.store = store

    def tree(self, name: str) -> TreeHandle:
        return TreeHandle(self, name, None)

    def tree_at(self, ref: str, name: str) -> TreeView:
        return TreeView(self, name, ref)

    def list_trees(self) -> list[str]:
        n = len(_MARK)
        return [k[n:].decode() for k, _ in self.store.iter_items(_MARK, prefix_end(_MARK))]

    def list_trees_at(self, ref: str) -> list[str]:
        n = len(_MARK)
        return [k[n:].decode()
                for k, _ in self.store.iter_items_at(ref, _MARK, prefix_end(_MARK))]

    def tree_exists(self, name: str) -> bool:
        return self.store.get(_MARK + name.encode()) is not None

    def create_tree(self, name: str) -> None:
        if not self.tree_exists(name):
            self.store.insert(_MARK + name.encode(), b"")

    def drop_tree(self, name: str) -> None:
        pre = _p(name)
        for k, _ in list(self.store.iter_items(pre, prefix_end(pre))):
            self.store.delete(k)
        self.store.delete(_MARK + name.encode())

    def diff(self, from_ref: str, to_ref: str, name: str):
        """[(key, old, new)] of tree ``name`` between two commits, sorted by key."""
        pre = _p(name)
        n = len(pre)
        return [(d.key[n:], d.old_value, d.new_value)
                for d in self.store.diff(from_ref, to_ref) if d.key.startswith(pre)]

    def conflict_location(self, conflict) -> tuple[str, bytes] | None:
        """(tree name, key) of a :class:`MergeConflict`; None outside the named trees."""
        k = conflict.key
        if not k.startswith(_DATA):
            return None
        name, _, key = k[len(_DATA):].partition(b"\x00")
        return name.decode(), key

    def merge(self, source: str, resolver) -> str:
        """Three-way merge of every tree; ``resolver(conflict)`` as for the store."""
        return self.store.merge(source, resolver)

    def status(self) -> list[tuple[str, bytes, str]]:
        """(tree, key, "added"/"modified"/"removed") of the staged changes."""
        out = []
        for k, what in self.store.status():
            if k.startswith(_DATA):
                name, _, key = k[len(_DATA):].partition(b"\x00")
                out.append((name.decode(), key, what))
        return out

    def root_hash(self, name: str, ref: str = "HEAD") -> bytes | None:
        """An identifier of the content of tree ``name`` at ``ref`` (None: absent)."""
        import hashlib
        if name not in self.list_trees_at(ref):
            return None
        h = hashlib.sha256()
        for k, v in TreeView(self, name, ref).items():
            h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
        return h.digest()
