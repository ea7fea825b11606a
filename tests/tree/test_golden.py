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
from prollytree.tree.codec import Node, decode, encode

from .helpers import naive_root


EMPTY_LEAF = bytes.fromhex("9500" "c400" "c40400000000" "c400" "c40400000000")


def test_empty_root():
    assert encode(Node(0, [], [])) == EMPTY_LEAF
    assert EMPTY_ROOT.hex() == hashlib.sha256(EMPTY_LEAF).hexdigest()
    assert ProllyTree().get_root_hash() == EMPTY_ROOT


def test_leaf_encoding_by_hand():
    leaf = encode(Node(0, [b"a", b"b"], [b"1", b"22"]))
    assert leaf == bytes.fromhex(
        "9500"                                      # [0, ...
        "c4026162"                                  # keys blob "ab"
        "c40c" "00000000" "01000000" "02000000"     # key starts 0, 1, 2 (u32 LE)
        "c403313232"                                # values blob "1" "22"
        "c40c" "00000000" "01000000" "03000000")    # value starts 0, 1, 3
    assert msgpack.unpackb(leaf)[0] == 0 and msgpack.unpackb(leaf)[1] == b"ab"
    decoded = decode(leaf)
    assert decoded.keys == [b"a", b"b"] and decoded.vals == [b"1", b"22"]
    assert decoded.get(b"b") == b"22" and decoded.get(b"c") is None
    inner = encode(Node(1, [b"a"], [b"\x00" * 32], [300]))
    assert msgpack.unpackb(inner) == [1, [b"a"], [b"\x00" * 32], [300]]


GOLDEN_SMALL = '80679037ee006fa37d28799c0eba6e5177e4d709a934611b0557e198b5e93a53'
GOLDEN_10K = 'e671f3ce2849228c2cd02101c3e4dae9b98fe2e6e5ab2f8e039f4a629215e92e'
GOLDEN_10K_SMALL_CONFIG = 'fed6cb8851318c0a411f556dec6d9ef27eed42c097ef031e81929aa74b27af0a'


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
