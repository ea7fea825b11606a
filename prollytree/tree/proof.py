"""Portable inclusion and absence proofs.

A proof is the key and the chain of encoded nodes from the root to the leaf where the key
lives (or would live), packed as the msgpack array ``[1, key, [node_bytes, ...]]``. A verifier holding
only the 32-byte root hash checks that the first node hashes to the root, that each next
node hashes to the child address its parent routes the key to, and then reads the key in
the leaf: present with a value (inclusion), or absent (the key is not in the tree). The
proof binds key and value: it only speaks for the key it was made for, and another key's
value from the same leaf does not verify.

Internal nodes record their children's first keys, so a key below a node's first key
provably is not in that subtree; such an absence proof may stop above the leaf level.
"""

from __future__ import annotations

from bisect import bisect_right

import msgpack

from ..errors import ProofError
from .codec import Envelope, _packb, address, decode, internal_route, is_leaf_bytes
from .node_cache import NodeCache
from .values import matches

PROOF_VERSION = 1


def generate_proof(cache: NodeCache, root: bytes, key: bytes) -> bytes:
    """Proof for ``key`` (inclusion or absence) in the tree at ``root``."""
    chain = []
    addr = root
    while True:
        chain.append(cache.raw(addr))
        node = cache.load(addr)
        if node.level == 0:
            break
        i = bisect_right(node.keys, key) - 1
        if i < 0:
            break
        addr = node.vals[i]
    return _packb([PROOF_VERSION, key, chain])


def _check_bytes(name: str, value: object) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")


def proven_value(root_hash: bytes, proof: bytes, key: bytes) -> bytes | None:
    """The value ``proof`` shows ``key`` has in the tree with ``root_hash``, or None when it
    shows the key is absent. Raises ProofError when the proof is malformed or does not
    match the root hash."""
    _check_bytes("root_hash", root_hash)
    _check_bytes("proof", proof)
    _check_bytes("key", key)
    root_hash, key = bytes(root_hash), bytes(key)
    try:
        obj = msgpack.unpackb(bytes(proof), raw=False)
    except Exception as e:  # any damage in the envelope
        raise ProofError(f"malformed proof: {e}") from None
    if (not isinstance(obj, list) or len(obj) != 3 or obj[0] != PROOF_VERSION
            or not isinstance(obj[2], list) or not obj[2]):
        raise ProofError("malformed proof: expected [1, key, [node, ...]]")
    if obj[1] != key:
        raise ProofError("the proof was made for another key")
    expected, level = root_hash, None
    chain = obj[2]
    for depth, data in enumerate(chain):
        if not isinstance(data, bytes):
            raise ProofError("malformed proof: node is not bytes")
        if address(data) != expected:
            what = "the root hash" if depth == 0 else "its parent's child address"
            raise ProofError(f"proof node {depth} does not hash to {what}")
        last = depth == len(chain) - 1
        routed = internal_route(data, key) if not is_leaf_bytes(data) else None
        if routed is not None:  # the usual internal node, read in place
            node_level, child = routed
        else:
            try:
                node = decode(data)
            except ValueError as e:
                raise ProofError(f"proof node {depth} is not a node: {e}") from None
            node_level = node.level
            if node_level == 0:
                if level is not None and level != 0:
                    raise ProofError(f"proof node {depth} is at the wrong level")
                if not last:
                    raise ProofError("proof continues past a leaf")
                return node.get(key)
            i = bisect_right(node.keys, key) - 1
            child = node.vals[i] if i >= 0 else None
        if level is not None and node_level != level:
            raise ProofError(f"proof node {depth} is at the wrong level")
        if child is None:
            if not last:
                raise ProofError("proof continues past a node the key precedes")
            return None  # key precedes every key under this node
        if last:
            raise ProofError("proof stops before reaching the key's leaf")
        expected, level = child, node_level - 1
    raise ProofError("empty proof")  # unreachable: chain is non-empty


def verify_proof(root_hash: bytes, proof: bytes, key: bytes,
                 expected_value: bytes | None = None) -> bool:
    """True when ``proof`` shows that ``key`` is in the tree with ``root_hash`` (with value
    ``expected_value`` when given). Never raises for damaged proofs: returns False."""
    if expected_value is not None:
        _check_bytes("expected_value", expected_value)
    try:
        value = proven_value(root_hash, proof, key)
    except ProofError:
        return False
    if value is None:
        return False
    if expected_value is None:
        return True
    if type(value) is Envelope:  # a chunked value: its length and digest are proven
        try:
            return matches(value, bytes(expected_value))
        except ValueError:
            return False
    return value == bytes(expected_value)


def verify_absence(root_hash: bytes, proof: bytes, key: bytes) -> bool:
    """True when ``proof`` shows that ``key`` is *not* in the tree with ``root_hash``."""
    try:
        return proven_value(root_hash, proof, key) is None
    except ProofError:
        return False
