"""Structural diff of two trees.

Both trees are walked as streams of *items*: a subtree (first key, level, address) or a
leaf entry (key, value). Heads with the same first key, level and address are skipped
whole, without being read; two nodes covering the same key range with the same keys are
compared entry-wise in C, keeping only the children (or values) that differ; otherwise the
head that starts first (or sits higher) is expanded into its children. Chunk boundaries depend only on content, so outside the
changed regions both trees contain the very same subtrees and the walk re-synchronises:
the cost grows with the number of differences times the depth, not with tree size.
"""

from __future__ import annotations

from collections import deque
from itertools import compress
from operator import ne
from typing import Iterator

from .node_cache import NodeCache

# item = (first_key, level, payload): level 0 is a leaf entry whose payload is the value;
# level L >= 1 is the subtree of a node at level L-1 whose payload is its address.


def _expand(cache: NodeCache, q: deque, item: tuple) -> None:
    node = cache.load(item[2])
    keys = node.keys
    q.extendleft(zip(reversed(keys), [node.level] * len(keys), reversed(node.vals)))


def _leaf_changes(ka: list, va: list, kb: list, vb: list
                  ) -> Iterator[tuple[bytes, bytes | None, bytes | None]]:
    """Changes between two leaves over the same key range, in key order."""
    old, new = dict(zip(ka, va)), dict(zip(kb, vb))
    for key in sorted({k for k, _ in old.items() ^ new.items()}):
        yield key, old.get(key), new.get(key)


def _next_key(q: deque) -> bytes | None:
    """First key of the item after the head (None: the head runs to the end)."""
    return q[1][0] if len(q) > 1 else None


def diff_roots(cache: NodeCache, old_root: bytes, new_root: bytes,
               other_cache: NodeCache | None = None
               ) -> Iterator[tuple[bytes, bytes | None, bytes | None]]:
    """Changes from the tree at ``old_root`` to the tree at ``new_root``, in key order, as
    (key, old value or None, new value or None). ``other_cache`` reads the new tree when it
    lives in another store."""
    if old_root == new_root and other_cache is None:
        return
    ncache = other_cache or cache
    a: deque = deque()
    b: deque = deque()
    ra, rb = cache.load(old_root), ncache.load(new_root)
    a.append((ra.first_key if ra.size else b"", ra.level + 1, old_root))
    b.append((rb.first_key if rb.size else b"", rb.level + 1, new_root))
    while a and b:
        x, y = a[0], b[0]
        if x == y:
            a.popleft()
            b.popleft()
            continue
        kx, lx = x[0], x[1]
        ky, ly = y[0], y[1]
        if kx < ky:
            a.popleft()
            if lx:
                _expand(cache, a, x)
            else:
                yield kx, x[2], None
        elif ky < kx:
            b.popleft()
            if ly:
                _expand(ncache, b, y)
            else:
                yield ky, None, y[2]
        elif lx == 0 and ly == 0:
            a.popleft()
            b.popleft()
            yield kx, x[2], y[2]
        elif lx == ly and _next_key(a) == _next_key(b):
            # Two nodes over the same key range (same first key, and the same key starts
            # whatever follows). When their keys agree - always so after updates - the
            # entries that differ are found in C and only those are looked at: changed
            # values are reported, changed children are compared pairwise.
            a.popleft()
            b.popleft()
            na, nb = cache.load(x[2]), ncache.load(y[2])
            ka, kb = na.keys, nb.keys
            va, vb = na.vals, nb.vals
            if ka != kb:
                if lx == 1:  # leaves: set operations on the pairs, in C
                    yield from _leaf_changes(ka, va, kb, vb)
                else:
                    a.extendleft(zip(reversed(ka), [na.level] * len(ka), reversed(va)))
                    b.extendleft(zip(reversed(kb), [nb.level] * len(kb), reversed(vb)))
            elif lx == 1:
                for i in compress(range(len(ka)), map(ne, va, vb)):
                    yield ka[i], va[i], vb[i]
            else:
                changed = list(compress(range(len(ka)), map(ne, va, vb)))
                lv = na.level
                a.extendleft([(ka[i], lv, va[i]) for i in reversed(changed)])
                b.extendleft([(kb[i], lv, vb[i]) for i in reversed(changed)])
        else:
            if lx >= ly:
                a.popleft()
                _expand(cache, a, x)
            if ly >= lx:
                b.popleft()
                _expand(ncache, b, y)
    while a:
        x = a.popleft()
        if x[1]:
            _expand(cache, a, x)
        else:
            yield x[0], x[2], None
    while b:
        y = b.popleft()
        if y[1]:
            _expand(ncache, b, y)
        else:
            yield y[0], None, y[2]
