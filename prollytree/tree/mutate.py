"""Building trees and applying batches of edits, touching only the nodes that change.

``apply_edits`` works level by level, bottom up. At each level it seeks the node that holds
the next edit, merges the edits into that node's entries and re-chunks from the node's
start, carrying on into following nodes until a new cut coincides with an old node end
(from there on old and new chunking agree). The nodes it replaced and the nodes it made
become the edits of the level above. Cost: O(edits x depth) nodes, never a rebuild.

The result equals what :func:`build` makes from the final key/value set, which is what
makes the root hash independent of the order of operations.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import itemgetter

from .chunker import Chunker, chunker_for
from .codec import EMPTY_ROOT, Envelope, Node, address, encode, encode_leaf, internal_edit, leaf_edit
from .config import TreeConfig
from .cursor import Cursor
from .node_cache import NodeCache

_first = itemgetter(0)

#: One edit: (key, value) to set or (key, None) to delete. At internal levels the value
#: is (child_address, pair_count).
Edit = tuple


def _merge_entries(node: Node, edits: list, lo: int, hi: int):
    """Copies of ``node``'s entry lists with ``edits[lo:hi]`` (sorted) applied."""
    keys = list(node.keys)
    vals = list(node.vals)
    counts = None if node.counts is None else node.counts[:]
    if hi - lo > 16 or not keys:
        return _merge_linear(keys, vals, counts, edits, lo, hi)
    pos = 0
    for e in range(lo, hi):
        k, v = edits[e]
        i = bisect_left(keys, k, pos)
        found = i < len(keys) and keys[i] == k
        if v is None:
            if found:
                del keys[i]
                del vals[i]
                if counts is not None:
                    del counts[i]
        elif counts is None:
            if found:
                vals[i] = v
            else:
                keys.insert(i, k)
                vals.insert(i, v)
        else:
            if found:
                vals[i] = v[0]
                counts[i] = v[1]
            else:
                keys.insert(i, k)
                vals.insert(i, v[0])
                counts.insert(i, v[1])
        pos = i
    return keys, vals, counts


def _merge_linear(keys, vals, counts, edits, lo, hi):
    """Two-pointer merge for large edit runs."""
    ok, ov, oc = [], [], ([] if counts is not None else None)
    i, n = 0, len(keys)
    for e in range(lo, hi):
        k, v = edits[e]
        while i < n and keys[i] < k:
            ok.append(keys[i])
            ov.append(vals[i])
            if oc is not None:
                oc.append(counts[i])
            i += 1
        if i < n and keys[i] == k:
            i += 1  # replaced or deleted
        if v is not None:
            ok.append(k)
            if oc is None:
                ov.append(v)
            else:
                ov.append(v[0])
                oc.append(v[1])
    ok.extend(keys[i:])
    ov.extend(vals[i:])
    if oc is not None:
        oc.extend(counts[i:])
    return ok, ov, oc


class _LevelWriter:
    """Accumulates the entries of one level and cuts them into nodes."""

    __slots__ = ("cache", "level", "chunker", "keys", "vals", "counts", "made")

    def __init__(self, cache: NodeCache, config: TreeConfig, level: int) -> None:
        self.cache = cache
        self.level = level
        self.chunker = Chunker(config, level)
        self.keys: list = []
        self.vals: list = []
        self.counts: list | None = [] if level else None
        #: (first_key, address, pair_count) of each node written
        self.made: list = []

    def add(self, keys: list, vals: list, counts: list | None,
            candidates: list | None = None) -> None:
        """Append entries (``candidates``: the only keys that may be boundary hits)."""
        carried = len(self.keys)
        cuts, _ = self.chunker.cuts(keys, carried, candidates)
        self.keys += keys
        self.vals += vals
        if counts is not None:
            self.counts += counts
        if cuts:
            self._emit([c + carried for c in cuts])

    def _emit(self, ends: list[int]) -> None:
        level, nodes = self.level, []
        keys, vals, counts = self.keys, self.vals, self.counts
        start = 0
        for end in ends:
            nodes.append(Node(level, keys[start:end], vals[start:end],
                              None if counts is None else counts[start:end]))
            start = end
        del keys[:start]
        del vals[:start]
        if counts is not None:
            del counts[:start]
        for node, addr in zip(nodes, self.cache.write(nodes)):
            self.made.append((node.keys[0], addr, node.total))

    @property
    def pending(self) -> int:
        return len(self.keys)

    def finish(self) -> None:
        """Close the unfinished node (the end of a level always ends a node)."""
        if self.keys:
            self._emit([len(self.keys)])


def _rewrite_level(cache: NodeCache, config: TreeConfig, root: Node, level: int,
                   edits: list) -> tuple[list, list]:
    """Apply sorted keyed ``edits`` to the nodes at ``level`` of the tree under ``root``.

    Returns (first keys of the old nodes replaced, (first_key, address, count) of the new
    nodes), both in key order."""
    removed: list = []
    out = _LevelWriter(cache, config, level)
    # entries of an old node past its first (min_size - 1) and before its last one were
    # not cut, so they are no boundary hits: only new keys and node edges get hashed
    skip = out.chunker.min_size - 1
    n, i = len(edits), 0
    while i < n:
        cur = Cursor.seek(cache, root, level, edits[i][0])
        while True:
            node = cur.node
            nxt = cur.next_first_key()
            j = n
            if nxt is not None:
                j = i
                while j < n and edits[j][0] < nxt:
                    j += 1
            size = node.size
            if size:
                removed.append(node.first_key)
            if j > i:
                keys, vals, counts = _merge_entries(node, edits, i, j)
                candidates = [e[0] for e in edits[i:j] if e[1] is not None]
            else:  # an untouched node re-chunked only because the cut before it moved
                keys, vals, counts = node.keys, node.vals, node.counts
                candidates = []
            if size:
                key_at = node.key_at
                candidates += [key_at(x) for x in range(min(skip, size))]
                candidates.append(node.last_key)
            i = j
            out.add(keys, vals, counts, candidates)
            if nxt is None:
                out.finish()
                break
            if not out.pending:
                break  # new cut == old cut: the rest of this level is unchanged
            cur.advance()
    return removed, out.made


def _grow(cache: NodeCache, config: TreeConfig, made: list, level: int) -> bytes:
    """Root address of the tree whose nodes at ``level`` are ``made``: add levels above
    until one node remains, then collapse single-child internal roots."""
    if not made:
        return EMPTY_ROOT
    while len(made) > 1:
        level += 1
        w = _LevelWriter(cache, config, level)
        w.add([m[0] for m in made], [m[1] for m in made], [m[2] for m in made])
        w.finish()
        made = w.made
    root = made[0][1]
    node = cache.load(root)
    while node.level and node.size == 1:
        root = node.vals[0]
        node = cache.load(root)
    return root


def build(cache: NodeCache, config: TreeConfig, keys: list, vals: list) -> bytes:
    """Root address of a new tree holding ``keys`` (sorted, unique) -> ``vals``. Leaves
    are encoded straight from slices of the two lists and not cached (a later read
    decodes the ones it needs)."""
    if not keys:
        return EMPTY_ROOT
    cuts, rest = chunker_for(config, 0).cuts(keys)
    if rest:
        cuts.append(len(keys))
    items, made = [], []
    start = 0
    for end in cuts:
        ks = keys[start:end]
        data = encode_leaf(ks, vals[start:end])
        addr = address(data)
        items.append((addr, data, False))
        made.append((ks[0], addr, end - start))
        start = end
    cache.write_encoded(items)
    return _grow(cache, config, made, 0)


def apply_edits(cache: NodeCache, config: TreeConfig, root_addr: bytes, edits: list) -> bytes:
    """Root address after applying ``edits`` (sorted by key, unique keys; value None
    deletes) to the tree at ``root_addr``."""
    if not edits:
        return root_addr
    if len(edits) == 1:
        spliced = splice_one(cache, config, root_addr, *edits[0])
        if spliced is not None:
            return spliced
    root = cache.load(root_addr)
    if not root.size:
        inserts = [e for e in edits if e[1] is not None]
        return build(cache, config, [e[0] for e in inserts], [e[1] for e in inserts])
    top = root.level
    level = 0
    while True:
        removed, made = _rewrite_level(cache, config, root, level, edits)
        if level == top:
            return _grow(cache, config, made, top)
        parent = dict.fromkeys(removed)
        for first_key, addr, count in made:
            parent[first_key] = (addr, count)
        edits = sorted(parent.items(), key=_first)
        level += 1


def splice_one(cache: NodeCache, config: TreeConfig, root_addr: bytes, key: bytes,
               value: bytes | None) -> bytes | None:
    """Root address after setting ``key`` to ``value`` (deleting it when None), or None
    when the edit would move a chunk boundary (then use :func:`apply_edits`).

    The common single edit moves no boundary: the leaf's bytes are spliced (see
    :func:`.codec.leaf_edit`) and each ancestor gets its child's new address and pair
    count, its keys unchanged (shared with the old node). Same result as
    :func:`apply_edits`, at the cost of one leaf splice plus one small re-encode and hash
    per level. The boundary rule is checked exactly: an entry is cut when it is a hash hit
    at position >= min_size - 1 or at position max_size - 1 of its node, so an edit keeps
    the node when no entry's cut status changes (see the conditions below)."""
    root = cache.load(root_addr)
    if not root.size:
        return None
    load = cache.load
    path = []
    node = root
    last = True  # whether the leaf is the last one of the tree (no cut needed at its end)
    while node.level:
        keys = node.keys
        j = bisect_right(keys, key) - 1
        if j < 0:
            return None  # key precedes the whole tree: the first keys would change
        if j != len(keys) - 1:
            last = False
        path.append((node, j))
        node = load(node.vals[j])
    leaf = node
    if type(value) is Envelope or getattr(leaf, "env", None) is not None:
        return None  # leaves with envelopes carry a bitmap: re-encode them (apply_edits)
    n = leaf.size
    i = leaf.index(key)
    found = i < n and leaf.key_at(i) == key
    ch = chunker_for(config, 0)
    if value is None:
        if not found:
            return root_addr
        # entries after i move one place down; the leaf's first key must stay, and its
        # last entry must stay a cut (a hit at a position >= min_size - 1)
        if n < 2 or i == 0:
            return None
        if not last and (i == n - 1 or n - 1 < ch.min_size or not ch.is_hit(leaf.key_at(n - 1))):
            return None
        delta = -1
    elif found:
        if leaf.value_at(i) == value:
            return root_addr
        delta = 0  # values never move boundaries
    else:
        # entries from i on move one place up: with i >= min_size - 1 they all sit past
        # min_size - 1 already, so they are non-hits except the last entry, which stays
        # a cut; the new entry must be no cut, and the node must not reach max_size early
        if i == 0 or n + 1 > ch.max_size or i < ch.min_size - 1:
            return None
        if i < n:
            if ch.is_hit(key):
                return None
        elif not last or (n >= ch.min_size and ch.is_hit(leaf.key_at(n - 1))):
            return None  # appending: only to the tree's last leaf, whose end is no cut
        delta = 1
    data = leaf_edit(leaf, i, key, value, found)
    addr = address(data)
    items = [(addr, data, None)]
    for parent, j in reversed(path):
        node = internal_edit(parent, j, addr, parent.counts[j] + delta)
        data = encode(node)
        addr = address(data)
        items.append((addr, data, node))
    cache.write_encoded(items)
    return addr
