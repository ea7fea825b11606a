"""Decoded-node cache in front of a node store.

Trees read nodes through a :class:`NodeCache`: it decodes on a miss and keeps recently
used nodes decoded. Nodes are immutable and content-addressed, so a cached node can never
be stale. Internal nodes (about 1 in 64) get their own cache so that the top of every tree
stays decoded while leaves churn. Leaves are budgeted in bytes: a decoded leaf is its
encoded bytes plus a few offsets (shared with the memory store, which holds the same bytes
object), so the budget is what the cache can add to memory at most.
"""

from __future__ import annotations

from collections import OrderedDict

from ..errors import MissingNodeError
from ..storage.base import NodeStore
from .codec import EMPTY_NODE, EMPTY_NODE_BYTES, EMPTY_ROOT, Node, address, decode, encode

#: Bytes of leaf data kept decoded (64 MiB: every leaf of a 1M-pair tree of 16/32-byte pairs).
DEFAULT_LEAF_CACHE_BYTES = 64 << 20
DEFAULT_INNER_CACHE = 65536


class NodeCache:
    """Loads, decodes, caches and writes nodes of one store."""

    __slots__ = ("store", "_leaves", "_inner", "_leaf_budget", "_leaf_bytes", "_inner_cap")

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

    def load(self, addr: bytes) -> Node:
        """The node at ``addr``; MissingNodeError if the store lacks it."""
        node = self._inner.get(addr)
        if node is not None:
            # least-recently-used for internal nodes: the top of a tree is hit by every
            # read and must outlive any number of writes
            self._inner.move_to_end(addr)
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
            self._leaf_bytes -= len(leaves.popitem(last=False)[1].data)

    def write(self, nodes: list[Node]) -> list[bytes]:
        """Encode and store nodes; returns their addresses in order."""
        items = []
        for node in nodes:
            data = encode(node)
            items.append((address(data), data))
        self.store.put_many(items)  # cache only what the store accepted
        for (addr, data), node in zip(items, nodes):
            # a written leaf is cached as a Leaf over the very bytes the store keeps
            self._remember(addr, node if node.level else decode(data, addr))
        return [a for a, _ in items]

    def write_one(self, node: Node) -> bytes:
        """Encode and store one node; returns its address."""
        return self.write([node])[0]

    def clear(self) -> None:
        """Forget every decoded node (after a store's contents changed underneath)."""
        self._leaves.clear()
        self._inner.clear()
        self._leaf_bytes = 0
