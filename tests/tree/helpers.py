"""Reference implementations the tree tests compare against."""

from __future__ import annotations

from xxhash import xxh3_64_intdigest

from prollytree import MemoryNodeStore, ProllyTree, TreeConfig
from prollytree.tree.codec import Node, address, encode

SMALL = TreeConfig(modulus=4)  # ~4 entries per node: deep trees from few keys


def naive_root(pairs: dict, config: TreeConfig = TreeConfig()) -> bytes:
    """Root hash computed the slow, obvious way, straight from the format description:
    cut each level entry by entry, then build the level above, until one node is left."""
    keys = sorted(pairs)
    entries = [(k, pairs[k], None) for k in keys]
    level = 0
    if not entries:
        return address(encode(Node(0, [], [])))
    while True:
        seed = (config.base << 16) | level
        min_size = config.min_chunk_size if level == 0 else max(config.min_chunk_size, 2)
        chunks, cur = [], []
        for e in entries:
            cur.append(e)
            hit = xxh3_64_intdigest(e[0], seed) % config.modulus == config.pattern
            if len(cur) >= config.max_chunk_size or (hit and len(cur) >= min_size):
                chunks.append(cur)
                cur = []
        if cur:
            chunks.append(cur)
        made = []
        for c in chunks:
            if level == 0:
                node = Node(0, [e[0] for e in c], [e[1] for e in c])
            else:
                node = Node(level, [e[0] for e in c], [e[1] for e in c], [e[2] for e in c])
            made.append((node.keys[0], address(encode(node)), node.total))
        if len(made) == 1:
            return made[0][1]
        entries = made
        level += 1


def tree_of(pairs: dict, config: TreeConfig | None = None) -> ProllyTree:
    t = ProllyTree(config=config)
    t.insert_batch(sorted(pairs.items()))
    return t


__all__ = ["SMALL", "naive_root", "tree_of", "MemoryNodeStore"]
