"""Regressions from a review of the tree layer: failed opens leave nothing behind,
from_root keeps the stored config, closed trees refuse reads, and internal nodes with
elements of the wrong type are damaged nodes (never a TypeError deep in a lookup)."""

from __future__ import annotations

import msgpack
import pytest

from prollytree import MemoryNodeStore, ProllyTree, TreeConfig, verify_absence, verify_proof
from prollytree.errors import CorruptNodeError
from prollytree.tree.codec import EMPTY_ROOT, address

from .helpers import naive_root


@pytest.mark.parametrize("bad, exc", [("x", TypeError), (True, TypeError), (-1, ValueError)])
def test_bad_cache_bytes_creates_no_tree(tmp_path, bad, exc):
    path = tmp_path / "t"
    with pytest.raises(exc):
        ProllyTree("file", path, config=TreeConfig(modulus=8), cache_bytes=bad)
    # nothing was recorded: the path can still be created with another config
    with ProllyTree("file", path, config=TreeConfig(modulus=16)) as t:
        assert t.config == TreeConfig(modulus=16)


def test_from_root_uses_the_config_stored_with_the_tree(tmp_path):
    config = TreeConfig(modulus=4)
    pairs = {b"%04d" % i: b"v" for i in range(300)}
    with ProllyTree("file", tmp_path / "t", config=config) as t:
        t.insert_batch(pairs.items())
        opened = ProllyTree.from_root(t.get_root_hash(), t.store)
        assert opened.config == config
        opened.insert(b"0150a", b"x")
        pairs[b"0150a"] = b"x"
        assert opened.get_root_hash() == naive_root(pairs, config)
    # a store without a recorded config still gets the default
    mem = ProllyTree()
    mem.insert(b"k", b"v")
    assert ProllyTree.from_root(mem.get_root_hash(), mem.store).config == TreeConfig()


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_closed_tree_refuses_reads(tmp_path, kind):
    t = ProllyTree(kind, tmp_path / "t" if kind != "memory" else None)
    t.insert_batch((b"k%03d" % i, b"v") for i in range(300))
    t.find(b"k001")  # leaves now cached
    t.close()
    for read in (lambda: t.find(b"k001"), lambda: b"k001" in t, lambda: list(t.items()),
                 t.size, t.get_root_hash, lambda: t.generate_proof(b"k001"), t.stats):
        with pytest.raises(ValueError, match="closed"):
            read()
    t.close()  # still idempotent


def test_internal_node_with_wrongly_typed_elements_is_damaged():
    store = MemoryNodeStore()
    for bad in ([1, ["a"], [EMPTY_ROOT], [0]], [1, [b"a"], [7], [0]],
                [1, [b"a"], [EMPTY_ROOT], [-5]], [1, [b"a"], [EMPTY_ROOT], [b"x"]]):
        node = msgpack.packb(bad, use_bin_type=True)
        root = address(node)
        # a proof over such a node is refused, not a crash
        proof = msgpack.packb([1, b"k", [node]], use_bin_type=True)
        assert verify_proof(root, proof, b"k") is False
        assert verify_absence(root, proof, b"k") is False
        store.put_many([(root, node)])
        with pytest.raises(CorruptNodeError):
            ProllyTree.from_root(root, store)
