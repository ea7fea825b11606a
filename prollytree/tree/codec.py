"""Node representation and its canonical encoding.

A node is either a *leaf* (level 0: sorted keys and their values) or an *internal* node
(level >= 1: the first key of each child subtree, the child's address and the number of
key/value pairs under it). On disk a node is a msgpack array:

    leaf:      [0, [key, ...], [value, ...]]
    internal:  [level, [first_key, ...], [child_address, ...], [pair_count, ...]]

with keys, values and addresses as msgpack ``bin`` and integers in their shortest form,
which makes the encoding canonical: equal nodes have equal bytes. A node's address is the
SHA-256 of those bytes (32 bytes). Changing this layout changes every root hash; the golden
tests in ``tests/tree/test_golden.py`` exist to make that a deliberate act.
"""

from __future__ import annotations

import hashlib

import msgpack

from ..errors import CorruptNodeError

_packb = msgpack.packb
_unpackb = msgpack.unpackb
_sha256 = hashlib.sha256


class Node:
    """A decoded node. Treat as immutable: nodes are shared by every tree that holds them."""

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
    def is_leaf(self) -> bool:
        return self.level == 0

    def __repr__(self) -> str:
        kind = "Leaf" if self.level == 0 else f"Internal(level={self.level})"
        return f"<{kind} entries={len(self.keys)} pairs={self.total}>"


def encode(node: Node) -> bytes:
    """Canonical bytes of a node."""
    if node.level == 0:
        return _packb([0, node.keys, node.vals], use_bin_type=True)
    return _packb([node.level, node.keys, node.vals, node.counts], use_bin_type=True)


def address(data: bytes) -> bytes:
    """Address of encoded node bytes."""
    return _sha256(data).digest()


def decode(data: bytes, addr: bytes | None = None) -> Node:
    """Decode node bytes; raises CorruptNodeError (naming ``addr``) on malformed input."""
    try:
        obj = _unpackb(data, raw=False)
        level = obj[0]
        if level == 0 and len(obj) == 3:
            keys, vals = obj[1], obj[2]
            if type(keys) is list and type(vals) is list and len(keys) == len(vals):
                return Node(0, keys, vals)
        elif type(level) is int and level > 0 and len(obj) == 4:
            keys, vals, counts = obj[1], obj[2], obj[3]
            if (type(keys) is list and type(vals) is list and type(counts) is list
                    and len(keys) == len(vals) == len(counts) and keys):
                return Node(level, keys, vals, counts)
    except Exception as e:  # msgpack raises a zoo of exception types on bad input
        raise CorruptNodeError(addr or address(data), f"undecodable node ({e})") from None
    raise CorruptNodeError(addr or address(data), "not a well-formed node")


#: The canonical empty tree: a leaf without entries.
EMPTY_NODE = Node(0, [], [])
EMPTY_NODE_BYTES = encode(EMPTY_NODE)
EMPTY_ROOT = address(EMPTY_NODE_BYTES)
