"""Same key/value set => same root hash, whatever the order and grouping of operations."""

from __future__ import annotations

import random

import hypothesis.strategies as st
from hypothesis import given

from prollytree import MemoryNodeStore, ProllyTree, TreeConfig
from prollytree.tree import EMPTY_ROOT

from .helpers import SMALL, naive_root

pairs_st = st.dictionaries(st.binary(max_size=8), st.binary(max_size=8), max_size=300)


@given(pairs=pairs_st, seed=st.integers(0, 2**32), config=st.sampled_from([SMALL, TreeConfig()]))
def test_order_and_grouping_do_not_matter(pairs, seed, config):
    rnd = random.Random(seed)
    items = list(pairs.items())
    rnd.shuffle(items)
    one_by_one = ProllyTree(config=config)
    for k, v in items:
        one_by_one.insert(k, v)
        if rnd.random() < 0.1:
            one_by_one.get_root_hash()  # interleave applied and buffered writes
    batched = ProllyTree(config=config)
    rnd.shuffle(items)
    for i in range(0, len(items), 37):
        batched.insert_batch(items[i:i + 37])
    expected = naive_root(pairs, config)
    assert one_by_one.get_root_hash() == batched.get_root_hash() == expected


@given(pairs=pairs_st, extra=pairs_st, seed=st.integers(0, 2**32))
def test_insert_then_delete_returns_to_the_same_root(pairs, extra, seed):
    rnd = random.Random(seed)
    t = ProllyTree(config=SMALL)
    t.insert_batch(pairs.items())
    before = t.get_root_hash()
    added = {k: v for k, v in extra.items() if k not in pairs}
    for k, v in added.items():
        t.insert(k, v)
        if rnd.random() < 0.2:
            t.get_root_hash()
    keys = list(added)
    rnd.shuffle(keys)
    for k in keys:
        assert t.delete(k)
    assert t.get_root_hash() == before


@given(pairs=pairs_st, seed=st.integers(0, 2**32))
def test_updates_through_other_values_return_to_the_same_root(pairs, seed):
    rnd = random.Random(seed)
    t = ProllyTree(config=SMALL)
    t.insert_batch(pairs.items())
    before = t.get_root_hash()
    for k in list(pairs):
        if rnd.random() < 0.5:
            t.update(k, b"other" + pairs[k])
            t.get_root_hash()
    for k, v in pairs.items():
        t.insert(k, v)
    assert t.get_root_hash() == before


def test_empty_tree_has_one_canonical_root():
    t = ProllyTree()
    assert t.get_root_hash() == EMPTY_ROOT
    t.insert_batch((b"%d" % i, b"x") for i in range(5000))
    assert t.depth() > 1
    t.delete_batch(b"%d" % i for i in range(5000))
    assert t.get_root_hash() == EMPTY_ROOT
    assert t.size() == 0 and t.depth() == 1
    assert list(t.items()) == []


def test_single_child_roots_collapse():
    t = ProllyTree(config=SMALL)
    t.insert_batch((b"%04d" % i, b"x") for i in range(2000))
    assert t.depth() >= 4
    keep = b"0007"
    t.delete_batch(b"%04d" % i for i in range(2000) if b"%04d" % i != keep)
    assert t.depth() == 1
    assert t.get_root_hash() == naive_root({keep: b"x"}, SMALL)
    assert t.stats()["num_internal_nodes"] == 0


def test_same_root_across_separately_built_stores():
    data = {b"k%05d" % i: b"v%d" % (i * i) for i in range(3000)}
    a = ProllyTree()
    a.insert_batch(data.items())
    b = ProllyTree.from_root(ProllyTree().get_root_hash(), MemoryNodeStore())
    for k in sorted(data, reverse=True):
        b.insert(k, data[k])
    assert a.get_root_hash() == b.get_root_hash()


def test_value_change_rewrites_only_the_path():
    t = ProllyTree()
    t.insert_batch((b"k%06d" % i, b"v") for i in range(50_000))
    t.get_root_hash()
    store = t.store
    before = len(store)
    t.update(b"k025000", b"changed")
    t.get_root_hash()
    assert len(store) - before == t.depth()  # one new node per level, nothing else
