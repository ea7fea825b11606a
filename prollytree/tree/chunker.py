"""The chunk-boundary rule: where a level's sorted entries are cut into nodes.

An entry ends a node when ``xxh3_64(key, seed) % modulus == pattern`` and the node already
holds ``min_chunk_size`` entries, or when the node reaches ``max_chunk_size`` entries. The
seed is ``base << 16 | level``, so levels chunk independently. Only key bytes are hashed:
updating a value never moves a boundary, so an update rewrites just the path to the root.

Because the rule reads nothing but the entries since the node's start, re-chunking can
start at any existing node start and stop as soon as a new cut coincides with an old one.
And because a hit depends on the key alone, the interior entries of an existing node (past
its first ``min_size - 1``) are known non-hits: re-chunking hashes only new keys and node
ends.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import lru_cache
from itertools import repeat
from operator import mod as _mod

from xxhash import xxh3_64_intdigest

from .config import TreeConfig


class Chunker:
    """The boundary rule of one level of one config."""

    __slots__ = ("seed", "modulus", "pattern", "min_size", "max_size")

    def __init__(self, config: TreeConfig, level: int) -> None:
        self.seed = (config.base << 16) | level
        self.modulus = config.modulus
        self.pattern = config.pattern
        # Internal levels need >= 2 entries per node so that each level is narrower than
        # the one below and the tree always converges to a single root.
        self.min_size = config.min_chunk_size if level == 0 else max(config.min_chunk_size, 2)
        self.max_size = config.max_chunk_size

    def is_hit(self, key: bytes) -> bool:
        """Whether ``key``'s hash marks a boundary (honoured subject to the sizes)."""
        return xxh3_64_intdigest(key, self.seed) % self.modulus == self.pattern

    def hits(self, keys: list, candidates: list | None = None) -> list[int]:
        """Sorted indexes of the keys whose hash marks a boundary. When ``candidates`` is
        given, only those keys are hashed: the caller knows every other key is no hit."""
        seed, mod, pat = self.seed, self.modulus, self.pattern
        h = xxh3_64_intdigest
        if candidates is None or 2 * len(candidates) > len(keys):
            if mod <= 256:
                # residues as one byte each, computed in C; then find the pattern bytes
                residues = bytes(map(_mod, map(h, keys, repeat(seed)), repeat(mod)))
                out = []
                find = residues.find
                i = find(pat)
                while i >= 0:
                    out.append(i)
                    i = find(pat, i + 1)
                return out
            return [i for i, k in enumerate(keys) if h(k, seed) % mod == pat]
        out = []
        n = len(keys)
        for k in candidates:
            if h(k, seed) % mod == pat:
                i = bisect_left(keys, k)
                if i < n and keys[i] == k:
                    out.append(i)
        out = sorted(set(out))
        return out

    def cuts(self, keys: list, carried: int = 0,
             candidates: list | None = None) -> tuple[list[int], int]:
        """Cut positions in ``keys``, which continue a node already holding ``carried``
        entries. ``candidates`` optionally restricts hashing (see :meth:`hits`). Returns
        (exclusive end indexes of the nodes completed within ``keys``, number of entries
        left over in the unfinished node)."""
        hits = self.hits(keys, candidates)
        cuts: list[int] = []
        min_size, max_size = self.min_size, self.max_size
        start = -carried  # index of the unfinished node's first entry, relative to keys
        for i in hits:
            while i - start + 1 > max_size:
                start += max_size
                cuts.append(start)
            if i - start + 1 >= min_size:
                start = i + 1
                cuts.append(start)
        n = len(keys)
        while n - start >= max_size:
            start += max_size
            cuts.append(start)
        return cuts, n - start


@lru_cache(maxsize=256)
def chunker_for(config: TreeConfig, level: int) -> Chunker:
    """The (shared, immutable) chunker of ``level`` under ``config``."""
    return Chunker(config, level)
