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
import threading
from array import array
from bisect import bisect_left
from functools import lru_cache
from itertools import accumulate, chain

import msgpack

from ..errors import CorruptNodeError

_local = threading.local()


def _packb(obj) -> bytes:
    """msgpack bytes of ``obj`` (bin type for bytes). One Packer per thread: packb()
    builds a Packer, and with it a 1 MiB buffer, on every call, which costs tens of
    microseconds once the heap is large."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(obj)


_unpackb = msgpack.unpackb
_sha256 = hashlib.sha256
_LITTLE = sys.byteorder == "little"
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_U32LE = struct.Struct("<I").unpack_from
_U32X2 = struct.Struct("<II").unpack_from
_MAX_BLOB = 0xFFFFFFFF


class Envelope(bytes):
    """A leaf value that stands for a large value stored as chunks (see
    :mod:`.values`): its bytes are the envelope, and the leaf marks the entry in its
    envelope bitmap (the optional 6th leaf element), so a user value with the same bytes
    is never mistaken for one. Equal only to another Envelope with the same bytes."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is Envelope and bytes.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = bytes.__hash__


def is_leaf_bytes(data: bytes) -> bool:
    """Whether encoded node ``data`` is a leaf (with or without an envelope bitmap)."""
    return data[:2] == b"\x95\x00" or data[:2] == b"\x96\x00"


class Node:
    """A node held as Python lists: every internal node, and leaves being built. Treat as
    immutable: nodes are shared by every tree that holds them."""

    __slots__ = ("level", "keys", "vals", "counts", "total", "data")

    def __init__(self, level: int, keys: list, vals: list, counts: list | None = None,
                 data: bytes | None = None) -> None:
        #: the encoded bytes, once known (kept for internal nodes: splices and proofs)
        self.data = data
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
    """A decoded leaf: positions within its encoded bytes, with no object per key or
    value. ``keys`` and ``vals`` build lists on each access (use them once per leaf);
    :meth:`get` and :meth:`index` search in place, or, once :meth:`warm` gave the leaf a
    decoded key list (the node cache does that for hot leaves, under a byte budget), with
    ``bisect`` in C."""

    __slots__ = ("data", "_kb", "_ks", "_vb", "_vs", "total", "_w", "hot_keys", "env")
    level = 0
    counts = None

    def __init__(self, data: bytes, kb: int, ks: int, vb: int, vs: int, n: int,
                 env: bytes | None = None) -> None:
        self.data = data
        #: the envelope bitmap (bit i: entry i is an :class:`Envelope`), or None
        self.env = env
        self._kb = kb  # where the keys blob starts in data
        self._ks = ks  # where the n + 1 little-endian uint32 key starts are in data
        self._vb = vb
        self._vs = vs
        self.total = n
        self._w = -1  # width of every key when all have one width, else 0; -1: not known
        #: the decoded keys, while the node cache keeps this leaf hot (else None)
        self.hot_keys: list | None = None

    @property
    def size(self) -> int:
        return self.total

    @property
    def keys(self) -> list:
        return _split(self.data, self._kb, self._ks, self.total)

    @property
    def vals(self) -> list:
        vals = _split(self.data, self._vb, self._vs, self.total)
        if self.env is not None:
            vals = list(vals)
            for i in _flagged(self.env):
                vals[i] = Envelope(vals[i])
        return vals

    def key_at(self, i: int) -> bytes:
        a, b = _U32X2(self.data, self._ks + 4 * i)
        kb = self._kb
        return self.data[kb + a:kb + b]

    def value_at(self, i: int) -> bytes:
        a, b = _U32X2(self.data, self._vs + 4 * i)
        vb = self._vb
        if self.env is not None and self.env[i >> 3] >> (i & 7) & 1:
            return Envelope(self.data[vb + a:vb + b])
        return self.data[vb + a:vb + b]

    @property
    def first_key(self) -> bytes | None:
        return self.key_at(0) if self.total else None

    @property
    def last_key(self) -> bytes | None:
        return self.key_at(self.total - 1) if self.total else None

    def warm(self) -> int:
        """Decode the key list used by fast searches; returns the bytes it takes (about
        64 per 16-byte key)."""
        keys = self.hot_keys
        if keys is None:
            keys = self.hot_keys = self.keys
        return 56 + 8 * len(keys) + sum(map(len, keys)) + 40 * len(keys)

    def _width(self) -> int:
        n = self.total
        if not n:
            self._w = 0
            return 0
        starts = _table(self.data, self._ks, n + 1)
        w = starts[1]
        self._w = w if (w and starts[n] == n * w and _is_progression(starts, n, w)) else 0
        return self._w

    def index(self, key: bytes) -> int:
        """Position of the first entry whose key is >= ``key`` (binary search)."""
        keys = self.hot_keys
        if keys is not None:
            return bisect_left(keys, key)
        w = self._w
        if w < 0:
            w = self._width()
        lo, hi = 0, self.total
        d = self.data
        if w:  # fixed-width keys: one slice per probe, no offset lookups
            b = self._kb
            while lo < hi:
                mid = (lo + hi) >> 1
                p = b + mid * w
                if d[p:p + w] < key:
                    lo = mid + 1
                else:
                    hi = mid
            return lo
        key_at = self.key_at
        while lo < hi:
            mid = (lo + hi) >> 1
            if key_at(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""
        keys = self.hot_keys
        if keys is not None:
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                if self.env is not None:
                    return self.value_at(i)
                a, b = _U32X2(self.data, self._vs + 4 * i)
                vb = self._vb
                return self.data[vb + a:vb + b]
            return None
        i = self.index(key)
        if i < self.total and self.key_at(i) == key:
            return self.value_at(i)
        return None

    def __repr__(self) -> str:
        return f"<Leaf entries={self.total}>"


def _flagged(bitmap: bytes) -> list[int]:
    """Positions of the set bits of an envelope bitmap (bit i: byte i >> 3, bit i & 7)."""
    return [i for i in range(8 * len(bitmap)) if bitmap[i >> 3] >> (i & 7) & 1]


def envelope_bitmap(vals: list) -> bytes | None:
    """The envelope bitmap of a leaf's values, or None when none is an Envelope."""
    if Envelope not in set(map(type, vals)):
        return None
    bits = bytearray((len(vals) + 7) >> 3)
    for i, v in enumerate(vals):
        if type(v) is Envelope:
            bits[i >> 3] |= 1 << (i & 7)
    return bytes(bits)


def _table(data: bytes, pos: int, count: int):
    """``count`` little-endian uint32 at ``pos`` of ``data``, as a sequence of ints."""
    if _LITTLE:
        return memoryview(data)[pos:pos + 4 * count].cast("I")
    a = array("I", data[pos:pos + 4 * count])
    a.byteswap()
    return a


# Offset tables of fixed-width entries are 0, w, 2w, ...: one reference array per width
# (grown on demand) to compare them against in C.
_PROGRESSIONS: dict[int, array] = {}


def _progression(n: int, width: int) -> array:
    """An array starting 0, width, 2 * width, ... of at least ``n + 1`` entries."""
    p = _PROGRESSIONS.get(width)
    if p is None or len(p) <= n:
        if len(_PROGRESSIONS) >= 256:
            _PROGRESSIONS.clear()
        m = max(n + 1, 512)
        p = array("I", range(0, m * width, width)) if width else array("I", bytes(4 * m))
        _PROGRESSIONS[width] = p
    return p


def _is_progression(starts, n: int, width: int) -> bool:
    return starts == _progression(n, width)[:n + 1]


_GROUP = 16


@lru_cache(maxsize=1024)
def _fixed_width(count: int, width: int) -> struct.Struct:
    # keyed by width and a count below _GROUP + 1 only, so a few structs per width serve
    # every leaf size (keying by leaf size made the cache thrash)
    return struct.Struct(f"{width}s" * count)


def _split(data: bytes, base: int, starts_pos: int, n: int) -> list:
    """The ``n`` byte strings of a blob at ``base`` whose ``n + 1`` offsets are at
    ``starts_pos``. Fixed-width entries (common: hashes, ids, fixed records) are cut by
    struct calls in C."""
    if not n:
        return []
    starts = _table(data, starts_pos, n + 1)
    width = starts[1]
    if width and starts[n] == n * width and _is_progression(starts, n, width):
        q, r = divmod(n, _GROUP)
        out = []
        if q:
            step = _GROUP * width
            out = list(chain.from_iterable(
                _fixed_width(_GROUP, width).iter_unpack(memoryview(data)[base:base + q * step])))
        if r:
            out += _fixed_width(r, width).unpack_from(data, base + q * _GROUP * width)
        return out
    blob = data[base:base + starts[n]]
    return [blob[x:y] for x, y in zip(starts, starts[1:])]


def _bin_header(n: int) -> bytes:
    """msgpack's (shortest, so canonical) header of a bin of ``n`` bytes."""
    if n < 0x100:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 0x10000:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _table_bytes(values) -> bytes:
    a = values if isinstance(values, array) else array("I", values)
    if not _LITTLE:
        a = array("I", a)
        a.byteswap()
    return a.tobytes()


def _edited_blob(data: bytes, base: int, starts_pos: int, n: int, i: int, remove: int,
                 insert: bytes | None) -> tuple[list, bytes]:
    """One blob of a leaf (keys or values) with entries ``i .. i + remove`` replaced by
    ``insert`` (or by nothing): (pieces of the new blob, the new offset table)."""
    starts = _table(data, starts_pos, n + 1)
    a = starts[i]
    b = starts[i + remove]
    end = starts[n]
    pieces = [data[base:base + a]]
    if insert is not None:
        pieces.append(insert)
    pieces.append(data[base + b:base + end])
    delta = (0 if insert is None else len(insert)) - (b - a)
    new_n = n - remove + (insert is not None)
    w = starts[1] if n else 0
    if (w and (insert is None or len(insert) == w) and end == n * w
            and _is_progression(starts, n, w)):
        table = _progression(new_n, w)[:new_n + 1]  # still fixed width: a progression
    else:
        table = array("I", starts[:i + 1])  # entries before i keep their offsets
        if insert is not None:
            table.append(a + len(insert))
        tail = starts[i + remove + 1:]
        table.extend([t + delta for t in tail] if delta else tail)
    return pieces, _table_bytes(table)


def leaf_edit(leaf: Leaf, i: int, key: bytes, value: bytes | None, found: bool) -> bytes:
    """Encoded bytes of ``leaf`` after one edit at entry ``i``: set ``key`` to ``value``
    (replacing entry ``i`` when ``found``, else inserting before it) or, with ``value``
    None, remove entry ``i``. A splice of the stored bytes: the same bytes as encoding
    the edited entry lists, without decoding them."""
    d, n = leaf.data, leaf.total
    if value is None:
        vp, vt = _edited_blob(d, leaf._vb, leaf._vs, n, i, 1, None)
    else:
        vp, vt = _edited_blob(d, leaf._vb, leaf._vs, n, i, 1 if found else 0, value)
    if value is not None and found:
        head = [d[:leaf._ks + 4 * (n + 1)]]  # keys, their table and headers: unchanged
    else:
        kp, kt = _edited_blob(d, leaf._kb, leaf._ks, n, i, 0 if value is not None else 1,
                              key if value is not None else None)
        klen = sum(map(len, kp))
        if klen > _MAX_BLOB:
            raise ValueError("a leaf's keys or values exceed 4 GiB in total")
        head = [b"\x95\x00", _bin_header(klen), *kp, _bin_header(len(kt)), kt]
    vlen = sum(map(len, vp))
    if vlen > _MAX_BLOB:
        raise ValueError("a leaf's keys or values exceed 4 GiB in total")
    return b"".join([*head, _bin_header(vlen), *vp, _bin_header(len(vt)), vt])


def internal_edit(node: Node, j: int, child: bytes, count: int) -> Node:
    """``node`` (internal) with child ``j`` replaced by the child at address ``child``
    holding ``count`` pairs; keys shared with ``node``. The encoding is spliced: the
    address sits at a fixed place before the counts (every address is a 34-byte bin), so
    only the counts are re-encoded."""
    counts = node.counts.copy()
    counts[j] = count
    vals = node.vals.copy()
    vals[j] = child
    data = node.data
    if data is not None and len(child) == 32:
        old_tail = _packb(node.counts)
        cstart = len(data) - len(old_tail)
        a = cstart - 34 * (len(counts) - j) + 2
        if data[a - 2:a] == b"\xc4\x20" and data[cstart:] == old_tail:
            new = b"".join((data[:a], child, data[a + 32:cstart], _packb(counts)))
            return Node(node.level, node.keys, vals, counts, new)
    return Node(node.level, node.keys, vals, counts)


def _starts(items: list, total: int, width: int = 0) -> bytes:
    """The offset table of ``items`` (whose lengths sum to ``total``; ``width``: the
    length of every item, when the caller knows they all have one, else 0)."""
    n = len(items)
    if width:
        a = _progression(n, width)[:n + 1]
    elif n and total == n * len(items[0]) and len(set(map(len, items))) == 1:
        a = _progression(n, len(items[0]))[:n + 1]  # fixed width: no per-item work
    else:
        a = array("I", accumulate(map(len, items), initial=0))
    if not _LITTLE:
        a.byteswap()
    return a.tobytes()


def encode_leaf(keys: list, vals: list, key_width: int = 0, value_width: int = 0) -> bytes:
    """Canonical bytes of the leaf holding ``keys`` (sorted, unique) and ``vals``; the
    widths, when nonzero, say that every key (value) has that length."""
    kb, vb = b"".join(keys), b"".join(vals)
    if len(kb) > _MAX_BLOB or len(vb) > _MAX_BLOB:
        raise ValueError("a leaf's keys or values exceed 4 GiB in total")
    env = envelope_bitmap(vals)
    if env is not None:  # format extension: present only in leaves holding envelopes
        return _packb([0, kb, _starts(keys, len(kb), key_width), vb,
                       _starts(vals, len(vb), value_width), env])
    return _packb([0, kb, _starts(keys, len(kb), key_width), vb,
                   _starts(vals, len(vb), value_width)])


def encode(node) -> bytes:
    """Canonical bytes of a node."""
    if node.level == 0:
        if isinstance(node, Leaf):
            return node.data
        return encode_leaf(node.keys, node.vals)
    data = node.data
    if data is None:
        data = node.data = _packb([node.level, node.keys, node.vals, node.counts])
    return data


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


def _array_header(data: bytes, pos: int) -> tuple[int, int]:
    """(length, position after the header) of the msgpack array at ``pos``; (-1, pos)
    when there is none."""
    if pos >= len(data):
        return -1, pos
    t = data[pos]
    if 0x90 <= t <= 0x9F:
        return t & 0x0F, pos + 1
    if t == 0xDC and pos + 3 <= len(data):
        return _U16(data, pos + 1)[0], pos + 3
    if t == 0xDD and pos + 5 <= len(data):
        return _U32(data, pos + 1)[0], pos + 5
    return -1, pos


def internal_route(data: bytes, key: bytes) -> tuple[int, bytes | None] | None:
    """Read an encoded internal node just enough to route ``key``: (level, address of
    the child whose range holds ``key``, or None when ``key`` precedes the node).

    Reads the common layout only - keys of one width below 256 bytes, 32-byte child
    addresses - checking every header in C (strided slices), and returns None for any
    other bytes: the caller then decodes them fully with :func:`decode`. It accepts
    nothing that :func:`decode` rejects, and routes as ``bisect_right`` over the
    decoded keys does, so the two paths agree on every input."""
    if len(data) < 4 or data[0] != 0x94 or not 1 <= data[1] <= 0x7F:
        return None
    n, p = _array_header(data, 2)
    if n <= 0 or p + 2 > len(data) or data[p] != 0xC4:
        return None
    w = data[p + 1]
    step = w + 2
    end = p + n * step
    if (end > len(data) or data[p:end:step] != b"\xc4" * n
            or data[p + 1:end:step] != bytes((w,)) * n):
        return None
    m, q = _array_header(data, end)
    vend = q + 34 * n
    if (m != n or vend > len(data) or data[q:vend:34] != b"\xc4" * n
            or data[q + 1:vend:34] != b"\x20" * n):
        return None
    try:
        counts = _unpackb(data[vend:])
        total = sum(counts)
    except Exception:  # not a list of numbers, or trailing bytes: decode() decides
        return None
    if type(counts) is not list or len(counts) != n or type(total) is not int or min(counts) < 0:
        return None
    lo, hi = 0, n  # bisect_right over the keys, in place
    b = p + 2
    while lo < hi:
        mid = (lo + hi) >> 1
        x = b + mid * step
        if key < data[x:x + w]:
            hi = mid
        else:
            lo = mid + 1
    if lo == 0:
        return data[1], None
    x = q + 34 * (lo - 1) + 2
    return data[1], data[x:x + 32]


def _decode_leaf(data: bytes) -> Leaf:
    kb, ke = _bin(data, 2)
    ks_start, ks_end = _bin(data, ke)
    vb, ve = _bin(data, ks_end)
    vs_start, vs_end = _bin(data, ve)
    env = None
    if data[0] == 0x96:  # the envelope bitmap (format extension)
        eb, ee = _bin(data, vs_end)
        env = data[eb:ee]
        vs_end_all = ee
    else:
        vs_end_all = vs_end
    if vs_end_all != len(data):
        raise ValueError("trailing bytes after the leaf")
    if (ks_end - ks_start) % 4 or (vs_end - vs_start) % 4:
        raise ValueError("offset table length is not a multiple of 4")
    n = (ks_end - ks_start) // 4 - 1
    if (n < 0 or (vs_end - vs_start) // 4 != n + 1
            or _U32LE(data, ks_start)[0] != 0 or _U32LE(data, vs_start)[0] != 0
            or _U32LE(data, ks_end - 4)[0] != ke - kb or _U32LE(data, vs_end - 4)[0] != ve - vb):
        raise ValueError("inconsistent offset tables")
    if env is not None:
        # canonical: one bit per entry, no padding bits, at least one envelope
        if (len(env) != (n + 7) >> 3 or not any(env)
                or (n & 7 and env[-1] >> (n & 7))):
            raise ValueError("malformed envelope bitmap")
    return Leaf(data, kb, ks_start, vb, vs_start, n, env)


def decode(data: bytes, addr: bytes | None = None):
    """Decode node bytes into a :class:`Leaf` or an internal :class:`Node`; raises
    CorruptNodeError (naming ``addr``) on malformed input."""
    try:
        if data[:2] == b"\x95\x00" or data[:2] == b"\x96\x00":
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
                node = Node(level, keys, vals, counts, data)
                if type(node.total) is int and min(counts) >= 0:
                    return node
    except Exception as e:  # msgpack raises a zoo of exception types on bad input
        raise CorruptNodeError(addr or address(data), f"undecodable node ({e})") from None
    raise CorruptNodeError(addr or address(data), "not a well-formed node")


#: The canonical empty tree: a leaf without entries.
EMPTY_NODE_BYTES = encode(Node(0, [], []))
EMPTY_ROOT = address(EMPTY_NODE_BYTES)
EMPTY_NODE = decode(EMPTY_NODE_BYTES)
