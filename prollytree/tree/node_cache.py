"""Decoded-node cache in front of a node store.

Trees read nodes through a :class:`NodeCache`: it decodes on a miss and keeps recently
used nodes decoded. Nodes are immutable and content-addressed, so a cached node can never
be stale. Internal nodes (about 1 in 64) get their own cache so that the top of every tree
stays decoded while leaves churn. Leaves are budgeted in bytes: a decoded leaf is its
encoded bytes plus a few offsets (shared with the memory store, which holds the same bytes
object), so the budget is what the cache can add to memory at most.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Mapping

from ..errors import MissingNodeError
from ..storage.base import NodeStore
from .codec import (EMPTY_NODE, EMPTY_NODE_BYTES, EMPTY_ROOT, Leaf, Node, address, decode, encode,
                    is_leaf_bytes)

#: Bytes of leaf data kept decoded (64 MiB: every leaf of a 1M-pair tree of 16/32-byte pairs).
DEFAULT_LEAF_CACHE_BYTES = 64 << 20
DEFAULT_INNER_CACHE = 65536
#: Share of the leaf budget that decoded key lists of hot leaves may take.
HOT_KEYS_SHARE = 8
_ADMIT_EVERY = 256


class NodeCache:
    """Loads, decodes, caches and writes nodes of one store."""

    __slots__ = ("store", "_leaves", "_inner", "_leaf_budget", "_leaf_bytes", "_inner_cap",
                 "_hot", "_hot_budget", "_hot_bytes", "_hot_misses", "_mutex")

    def __init__(self, store: NodeStore, leaf_bytes: int = DEFAULT_LEAF_CACHE_BYTES,
                 inner_capacity: int = DEFAULT_INNER_CACHE) -> None:
        if isinstance(leaf_bytes, bool) or not isinstance(leaf_bytes, int):
            raise TypeError("leaf_bytes must be an int")
        if leaf_bytes < 0:
            raise ValueError("leaf_bytes must be >= 0")
        self.store = store
        self._leaves: OrderedDict[bytes, Node] = OrderedDict()
        self._inner: OrderedDict[bytes, Node] = OrderedDict()
        self._leaf_budget = leaf_bytes
        self._leaf_bytes = 0
        self._inner_cap = max(1, inner_capacity)
        # Threads share a cache: hits read without locking (single dict operations);
        # every change of the caches and their byte counts holds this lock.
        self._mutex = threading.Lock()
        self._hot: OrderedDict[bytes, tuple[Leaf, int]] = OrderedDict()
        self._hot_budget = leaf_bytes // HOT_KEYS_SHARE
        self._hot_bytes = 0
        self._hot_misses = 0

    @property
    def cached_leaves(self) -> "Mapping[bytes, Leaf]":
        """The decoded leaves held now, by address (a live read-only view: do not
        modify)."""
        return self._leaves

    def leaf_get(self, addr: bytes, key: bytes) -> bytes | None:
        """The value of ``key`` in the leaf at ``addr`` (None when absent), making the
        leaf hot when the budget allows (see the module docstring)."""
        leaf = self._leaves.get(addr)
        if leaf is None:
            leaf = self.load(addr)
            if leaf.level:
                raise ValueError("not a leaf address")
        if leaf.hot_keys is None and (
                self._hot_bytes + 64 * leaf.total <= self._hot_budget
                or self._admit_now()) and addr in self._leaves:
            self._admit(addr, leaf)
        return leaf.get(key)

    def _admit_now(self) -> bool:
        self._hot_misses += 1
        return not self._hot_misses % _ADMIT_EVERY

    def _admit(self, addr: bytes, leaf: Leaf) -> None:
        with self._mutex:
            hot = self._hot
            if addr in hot or addr not in self._leaves:
                return
            cost = leaf.warm()
            hot[addr] = (leaf, cost)
            self._hot_bytes += cost
            while self._hot_bytes > self._hot_budget and hot:
                self._cool(hot.popitem(last=False)[1])

    def _cool(self, entry: tuple[Leaf, int]) -> None:
        entry[0].hot_keys = None
        self._hot_bytes -= entry[1]

    def load(self, addr: bytes) -> Node:
        """The node at ``addr``; MissingNodeError if the store lacks it."""
        node = self._inner.get(addr)
        if node is not None:
            # least-recently-used for internal nodes: the top of a tree is hit by every
            # read and must outlive any number of writes
            try:
                self._inner.move_to_end(addr)
            except KeyError:  # evicted by another thread just now
                pass
            return node
        node = self._leaves.get(addr)
        if node is not None:
            return node
        if addr == EMPTY_ROOT:
            return EMPTY_NODE
        data = self.store.get(addr)
        if data is None:
            raise MissingNodeError(addr)
        node = decode(data, addr)
        self._remember(addr, node)
        return node

    def raw(self, addr: bytes) -> bytes:
        """The encoded bytes of the node at ``addr``."""
        if addr == EMPTY_ROOT:
            return EMPTY_NODE_BYTES
        data = self.store.get(addr)
        if data is None:
            raise MissingNodeError(addr)
        return data

    def _remember(self, addr: bytes, node: Node) -> None:
        with self._mutex:
            self._remember_locked(addr, node)

    def _remember_locked(self, addr: bytes, node: Node) -> None:
        if node.level:
            cache = self._inner
            cache[addr] = node
            if len(cache) > self._inner_cap:
                cache.popitem(last=False)
            return
        leaves = self._leaves
        if addr in leaves:
            return
        leaves[addr] = node
        self._leaf_bytes += len(node.data)
        while self._leaf_bytes > self._leaf_budget and leaves:
            old_addr, old = leaves.popitem(last=False)
            self._leaf_bytes -= len(old.data)
            entry = self._hot.pop(old_addr, None)
            if entry is not None:
                self._cool(entry)

    def write(self, nodes: list[Node]) -> list[bytes]:
        """Encode and store nodes; returns their addresses in order."""
        items = []
        for node in nodes:
            data = encode(node)  # internal nodes keep their bytes (Node.data)
            items.append((address(data), data))
        self.store.put_many(items)  # cache only what the store accepted
        for (addr, data), node in zip(items, nodes):
            # a written leaf is cached as a Leaf over the very bytes the store keeps
            self._remember(addr, node if node.level else decode(data, addr))
        return [a for a, _ in items]

    def write_encoded(self, items: list[tuple[bytes, bytes, "Node | Leaf | bool | None"]]
                      ) -> None:
        """Store already encoded nodes, (address, bytes, decoded node or None or False)
        each; the caller vouches that each address is the hash of its bytes and the node
        their decoding (None: decoded here when the node is a leaf, else not cached;
        False: not cached)."""
        self.store.put_many([(a, d) for a, d, _ in items])
        for addr, data, node in items:
            if node is False:
                continue
            if node is None:
                if not is_leaf_bytes(data):
                    continue
                node = decode(data, addr)
            self._remember(addr, node)

    def write_one(self, node: Node) -> bytes:
        """Encode and store one node; returns its address."""
        return self.write([node])[0]

    def clear(self) -> None:
        """Forget every decoded node (after a store's contents changed underneath)."""
        with self._mutex:
            for leaf, _ in self._hot.values():
                leaf.hot_keys = None
            self._hot.clear()
            self._hot_bytes = 0
            self._leaves.clear()
            self._inner.clear()
            self._leaf_bytes = 0
