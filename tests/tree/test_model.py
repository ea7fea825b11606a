"""ProllyTree against a dict model: every operation, in random sequences (hypothesis)."""

from __future__ import annotations

from bisect import bisect_left

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from prollytree import ProllyTree, TreeConfig, verify_absence, verify_proof
from prollytree.tree import prefix_end

from .helpers import naive_root

keys = st.binary(min_size=0, max_size=6)
values = st.binary(min_size=0, max_size=8)
configs = st.sampled_from([
    TreeConfig(modulus=4),
    TreeConfig(modulus=3, min_chunk_size=2, max_chunk_size=5),
    TreeConfig(modulus=8, max_chunk_size=3),
    TreeConfig(),
])


class TreeModel(RuleBasedStateMachine):
    """Random operation sequences; the tree must always agree with a dict."""

    @initialize(config=configs)
    def setup(self, config):
        self.config = config
        self.tree = ProllyTree(config=config)
        self.model: dict[bytes, bytes] = {}

    def sorted_items(self, start=None, end=None):
        ks = sorted(self.model)
        lo = 0 if start is None else bisect_left(ks, start)
        hi = len(ks) if end is None else bisect_left(ks, end)
        return [(k, self.model[k]) for k in ks[lo:hi]]

    @rule(k=keys, v=values)
    def insert(self, k, v):
        assert self.tree.insert(k, v) is None
        self.model[k] = v

    @rule(items=st.lists(st.tuples(keys, values), max_size=40))
    def insert_batch(self, items):
        self.tree.insert_batch(items)
        self.model.update(items)

    @rule(seed=st.integers(0, 2**16), n=st.integers(1, 300))
    def bulk_insert(self, seed, n):
        # grows the tree to several levels quickly; keys interleave with the small ones
        items = [(b"%d" % (seed * 7919 + i * 104729), b"v%d" % i) for i in range(n)]
        for k, v in items[: n // 2]:
            self.tree.insert(k, v)
        self.tree.insert_batch(items[n // 2:])
        self.model.update(items)

    @rule(k=keys, v=values)
    def update(self, k, v):
        assert self.tree.update(k, v) == (k in self.model)
        if k in self.model:
            self.model[k] = v

    @rule(k=keys)
    def delete(self, k):
        assert self.tree.delete(k) == (k in self.model)
        self.model.pop(k, None)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_existing(self, data):
        k = data.draw(st.sampled_from(sorted(self.model)))
        assert self.tree.delete(k) is True
        del self.model[k]

    @rule(ks=st.lists(keys, max_size=30))
    def delete_batch(self, ks):
        expected = len(set(ks) & set(self.model))
        assert self.tree.delete_batch(ks) == expected
        for k in ks:
            self.model.pop(k, None)

    @rule(k=keys)
    def find(self, k):
        assert self.tree.find(k) == self.model.get(k)
        assert (k in self.tree) == (k in self.model)

    @rule(a=keys, b=keys, reverse=st.booleans())
    def range_scan(self, a, b, reverse):
        start, end = min(a, b), max(a, b)
        expect = self.sorted_items(start, end)
        got = list(self.tree.items(start, end, reverse=reverse))
        assert got == (expect[::-1] if reverse else expect)

    @rule(a=keys, reverse=st.booleans())
    def open_ranges(self, a, reverse):
        got = list(self.tree.items(start=a, reverse=reverse))
        assert got == (self.sorted_items(a, None)[::-1] if reverse else self.sorted_items(a, None))
        got = list(self.tree.items(end=a, reverse=reverse))
        assert got == (self.sorted_items(None, a)[::-1] if reverse else self.sorted_items(None, a))

    @rule(p=st.binary(max_size=2))
    def prefix_scan(self, p):
        expect = [(k, v) for k, v in self.sorted_items() if k.startswith(p)]
        assert list(self.tree.prefix(p)) == expect
        assert list(self.tree.prefix(p, reverse=True)) == expect[::-1]
        end = prefix_end(p)
        assert all(k < end for k, _ in expect) if end is not None else True

    @rule(k=keys)
    def proof(self, k):
        root = self.tree.get_root_hash()
        proof = self.tree.generate_proof(k)
        if k in self.model:
            assert verify_proof(root, proof, k, self.model[k])
            assert self.tree.verify_proof(proof, k, self.model[k])
            assert not verify_proof(root, proof, k, self.model[k] + b"x")
            assert not verify_absence(root, proof, k)
        else:
            assert verify_absence(root, proof, k)
            assert not verify_proof(root, proof, k)

    @rule()
    def reopen_at_root(self):
        # a tree opened at the same root in the same store sees the same content
        other = ProllyTree.from_root(self.tree.get_root_hash(), self.tree.store, self.config)
        assert list(other.items()) == self.sorted_items()

    @invariant()
    def agrees(self):
        if not hasattr(self, "tree"):
            return
        assert self.tree.size() == len(self.model) == len(self.tree)

    @invariant()
    def canonical(self):
        if not hasattr(self, "tree"):
            return
        # history independence: the root equals the from-scratch build of the same pairs
        assert self.tree.get_root_hash() == naive_root(self.model, self.config)

    def teardown(self):
        if hasattr(self, "tree"):
            assert list(self.tree.items()) == self.sorted_items()
            assert list(self.tree) == sorted(self.model)
            assert list(reversed(self.tree)) == sorted(self.model, reverse=True)


TreeModel.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
TestTreeModel = TreeModel.TestCase
