"""ProllyTree.diff against the model, and its cost against the number of changes."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given

from prollytree import ProllyTree
from prollytree.tree.node_cache import NodeCache

from .helpers import SMALL, tree_of

pairs_st = st.dictionaries(st.binary(max_size=5), st.binary(max_size=4), max_size=200)


def model_diff(a: dict, b: dict) -> dict:
    return {
        "added": {k: b[k] for k in b.keys() - a.keys()},
        "removed": {k: a[k] for k in a.keys() - b.keys()},
        "modified": {k: {"old": a[k], "new": b[k]} for k in a.keys() & b.keys() if a[k] != b[k]},
    }


@given(a=pairs_st, b=pairs_st)
def test_diff_matches_model_unrelated_trees(a, b):
    assert tree_of(a, SMALL).diff(tree_of(b, SMALL)) == model_diff(a, b)


@given(base=pairs_st, edits=st.dictionaries(st.binary(max_size=5),
                                            st.one_of(st.none(), st.binary(max_size=4)),
                                            max_size=30))
def test_diff_matches_model_after_edits_same_store(base, edits):
    a = tree_of(base, SMALL)
    b = ProllyTree.from_root(a.get_root_hash(), a.store, SMALL)
    after = dict(base)
    for k, v in edits.items():
        if v is None:
            b.delete(k)
            after.pop(k, None)
        else:
            b.insert(k, v)
            after[k] = v
    d = a.diff(b)
    assert d == model_diff(base, after)
    # the stream form is key-ordered and is the inverse of the reverse diff
    ch = list(a.changes(b))
    assert [c[0] for c in ch] == sorted(c[0] for c in ch)
    assert list(b.changes(a)) == [(k, new, old) for k, old, new in ch]


def test_diff_of_identical_trees_is_empty():
    a = tree_of({b"x%d" % i: b"y" for i in range(1000)})
    b = tree_of({b"x%d" % i: b"y" for i in range(1000)})
    assert a.diff(b) == {"added": {}, "removed": {}, "modified": {}}


class CountingCache(NodeCache):
    loads = 0

    def load(self, addr):
        CountingCache.loads += 1
        return super().load(addr)


def test_diff_cost_grows_with_changes_not_size():
    n = 200_000
    a = ProllyTree()
    a.insert_batch((b"k%07d" % i, b"v%d" % i) for i in range(n))
    b = ProllyTree.from_root(a.get_root_hash(), a.store)
    for i in range(0, n, n // 100):  # 100 scattered updates
        b.update(b"k%07d" % i, b"changed")
    b.get_root_hash()
    cache = CountingCache(a.store)
    from prollytree.tree.diff import diff_roots
    CountingCache.loads = 0
    changes = list(diff_roots(cache, a.get_root_hash(), b.get_root_hash()))
    assert len(changes) == 100
    assert all(old != new for _, old, new in changes)
    # ~100 leaf pairs + their ancestors: bounded by changes x depth x 2, far below n/64
    assert CountingCache.loads <= 2 * 100 * b.depth() + 10
    assert CountingCache.loads < n // 64 / 3
