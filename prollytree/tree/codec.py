"""Node representation and its canonical encoding.

A node is either a *leaf* (level 0: sorted keys and their values) or an *internal* node
(level >= 1: the first key of each child subtree, the child's address and the number of
key/value pairs under it). On disk a node is a msgpack array:

    leaf:      [0, keys, key_starts, values, value_starts]
    internal:  [level, [first_key, ...], [child_address, ...], [pair_count, ...]]

In a leaf, ``keys`` and ``values`` are the concatenated key and value bytes (msgpack
``bin``) and ``*_starts`` are ``n + 1`` little-endian uint32 offsets into them (``bin``):
entry ``i`` is ``keys[key_starts[i]:key_starts[i + 1]]``. A leaf is read in place - a
:class:`Leaf` is a few offsets over the stored bytes, with no object per key or value -
which makes decoding nearly free and a cached leaf about as small as its encoding. Internal
nodes (about 1 in 64) are plain msgpack lists, decoded once and kept. Integers use their
shortest msgpack form, so the encoding is canonical: equal nodes have equal bytes. A node's
address is the SHA-256 of those bytes (32 bytes). Changing this layout changes every root
hash; the golden tests in ``tests/tree/test_golden.py`` make that a deliberate act.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from bisect import bisect_left
from functools import lru_cache
from itertools import accumulate

import msgpack

from ..errors import CorruptNodeError

_packb = msgpack.packb
_unpackb = msgpack.unpackb
_sha256 = hashlib.sha256
_LITTLE = sys.byteorder == "little"
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_MAX_BLOB = 0xFFFFFFFF


class Node:
    """A node held as Python lists: every internal node, and leaves being built. Treat as
    immutable: nodes are shared by every tree that holds them."""

    __slots__ = ("level", "keys", "vals", "counts", "total")

    def __init__(self, level: int, keys: list, vals: list, counts: list | None = None) -> None:
        self.level = level
        self.keys = keys
        #: values (leaf) or child addresses (internal)
        self.vals = vals
        #: pairs under each child (internal only)
        self.counts = counts
        self.total = len(keys) if counts is None else sum(counts)

    @property
    def size(self) -> int:
        """Number of entries in this node."""
        return len(self.keys)

    @property
    def first_key(self) -> bytes | None:
        return self.keys[0] if self.keys else None

    @property
    def last_key(self) -> bytes | None:
        return self.keys[-1] if self.keys else None

    def key_at(self, i: int) -> bytes:
        return self.keys[i]

    def value_at(self, i: int) -> bytes:
        return self.vals[i]

    def index(self, key: bytes) -> int:
        """Position of the first entry whose key is >= ``key``."""
        return bisect_left(self.keys, key)

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` in this leaf, or None."""
        keys = self.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return self.vals[i]
        return None

    def __repr__(self) -> str:
        kind = "Leaf" if self.level == 0 else f"Internal(level={self.level})"
        return f"<{kind} entries={len(self.keys)} pairs={self.total}>"


class Leaf:
    """A decoded leaf: offsets over its encoded bytes. ``keys`` and ``vals`` build lists on
    each access (use them once per leaf); :meth:`get` searches in place."""

    __slots__ = ("data", "_kb", "_ks", "_vb", "_vs", "total")
    level = 0
    counts = None

    def __init__(self, data: bytes, kb: int, ks, vb: int, vs, n: int) -> None:
        self.data = data
        self._kb = kb  # where the keys blob starts in data
        self._ks = ks  # n + 1 key starts
        self._vb = vb
        self._vs = vs
        self.total = n

    @property
    def size(self) -> int:
        return self.total

    @property
    def keys(self) -> list:
        return _split(self.data, self._kb, self._ks, self.total)

    @property
    def vals(self) -> list:
        return _split(self.data, self._vb, self._vs, self.total)

    def key_at(self, i: int) -> bytes:
        s = self._ks
        return self.data[self._kb + s[i]:self._kb + s[i + 1]]

    def value_at(self, i: int) -> bytes:
        s = self._vs
        return self.data[self._vb + s[i]:self._vb + s[i + 1]]

    @property
    def first_key(self) -> bytes | None:
        return self.key_at(0) if self.total else None

    @property
    def last_key(self) -> bytes | None:
        return self.key_at(self.total - 1) if self.total else None

    def index(self, key: bytes) -> int:
        """Position of the first entry whose key is >= ``key`` (binary search in place)."""
        d, b, s = self.data, self._kb, self._ks
        lo, hi = 0, self.total
        while lo < hi:
            mid = (lo + hi) >> 1
            if d[b + s[mid]:b + s[mid + 1]] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""
        i = self.index(key)
        if i < self.total and self.key_at(i) == key:
            return self.value_at(i)
        return None

    def __repr__(self) -> str:
        return f"<Leaf entries={self.total}>"


@lru_cache(maxsize=512)
def _progression(n: int, width: int) -> array:
    return array("I", range(0, n * width + 1, width))


@lru_cache(maxsize=512)
def _fixed_width(n: int, width: int) -> struct.Struct:
    return struct.Struct(f"{width}s" * n)


def _split(data: bytes, base: int, starts, n: int) -> list:
    """The ``n`` byte strings of a blob at ``base`` with offsets ``starts``. Fixed-width
    entries (common: hashes, ids, fixed records) are cut by one struct call in C."""
    if not n:
        return []
    width = starts[1]
    if starts[n] == n * width and width and starts == _progression(n, width):
        return list(_fixed_width(n, width).unpack_from(data, base))
    blob = data[base:base + starts[n]]
    return [blob[x:y] for x, y in zip(starts, starts[1:])]


def _starts(items: list) -> bytes:
    a = array("I", accumulate(map(len, items), initial=0))
    if not _LITTLE:
        a.byteswap()
    return a.tobytes()


def encode(node) -> bytes:
    """Canonical bytes of a node."""
    if node.level == 0:
        if isinstance(node, Leaf):
            return node.data
        keys, vals = node.keys, node.vals
        kb, vb = b"".join(keys), b"".join(vals)
        if len(kb) > _MAX_BLOB or len(vb) > _MAX_BLOB:
            raise ValueError("a leaf's keys or values exceed 4 GiB in total")
        return _packb([0, kb, _starts(keys), vb, _starts(vals)], use_bin_type=True)
    return _packb([node.level, node.keys, node.vals, node.counts], use_bin_type=True)


def address(data: bytes) -> bytes:
    """Address of encoded node bytes."""
    return _sha256(data).digest()


def _bin(data: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of the msgpack bin whose header is at ``pos``."""
    t = data[pos]
    if t == 0xC4:
        start, n = pos + 2, data[pos + 1]
    elif t == 0xC5:
        start, n = pos + 3, _U16(data, pos + 1)[0]
    elif t == 0xC6:
        start, n = pos + 5, _U32(data, pos + 1)[0]
    else:
        raise ValueError(f"expected a bin at offset {pos}")
    if start + n > len(data):
        raise ValueError("bin runs past the end of the node")
    return start, start + n


def _offsets(data: bytes, start: int, end: int):
    if (end - start) % 4:
        raise ValueError("offset table length is not a multiple of 4")
    if _LITTLE:
        return memoryview(data)[start:end].cast("I")
    a = array("I", data[start:end])
    a.byteswap()
    return a


def _decode_leaf(data: bytes) -> Leaf:
    kb, ke = _bin(data, 2)
    ks_start, ks_end = _bin(data, ke)
    vb, ve = _bin(data, ks_end)
    vs_start, vs_end = _bin(data, ve)
    if vs_end != len(data):
        raise ValueError("trailing bytes after the leaf")
    ks = _offsets(data, ks_start, ks_end)
    vs = _offsets(data, vs_start, vs_end)
    n = len(ks) - 1
    if (n < 0 or len(vs) != n + 1 or ks[0] != 0 or vs[0] != 0
            or ks[n] != ke - kb or vs[n] != ve - vb):
        raise ValueError("inconsistent offset tables")
    return Leaf(data, kb, ks, vb, vs, n)


def decode(data: bytes, addr: bytes | None = None):
    """Decode node bytes into a :class:`Leaf` or an internal :class:`Node`; raises
    CorruptNodeError (naming ``addr``) on malformed input."""
    try:
        if data[:2] == b"\x95\x00":
            return _decode_leaf(data)
        obj = _unpackb(data, raw=False)
        level = obj[0]
        if type(level) is int and level > 0 and len(obj) == 4:
            keys, vals, counts = obj[1], obj[2], obj[3]
            if (type(keys) is list and type(vals) is list and type(counts) is list
                    and len(keys) == len(vals) == len(counts) and keys):
                # element types too: a str key would make every comparison with a bytes
                # key raise TypeError (in lookups and in proof verification). join()
                # and sum() check them in C, raising TypeError for a wrong element.
                b"".join(keys)
                b"".join(vals)
                node = Node(level, keys, vals, counts)
                if type(node.total) is int and min(counts) >= 0:
                    return node
    except Exception as e:  # msgpack raises a zoo of exception types on bad input
        raise CorruptNodeError(addr or address(data), f"undecodable node ({e})") from None
    raise CorruptNodeError(addr or address(data), "not a well-formed node")


#: The canonical empty tree: a leaf without entries.
EMPTY_NODE_BYTES = encode(Node(0, [], []))
EMPTY_ROOT = address(EMPTY_NODE_BYTES)
EMPTY_NODE = decode(EMPTY_NODE_BYTES)
