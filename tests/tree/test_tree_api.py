"""The seed API's return values and shapes, with hand-computed expectations."""

from __future__ import annotations

from prollytree import ProllyTree, TreeConfig


def test_seed_methods_on_a_small_tree():
    t = ProllyTree()
    assert t.insert(b"user:alice", b"Alice Johnson") is None
    t.insert(b"user:bob", b"Bob Smith")
    assert t.find(b"user:alice") == b"Alice Johnson"
    assert t.find(b"user:carol") is None
    assert t.update(b"user:alice", b"Alice Williams") is True
    assert t.update(b"user:carol", b"x") is False and t.find(b"user:carol") is None
    assert t.delete(b"user:bob") is True
    assert t.delete(b"user:bob") is False
    assert t.size() == 1 and len(t) == 1 and t.depth() == 1
    root = t.get_root_hash()
    assert isinstance(root, bytes) and len(root) == 32
    assert t.stats() == {
        "num_nodes": 1, "num_leaves": 1, "num_internal_nodes": 0, "avg_node_size": 1.0,
        "total_key_value_pairs": 1, "depth": 1,
        # [0, keys, key starts, values, value starts]: 2 + (2+10) + (2+8) + (2+14) + (2+8)
        "total_node_bytes": 50,
    }
    assert "user:alice" in t.traverse()
    assert t.save_config() is None


def test_stats_on_a_multilevel_tree():
    t = ProllyTree()
    t.insert_batch((b"%06d" % i, b"v") for i in range(100_000))
    s = t.stats()
    assert s["total_key_value_pairs"] == 100_000
    assert s["num_nodes"] == s["num_leaves"] + s["num_internal_nodes"]
    assert s["depth"] == t.depth() == 3
    assert 40 < 100_000 / s["num_leaves"] < 90
    lines = t.traverse().splitlines()
    assert len(lines) == s["num_nodes"]


def test_ordered_map_conveniences():
    t = ProllyTree(config=TreeConfig(modulus=4))
    data = {b"a%02d" % i: b"%d" % i for i in range(50)}
    data.update({b"b%02d" % i: b"%d" % i for i in range(50)})
    t.insert_batch(data.items())
    assert list(t) == sorted(data)
    assert list(reversed(t)) == sorted(data, reverse=True)
    assert [k for k, _ in t.prefix(b"b")] == sorted(k for k in data if k.startswith(b"b"))
    assert list(t.keys(b"a10", b"a13")) == [b"a10", b"a11", b"a12"]
    assert list(t.values(b"a10", b"a13")) == [b"10", b"11", b"12"]
    assert list(t.range(b"a48", b"b02", reverse=True)) == [
        (b"b01", b"1"), (b"b00", b"0"), (b"a49", b"49"), (b"a48", b"48")]
    assert t.first() == (b"a00", b"0") and t.last() == (b"b49", b"49")
    assert t[b"a07"] == b"7" and b"a07" in t and b"zz" not in t and "a07" not in t


def test_iterators_read_a_snapshot():
    t = ProllyTree(config=TreeConfig(modulus=4))
    t.insert_batch((b"%03d" % i, b"v") for i in range(100))
    it = t.items()
    t.delete_batch(b"%03d" % i for i in range(100))
    assert len(list(it)) == 100 and t.size() == 0


def test_prefix_with_ff_bytes():
    t = ProllyTree()
    t.insert_batch([(b"\xff", b"1"), (b"\xff\xff", b"2"), (b"\xfe", b"0"), (b"", b"e")])
    assert list(t.prefix(b"\xff")) == [(b"\xff", b"1"), (b"\xff\xff", b"2")]
    assert list(t.prefix(b"")) == sorted([(b"\xff", b"1"), (b"\xff\xff", b"2"),
                                         (b"\xfe", b"0"), (b"", b"e")])
