"""Golden tests: the on-disk format and the root hashes of fixed inputs are pinned.

If one of these fails, the node format, the chunk-boundary rule or the hashing changed, and
every existing root hash with it. Such a change must be deliberate: bump the format
version in the docs and update these constants together.
"""

from __future__ import annotations

import hashlib

import msgpack

from prollytree import ProllyTree, TreeConfig
from prollytree.tree import EMPTY_ROOT
from prollytree.tree.codec import Node, encode

from .helpers import naive_root


def test_empty_root():
    assert encode(Node(0, [], [])) == b"\x93\x00\x90\x90"
    assert EMPTY_ROOT.hex() == hashlib.sha256(b"\x93\x00\x90\x90").hexdigest()
    assert ProllyTree().get_root_hash() == EMPTY_ROOT


def test_leaf_encoding_is_plain_msgpack():
    leaf = encode(Node(0, [b"a", b"b"], [b"1", b"22"]))
    assert leaf == bytes.fromhex("9300" "92c40161c40162" "92c40131c4023232")
    assert msgpack.unpackb(leaf) == [0, [b"a", b"b"], [b"1", b"22"]]
    inner = encode(Node(1, [b"a"], [b"\x00" * 32], [300]))
    assert msgpack.unpackb(inner) == [1, [b"a"], [b"\x00" * 32], [300]]


GOLDEN_SMALL = 'dbd13f1d40d7240eda76c6b4b6c4644aa5e86ac043674b0325b1356b78f50343'
GOLDEN_10K = '437ea3d43d0732fa6129d4905282bfc79d5ada6b4042983018f5f38a8b8524f4'
GOLDEN_10K_SMALL_CONFIG = '7c22d95ca24b9f9b9b2b0be77072a3a99acffdeb45359ddfdd96e3e31729addc'


def test_two_pairs():
    t = ProllyTree()
    t.insert(b"a", b"1")
    t.insert(b"b", b"2")
    assert t.get_root_hash().hex() == GOLDEN_SMALL


def test_ten_thousand_pairs_default_config():
    t = ProllyTree()
    t.insert_batch((b"key%05d" % i, b"value%d" % i) for i in range(10_000))
    assert t.depth() == 3
    assert t.get_root_hash().hex() == GOLDEN_10K


def test_ten_thousand_pairs_small_config():
    cfg = TreeConfig(base=7, modulus=16, min_chunk_size=2, max_chunk_size=40, pattern=3)
    pairs = {b"%08x" % (i * 2654435761 % 2**32): b"%d" % i for i in range(10_000)}
    t = ProllyTree(config=cfg)
    t.insert_batch(pairs.items())
    assert t.get_root_hash().hex() == GOLDEN_10K_SMALL_CONFIG
    assert naive_root(pairs, cfg).hex() == GOLDEN_10K_SMALL_CONFIG
