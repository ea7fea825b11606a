"""Cursors: a path from the root to a node at some level, that can step sideways.

Internal nodes store the *first* key of each child, so the child that may hold ``key`` is
the last one whose first key is <= ``key`` (``bisect_right - 1``), clamped to the first
child. Mutation, iteration and range scans all walk trees with this one cursor.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Iterator

from .codec import Node
from .node_cache import NodeCache


class Cursor:
    """Position on one node at ``level`` of a tree, with the path of ancestors above it.

    ``path[d] = [node, child_index]`` for each ancestor, top first; ``node`` is the node at
    the cursor's level.
    """

    __slots__ = ("cache", "level", "path", "node")

    def __init__(self, cache: NodeCache, root: Node, level: int, path: list, node: Node) -> None:
        self.cache = cache
        self.level = level
        self.path = path
        self.node = node

    @classmethod
    def seek(cls, cache: NodeCache, root: Node, level: int, key: bytes) -> "Cursor":
        """Cursor on the node at ``level`` whose range holds ``key`` (the first node when
        ``key`` precedes everything)."""
        path = []
        node = root
        load = cache.load
        while node.level > level:
            i = bisect_right(node.keys, key) - 1
            if i < 0:
                i = 0
            path.append([node, i])
            node = load(node.vals[i])
        return cls(cache, root, level, path, node)

    @classmethod
    def seek_before(cls, cache: NodeCache, root: Node, level: int,
                    end: bytes | None) -> "Cursor | None":
        """Cursor on the node at ``level`` holding the greatest key < ``end`` (the last
        node when ``end`` is None); None when no key precedes ``end``."""
        path = []
        node = root
        load = cache.load
        while node.level > level:
            i = len(node.keys) - 1 if end is None else bisect_left(node.keys, end) - 1
            if i < 0:
                return None
            path.append([node, i])
            node = load(node.vals[i])
        return cls(cache, root, level, path, node)

    def next_first_key(self) -> bytes | None:
        """First key of the node after this one at the same level, or None at the end."""
        for node, i in reversed(self.path):
            if i + 1 < len(node.keys):
                return node.keys[i + 1]
        return None

    def advance(self) -> bool:
        """Move to the next node at this level; False (not moving) at the end."""
        return self._step(1)

    def retreat(self) -> bool:
        """Move to the previous node at this level; False (not moving) at the start."""
        return self._step(-1)

    def _step(self, delta: int) -> bool:
        path = self.path
        d = len(path) - 1
        while d >= 0:
            node, i = path[d]
            j = i + delta
            if 0 <= j < len(node.keys):
                break
            d -= 1
        else:
            return False
        path[d][1] = j
        del path[d + 1:]
        load = self.cache.load
        child = load(path[d][0].vals[j])
        while child.level > self.level:
            k = 0 if delta > 0 else len(child.keys) - 1
            path.append([child, k])
            child = load(child.vals[k])
        self.node = child
        return True


def iter_leaves(cache: NodeCache, root: Node, start: bytes | None = None,
                end: bytes | None = None, reverse: bool = False) -> Iterator[Node]:
    """Leaves that may hold keys in ``[start, end)``, in key order (or reversed)."""
    if root.level == 0:
        yield root
        return
    if not reverse:
        cur = Cursor.seek(cache, root, 0, start if start is not None else b"")
        while True:
            yield cur.node
            nxt = cur.next_first_key()
            if nxt is None or (end is not None and nxt >= end) or not cur.advance():
                return
    else:
        cur = Cursor.seek_before(cache, root, 0, end)
        if cur is None:
            return
        while True:
            yield cur.node
            node = cur.node
            if start is not None and node.size and node.first_key <= start:
                return
            if not cur.retreat():
                return


def iter_items(cache: NodeCache, root: Node, start: bytes | None = None,
               end: bytes | None = None, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs with ``start <= key < end`` (None = unbounded), in key order or
    reversed."""
    for leaf in iter_leaves(cache, root, start, end, reverse):
        lo = 0 if start is None else leaf.index(start)
        hi = leaf.size if end is None else leaf.index(end)
        if lo >= hi:
            continue
        if lo == 0 and hi == leaf.size:
            ks, vs = leaf.keys, leaf.vals
        else:
            key_at, value_at = leaf.key_at, leaf.value_at
            ks = [key_at(i) for i in range(lo, hi)]
            vs = [value_at(i) for i in range(lo, hi)]
        if reverse:
            ks.reverse()
            vs.reverse()
        yield from zip(ks, vs)


def lookup(cache: NodeCache, root: Node, key: bytes) -> bytes | None:
    """The value stored under ``key``, or None."""
    if not root.level:
        return root.get(key)
    node = root
    load = cache.load
    while node.level > 1:
        i = bisect_right(node.keys, key) - 1
        if i < 0:
            return None
        node = load(node.vals[i])
    i = bisect_right(node.keys, key) - 1
    if i < 0:
        return None
    return cache.leaf_get(node.vals[i], key)


class LeafIndex:
    """The first key and address of every leaf of one tree, in key order: a lookup is
    one ``bisect`` over all leaves instead of one per level. Built in
    O(leaves / fan-out) node reads plus a list copy of O(leaves) pointers (about 16 bytes
    per leaf); valid for the root it was built from only (nodes are immutable)."""

    __slots__ = ("cache", "firsts", "addrs", "_leaves")

    def __init__(self, cache: NodeCache, root: Node) -> None:
        self.cache = cache
        self._leaves = cache.cached_leaves
        firsts: list = []
        addrs: list = []
        if root.level == 0:
            raise ValueError("a single-leaf tree needs no index")
        load = cache.load
        stack = [root]
        while stack:  # depth first, children in order: level-1 nodes come in key order
            node = stack.pop()
            if node.level == 1:
                firsts += node.keys
                addrs += node.vals
            else:
                stack.extend(map(load, reversed(node.vals)))
        self.firsts = firsts
        self.addrs = addrs

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None."""
        i = bisect_right(self.firsts, key) - 1
        if i < 0:
            return None
        addr = self.addrs[i]
        leaf = self._leaves.get(addr)
        if leaf is not None:
            keys = leaf.hot_keys
            if keys is not None:  # the hot path of Leaf.get, inlined
                j = bisect_left(keys, key)
                if j < len(keys) and keys[j] == key:
                    return leaf.value_at(j)
                return None
        return self.cache.leaf_get(addr, key)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None if none)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)
