"""The one walker: reachability, the full invariant check and shape, against trees built
by the library (no problem) and trees built by hand to break each invariant."""

from hypothesis import given, settings
from hypothesis import strategies as st

from prollytree import ProllyTree, TreeConfig
from prollytree.storage import MemoryNodeStore
from prollytree.tree import walk
from prollytree.tree.codec import EMPTY_ROOT, Node, address, encode

CFG = TreeConfig(modulus=4)


def _put(store, node):
    data = encode(node)
    a = address(data)
    store.put(a, data)
    return a


def _tree_in(store, pairs):
    t = ProllyTree.from_root(EMPTY_ROOT, store, CFG)
    if pairs:
        t.insert_batch(sorted(pairs.items()))
    return t, t.get_root_hash()


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.binary(min_size=1, max_size=6), st.binary(max_size=4), max_size=300))
def test_library_trees_pass_every_check(pairs):
    store = MemoryNodeStore()
    t, root = _tree_in(store, pairs)
    live = t.reachable()
    report = walk.check(store.get, [(root, CFG)])
    assert report.problems == []
    assert report.nodes == len(live)
    assert t.verify()["ok"]
    shape = t.stats()
    assert shape["total_key_value_pairs"] == len(pairs)
    assert shape["num_nodes"] == len(live)
    # a fresh store holds exactly the reachable nodes (plus the empty root's absence)
    assert set(store.addresses()) - {EMPTY_ROOT} == live - {EMPTY_ROOT}


def test_hand_built_trees_break_each_invariant():
    store = MemoryNodeStore()
    ok_leaf = Node(0, [b"a", b"b"], [b"1", b"2"])
    unsorted = Node(0, [b"b", b"a"], [b"1", b"2"])
    a1 = _put(store, ok_leaf)
    a2 = _put(store, unsorted)
    # the root records a wrong first key and a wrong count for its children
    root = _put(store, Node(1, [b"a", b"x"], [a1, a2], [2, 5]))
    report = walk.check(store.get, [(root, TreeConfig(modulus=1 << 40))])
    kinds = sorted((p.kind, p.detail.split(" ")[0]) for p in report.problems)
    details = " | ".join(p.detail for p in report.problems)
    assert all(k == "invariant" for k, _ in kinds), details
    assert "not strictly ascending" in details
    # a node that ends where the chunk rule sets no boundary (not the last of its level)
    cfg = TreeConfig(modulus=1 << 40)             # practically no key is a boundary
    first = _put(store, Node(0, [b"k1"], [b"v"]))
    last = _put(store, Node(0, [b"k2"], [b"v"]))
    split = _put(store, Node(1, [b"k1", b"k2"], [first, last], [1, 1]))
    rep = walk.check(store.get, [(split, cfg)])
    assert [p.address for p in rep.problems] == [first]
    assert "no boundary" in rep.problems[0].detail


def test_damage_and_missing_nodes_are_reported_not_raised():
    store = MemoryNodeStore()
    t, root = _tree_in(store, {b"%03d" % i: b"v" for i in range(200)})
    raw = {a: store.get(a) for a in store.addresses()}
    nodes = sorted(set(raw) - {root})
    assert len(nodes) >= 2
    damaged, missing = nodes[0], nodes[1]
    raw[damaged] = raw[damaged][:-1] + bytes([raw[damaged][-1] ^ 1])
    del raw[missing]
    rep = walk.check(raw.get, [(root, CFG)])
    assert {(p.kind, p.address) for p in rep.problems} == {("damaged-node", damaged),
                                                           ("missing-node", missing)}
