"""Snapshot, the tree API of the upper layers, against dict models."""

from hypothesis import given, settings
from hypothesis import strategies as st

from prollytree.storage import MemoryNodeStore
from prollytree.tree import EMPTY_ROOT, NodeCache, Snapshot, TreeConfig

CFG = TreeConfig(modulus=8)
pairs = st.dictionaries(st.binary(min_size=1, max_size=4), st.binary(max_size=3), max_size=120)


@settings(max_examples=60, deadline=None)
@given(pairs, pairs, pairs)
def test_snapshot_against_dicts(base, ours, theirs):
    cache = NodeCache(MemoryNodeStore())
    empty = Snapshot(cache, EMPTY_ROOT, CFG)
    b = empty.apply(empty.changed(base))
    assert dict(b.items()) == base and b.size() == len(base)
    assert all(b.get(k) == v for k, v in base.items())

    def edit(model, changes):
        writes = {k: v for k, v in changes.items()}
        writes.update({k: None for k in list(model)[::3]})       # some deletes
        out = dict(model)
        for k, v in writes.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
        return writes, out

    w1, m1 = edit(base, ours)
    w2, m2 = edit(base, theirs)
    s1 = b.apply(b.changed(w1))
    s2 = b.apply(b.changed(w2))
    assert dict(s1.items()) == m1 and dict(s2.items()) == m2
    assert list(s1.items(reverse=True)) == sorted(m1.items(), reverse=True)
    changes = {k: (o, n) for k, o, n in s1.diff(s2)}
    assert changes == {k: (m1.get(k), m2.get(k)) for k in set(m1) | set(m2)
                       if m1.get(k) != m2.get(k)}
    edits, conflicts = s1.merge(b, s2)
    merged = dict(s1.apply(edits).items())
    for c in conflicts:                       # conflicts: both changed a key differently
        assert m1.get(c.key) != m2.get(c.key) and base.get(c.key) not in (
            m1.get(c.key), m2.get(c.key))
    for k in set(m1) | set(m2) | set(base):
        if any(c.key == k for c in conflicts):
            continue
        want = m2.get(k) if m1.get(k) == base.get(k) else m1.get(k)
        assert merged.get(k) == want
