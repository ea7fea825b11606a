"""Bad input raises clear exceptions and changes nothing."""

from __future__ import annotations

import pytest

from prollytree import ProllyTree, TreeConfig


@pytest.fixture
def tree():
    t = ProllyTree()
    t.insert_batch((b"k%03d" % i, b"v") for i in range(500))
    return t


@pytest.mark.parametrize("bad", ["str", 1, None, bytearray(b"x"), memoryview(b"x"), 1.5])
def test_non_bytes_keys_and_values(tree, bad):
    root = tree.get_root_hash()
    with pytest.raises(TypeError):
        tree.insert(bad, b"v")
    with pytest.raises(TypeError):
        tree.insert(b"k", bad)
    with pytest.raises(TypeError):
        tree.find(bad)
    with pytest.raises(TypeError):
        tree.update(bad, b"v")
    with pytest.raises(TypeError):
        tree.update(b"k001", bad)
    with pytest.raises(TypeError):
        tree.delete(bad)
    assert tree.get_root_hash() == root
    assert bad not in tree if not isinstance(bad, (bytearray, memoryview)) else True


def test_failed_batch_changes_nothing(tree):
    root = tree.get_root_hash()
    with pytest.raises(TypeError):
        tree.insert_batch([(b"new1", b"v"), (b"new2", "not bytes")])
    with pytest.raises(TypeError):
        tree.insert_batch([(b"new1", b"v"), b"not a pair"])
    with pytest.raises(TypeError):
        tree.delete_batch([b"k001", 5])
    assert tree.get_root_hash() == root
    assert tree.find(b"new1") is None and tree.find(b"k001") == b"v"
    assert tree.size() == 500


def test_unknown_storage_type_and_missing_path():
    with pytest.raises(ValueError, match="unknown storage type"):
        ProllyTree("redis")
    for kind in ("file", "rocksdb", "lmdb"):
        with pytest.raises(ValueError, match="requires a path"):
            ProllyTree(kind)
    with pytest.raises(TypeError):
        ProllyTree(42)
    with pytest.raises(TypeError):
        ProllyTree(config={"modulus": 4})


@pytest.mark.parametrize("kwargs", [
    {"modulus": 0}, {"modulus": -1}, {"pattern": 64}, {"pattern": -1},
    {"min_chunk_size": 0}, {"max_chunk_size": 1}, {"min_chunk_size": 10, "max_chunk_size": 5},
    {"base": -1}, {"base": 2**50},
])
def test_nonsense_config_values(kwargs):
    with pytest.raises(ValueError):
        TreeConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"modulus": "64"}, {"base": 1.0}, {"pattern": True}])
def test_config_types(kwargs):
    with pytest.raises(TypeError):
        TreeConfig(**kwargs)


def test_config_is_immutable_and_round_trips():
    c = TreeConfig(base=9, modulus=32, min_chunk_size=2, max_chunk_size=100, pattern=5)
    with pytest.raises(AttributeError):
        c.modulus = 3
    assert TreeConfig.from_bytes(c.to_bytes()) == c
    assert TreeConfig.from_dict(c.to_dict()) == c
    assert "modulus=32" in repr(c)
    with pytest.raises(ValueError):
        TreeConfig.from_bytes(b"\xff\x00garbage")
    with pytest.raises(ValueError):
        TreeConfig.from_dict({"nope": 1})


def test_config_parameters_are_meaningful():
    pairs = [(b"key%05d" % i, b"v") for i in range(20_000)]
    shapes = {}
    for cfg in [TreeConfig(), TreeConfig(modulus=16), TreeConfig(base=5),
                TreeConfig(pattern=7), TreeConfig(max_chunk_size=8),
                TreeConfig(min_chunk_size=40)]:
        t = ProllyTree(config=cfg)
        t.insert_batch(pairs)
        st = t.stats()
        shapes[repr(cfg)] = (t.get_root_hash(), st["avg_node_size"])
    roots = [r for r, _ in shapes.values()]
    assert len(set(roots)) == len(roots)  # every parameter changes the chunking
    avg = {k: a for k, (_, a) in shapes.items()}
    assert 40 < avg[repr(TreeConfig())] < 90  # ~64 entries per node by default
    assert 10 < avg[repr(TreeConfig(modulus=16))] < 24
    assert avg[repr(TreeConfig(max_chunk_size=8))] <= 8
    assert avg[repr(TreeConfig(min_chunk_size=40))] > 80


def test_from_root_validation(tree):
    with pytest.raises(TypeError):
        ProllyTree.from_root("00" * 32, tree.store)
    with pytest.raises(ValueError):
        ProllyTree.from_root(b"short", tree.store)
    with pytest.raises(TypeError):
        ProllyTree.from_root(tree.get_root_hash(), "not a store")


def test_reverse_must_be_a_bool(tree):
    with pytest.raises(TypeError):
        list(tree.items(reverse="no"))
    with pytest.raises(TypeError):
        list(tree.prefix(b"k", reverse=1))


@pytest.mark.parametrize("kwargs", [
    {"modulus": 1}, {"modulus": 1, "min_chunk_size": 1, "max_chunk_size": 2},
    {"modulus": 2, "max_chunk_size": 2}, {"modulus": 2, "max_chunk_size": 3},
])
def test_degenerate_configs_are_refused(kwargs):
    """Fewer than two entries per leaf on average: as many leaves as pairs."""
    with pytest.raises(ValueError, match="degenerate"):
        TreeConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"modulus": 1, "min_chunk_size": 2}, {"modulus": 2}, {"modulus": 2, "min_chunk_size": 2,
                                                           "max_chunk_size": 2},
])
def test_smallest_useful_configs_are_accepted(kwargs):
    from prollytree.tree.config import expected_leaf_size
    c = TreeConfig(**kwargs)
    assert expected_leaf_size(c.modulus, c.min_chunk_size, c.max_chunk_size) >= 2 - 1e-9
    t = ProllyTree(config=c)
    t.insert_batch((b"%03d" % i, b"v") for i in range(50))
    assert t.stats()["num_leaves"] <= 25 + 5  # about two per leaf at most leaves
