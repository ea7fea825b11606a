"""The fast read and write paths against models: the leaf search (cold, and hot with a
decoded key list), the flat leaf index, and the node cache's hot-key budget."""

from __future__ import annotations

from bisect import bisect_left

import hypothesis.strategies as st
from hypothesis import given, settings

from prollytree import MemoryNodeStore, ProllyTree, TreeConfig
from prollytree.tree.codec import Node, decode, encode
from prollytree.tree.cursor import LeafIndex, lookup
from prollytree.tree.node_cache import NodeCache

key_lists = st.lists(st.binary(max_size=12), unique=True, max_size=80).map(sorted)
fixed_key_lists = st.lists(st.binary(min_size=8, max_size=8), unique=True,
                           max_size=80).map(sorted)


@settings(max_examples=300, deadline=None)
@given(keys=st.one_of(key_lists, fixed_key_lists), probes=st.lists(st.binary(max_size=12),
                                                                    max_size=20))
def test_leaf_search_matches_bisect(keys, probes):
    vals = [b"v" + k for k in keys]
    leaf = decode(encode(Node(0, keys, vals)))
    probes = probes + keys + [k + b"\x00" for k in keys] + [k[:-1] for k in keys if k]
    for hot in (False, True):
        if hot:
            leaf.warm()
        assert leaf.keys == keys and leaf.vals == vals
        for p in probes:
            i = bisect_left(keys, p)
            assert leaf.index(p) == i
            expected = vals[i] if i < len(keys) and keys[i] == p else None
            assert leaf.get(p) == expected


@settings(max_examples=60, deadline=None)
@given(pairs=st.dictionaries(st.binary(max_size=6), st.binary(max_size=6), max_size=400),
       probes=st.lists(st.binary(max_size=6), max_size=40),
       budget=st.sampled_from([0, 300, 5000, 1 << 20]))
def test_leaf_index_and_lookup_match_dict(pairs, probes, budget):
    t = ProllyTree(config=TreeConfig(modulus=4), cache_bytes=budget * 4)
    t.insert_batch(pairs.items())
    t.get_root_hash()
    cache, root = t.node_cache, t._root_node
    index = LeafIndex(cache, root) if root.level else None
    for p in list(pairs) + probes:
        expected = pairs.get(p)
        assert lookup(cache, root, p) == expected
        if index is not None:
            assert index.get(p) == expected
    # the hot-key budget holds
    assert cache._hot_bytes <= max(cache._hot_budget, 0) or not cache._hot


def test_find_switches_to_the_index_and_back_after_writes():
    t = ProllyTree(config=TreeConfig(modulus=4))
    model = {b"%05d" % i: b"v%d" % i for i in range(2000)}
    t.insert_batch(model.items())
    for round_ in range(3):
        for k, v in model.items():
            assert t.find(k) == v
        assert t._index is not None  # many reads of one root build the flat index
        for i in range(0, 2000, 7):
            k = b"%05d" % i
            model[k] = b"new%d" % round_
            t.insert(k, model[k])
        assert t.delete(b"00003") == (b"00003" in model)
        model.pop(b"00003", None)
        assert t.find(b"00003") is None
        t.get_root_hash()
        assert t._index is None  # a new root drops it
    assert dict(t.items()) == model


def test_hot_budget_is_bounded_under_uniform_reads():
    store = MemoryNodeStore()
    t = ProllyTree.from_root(ProllyTree().get_root_hash(), store)
    pairs = {b"%08d" % i: b"x" * 8 for i in range(20000)}
    t.insert_batch(pairs.items())
    root = t.get_root_hash()
    cache = NodeCache(store, leaf_bytes=1 << 20)  # hot budget: 256 KiB
    t2 = ProllyTree.from_root(root, store)
    for k, v in pairs.items():
        assert lookup(cache, t2._root_node, k) == v
    assert 0 < cache._hot_bytes <= cache._hot_budget
    cache.clear()
    assert cache._hot_bytes == 0 and not cache._hot
