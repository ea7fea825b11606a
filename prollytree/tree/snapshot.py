"""Snapshot: one immutable tree version, the API the layers above the tree use.

A snapshot is (node cache, root address, config). Reading it never changes it; ``apply``
and ``merge`` return edits or new snapshots, so a versioned store can hold many of them
(one per named tree per commit) without copying anything. Costs: ``get`` O(log n);
``items`` O(log n + items); ``diff``, ``merge`` O(differences x depth); ``apply``
O(edits x depth) node writes.
"""

from __future__ import annotations

from typing import Iterator

from .codec import EMPTY_ROOT
from .config import TreeConfig
from .cursor import iter_items, lookup
from .diff import diff_roots
from .merge import MergeConflict, Resolver, three_way_merge
from .mutate import apply_edits
from .node_cache import NodeCache
from .proof import generate_proof


class Snapshot:
    """The tree at ``root`` in ``cache``'s store (``EMPTY_ROOT``: the empty tree)."""

    __slots__ = ("cache", "root", "config", "_node")

    def __init__(self, cache: NodeCache, root: bytes, config: TreeConfig) -> None:
        self.cache = cache
        self.root = root
        self.config = config
        self._node = None

    @classmethod
    def empty(cls, cache: NodeCache, config: TreeConfig) -> "Snapshot":
        return cls(cache, EMPTY_ROOT, config)

    @property
    def node(self):
        """The decoded root node (loaded once)."""
        if self._node is None:
            self._node = self.cache.load(self.root)
        return self._node

    def __repr__(self) -> str:
        return f"<Snapshot {self.root.hex()[:12]}>"

    # -- reads -------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, None when absent. O(log n)."""
        return lookup(self.cache, self.node, key)

    def items(self, start: bytes | None = None, end: bytes | None = None,
              reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``start <= key < end``, in key order or reversed."""
        return iter_items(self.cache, self.node, start, end, reverse)

    def size(self) -> int:
        """Number of pairs. O(1)."""
        return self.node.total

    def diff(self, other: "Snapshot") -> Iterator[tuple[bytes, bytes | None, bytes | None]]:
        """(key, value here or None, value in ``other`` or None) for every key that
        differs, in key order; equal subtrees are skipped by address."""
        return diff_roots(self.cache, self.root, other.root)

    def proof(self, key: bytes) -> bytes:
        """A portable proof of ``key``'s value or absence (see :mod:`.proof`)."""
        return generate_proof(self.cache, self.root, key)

    # -- new versions ---------------------------------------------------------------------

    def apply(self, edits: list) -> "Snapshot":
        """The snapshot after ``edits`` (sorted, unique keys; value None deletes)."""
        if not edits:
            return self
        return Snapshot(self.cache, apply_edits(self.cache, self.config, self.root, edits),
                        self.config)

    def changed(self, writes: dict) -> list:
        """The writes (key -> value or None) that change something here, sorted."""
        node, cache = self.node, self.cache
        return [(k, v) for k, v in sorted(writes.items()) if lookup(cache, node, k) != v]

    def merge(self, base: "Snapshot", source: "Snapshot", resolver: Resolver = None,
              tree: str = "") -> tuple[list, list[MergeConflict]]:
        """Three-way merge of ``source`` into this snapshot over ``base``: (edits to
        apply here, conflicts the resolver left; ``tree`` labels them)."""
        return three_way_merge(self.cache, base.root, self.root, source.root, resolver, tree)
