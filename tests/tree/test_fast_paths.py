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


splice_configs = st.sampled_from([
    TreeConfig(modulus=4),
    TreeConfig(modulus=3, min_chunk_size=2, max_chunk_size=5),
    TreeConfig(modulus=8, max_chunk_size=3),
    TreeConfig(modulus=4, min_chunk_size=3, max_chunk_size=9),
    TreeConfig(modulus=2, min_chunk_size=2, max_chunk_size=4),
    TreeConfig(modulus=1, min_chunk_size=2, max_chunk_size=3),
])


@settings(max_examples=150, deadline=None)
@given(config=splice_configs,
       pairs=st.dictionaries(st.binary(max_size=4), st.binary(max_size=5), max_size=150),
       edits=st.lists(st.tuples(st.binary(max_size=4), st.one_of(st.none(),
                                                                   st.binary(max_size=5))),
                      min_size=1, max_size=25))
def test_single_edits_match_a_tree_built_from_scratch(config, pairs, edits):
    """Each edit alone (the splice path when no boundary moves, else the general one)
    gives the root of the tree built from the resulting pairs, and reads match a dict."""
    from prollytree.tree.mutate import splice_one

    from .helpers import naive_root
    t = ProllyTree(config=config)
    t.insert_batch(pairs.items())
    model = dict(pairs)
    spliced = 0
    for k, v in edits:
        before = t.get_root_hash()
        direct = splice_one(t.node_cache, config, before, k, v)
        if v is None:
            t.delete(k)
            model.pop(k, None)
        else:
            t.insert(k, v)
            model[k] = v
        root = t.get_root_hash()
        assert root == naive_root(model, config)
        if direct is not None:
            spliced += 1
            assert direct == root
        for probe in (k, *list(model)[:5]):
            assert t.find(probe) == model.get(probe)
    assert dict(t.items()) == model


def test_splice_is_taken_for_most_single_inserts_and_hashes_are_unchanged():
    from prollytree.tree.mutate import splice_one

    from .helpers import naive_root
    import random
    rng = random.Random(5)
    t = ProllyTree()
    model = {}
    hits = 0
    for i in range(3000):
        k, v = rng.randbytes(16), rng.randbytes(32)
        root = t.get_root_hash()
        if splice_one(t.node_cache, t.config, root, k, v) is not None:
            hits += 1
        t.insert(k, v)
        model[k] = v
        t.get_root_hash()
    assert hits > 2500  # boundaries rarely move
    assert t.get_root_hash() == naive_root(model)


def test_splice_into_leaves_of_more_than_512_entries():
    import random

    from .helpers import naive_root
    rng = random.Random(9)
    config = TreeConfig(modulus=1500)
    model = {rng.randbytes(8): rng.randbytes(8) for _ in range(3000)}
    t = ProllyTree(config=config)
    t.insert_batch(model.items())
    for _ in range(20):
        k = rng.randbytes(8)
        model[k] = rng.randbytes(8)
        t.insert(k, model[k])
        t.get_root_hash()
        victim = rng.choice(list(model))
        del model[victim]
        t.delete(victim)
        t.get_root_hash()
    assert t.get_root_hash() == naive_root(model, config)
    assert all(t.find(k) == v for k, v in model.items())


@settings(max_examples=300, deadline=None)
@given(width=st.integers(0, 6), n=st.integers(1, 40), level=st.integers(1, 3),
       seed=st.integers(0, 2**32), probes=st.lists(st.binary(max_size=7), max_size=8),
       damage=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(0, 255))))
def test_internal_route_agrees_with_decode(width, n, level, seed, probes, damage):
    """The proof verifier's in-place reading of internal nodes routes every key as
    decode + bisect_right does, and gives up (None) on anything else - including damaged
    bytes, which decode must then judge."""
    import random
    from bisect import bisect_right

    from prollytree.errors import CorruptNodeError
    from prollytree.tree.codec import internal_route
    rng = random.Random(seed)
    keys = sorted({rng.randbytes(width) for _ in range(n)})
    node = Node(level, keys, [rng.randbytes(32) for _ in keys],
                [rng.randrange(0, 70000) for _ in keys])
    data = encode(node)
    if damage is not None:
        pos, byte = damage
        data = bytearray(data)
        data[pos % len(data)] = byte
        data = bytes(data)
    try:
        decoded = decode(data)
    except CorruptNodeError:
        decoded = None
    for key in probes + keys:
        routed = internal_route(data, key)
        if routed is None:
            continue
        assert decoded is not None and decoded.level == routed[0]
        i = bisect_right(decoded.keys, key) - 1
        assert routed[1] == (decoded.vals[i] if i >= 0 else None)
    if damage is None and width:
        assert internal_route(data, keys[0]) is not None  # the common layout is read
