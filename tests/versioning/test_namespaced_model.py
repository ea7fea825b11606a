"""Random namespace writes, drops, commits, branches, checkouts and merges on a
NamespacedKvStore against a model: a dict of namespaces (each a dict) per commit, with the
staged writes modelled as the named-trees API documents them."""

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prollytree import ProllyTree
from prollytree.versioning import ConflictResolution, NamespacedKvStore, StorageBackend

NAMESPACES = ["default", "users", "agents/a"]
KEYS = [b"k%d" % i for i in range(6)]
VALUES = [b"a", b"b", b"cc"]
BRANCHES = ["main", "b1", "b2"]

_put = st.tuples(st.just("put"), st.sampled_from(NAMESPACES), st.sampled_from(KEYS),
                 st.sampled_from(VALUES))
_del = st.tuples(st.just("del"), st.sampled_from(NAMESPACES), st.sampled_from(KEYS))
_drop = st.tuples(st.just("drop"), st.sampled_from(NAMESPACES[1:]))
_create = st.tuples(st.just("create"), st.sampled_from(NAMESPACES[1:]))
_commit = st.tuples(st.just("commit"))
_checkout = st.tuples(st.just("checkout"), st.sampled_from(BRANCHES))
_merge = st.tuples(st.just("merge"), st.sampled_from(BRANCHES),
                   st.sampled_from(["source", "dest"]))
# repeated members weight the choice: drops and merges on diverged branches are the
# interesting part (a namespace's existence merges three-way)
ops = st.lists(st.one_of(_put, _put, _put, _del, _drop, _drop, _create, _commit, _commit,
                         _checkout, _checkout, _merge, _merge, _merge), min_size=10,
               max_size=50)


def merge_keys(base, dest, src, take_source):
    out = dict(dest)
    for k in set(base) | set(dest) | set(src):
        b, d, s = base.get(k), dest.get(k), src.get(k)
        if s == b or s == d:
            continue
        if d == b or take_source:
            if s is None:
                out.pop(k, None)
            else:
                out[k] = s
    return out


def merge_model(base, dest, src, take_source):
    """Three-way per namespace; a namespace's existence merges three-way too and it
    survives when anything is left in it."""
    out = {}
    for ns in set(base) | set(dest) | set(src):
        b_ex, d_ex, s_ex = ns in base, ns in dest, ns in src
        content = merge_keys(base.get(ns, {}), dest.get(ns, {}), src.get(ns, {}),
                             take_source)
        exists = s_ex if d_ex == b_ex else d_ex
        if ns == "default" or exists or content:
            out[ns] = content
    return out


class Model:
    """Committed states by commit id, branch heads and the staged changes per namespace
    (``reset``: dropped since the commit; ``created``; ``changes``: key -> value/None)."""

    def __init__(self, first):
        self.commits = {first: {"default": {}}}
        self.heads = {"main": first}
        self.cur = "main"
        self.stage = {}

    def committed(self):
        return self.commits[self.heads[self.cur]]

    def _st(self, ns):
        return self.stage.setdefault(ns, {"reset": False, "created": False, "changes": {}})

    def exists(self, ns):
        if ns == "default":
            return True
        st = self.stage.get(ns)
        if st is None:
            return ns in self.committed()
        if st["created"] or any(v is not None for v in st["changes"].values()):
            return True
        return ns in self.committed() and not st["reset"]

    def view(self, ns):
        if not self.exists(ns):
            return {}
        st = self.stage.get(ns, {"reset": False, "changes": {}})
        out = {} if st["reset"] else dict(self.committed().get(ns, {}))
        for k, v in st["changes"].items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
        return out

    def put(self, ns, k, v):
        self._st(ns)["changes"][k] = v

    def delete(self, ns, k):
        if not self.exists(ns) or k not in self.view(ns):
            return False
        self._st(ns)["changes"][k] = None
        return True

    def drop(self, ns):
        if not self.exists(ns):
            return False
        self.stage[ns] = {"reset": True, "created": False, "changes": {}}
        return True

    def create(self, ns):
        self._st(ns)["created"] = True

    def commit(self, cid):
        state = {ns: self.view(ns) for ns in set(self.committed()) | set(self.stage)
                 if self.exists(ns)}
        self.commits[cid] = state
        self.heads[self.cur] = cid
        self.stage = {}


def run(seq, path, backend):
    s = NamespacedKvStore(path, backend)
    try:
        m = Model(s.current_commit())

        def commit():
            m.commit(s.commit(f"c{len(m.commits)}"))

        for op in seq:
            kind = op[0]
            if kind == "put":
                s.ns_insert(op[1], op[2], op[3])
                m.put(op[1], op[2], op[3])
            elif kind == "del":
                assert s.ns_delete(op[1], op[2]) == m.delete(op[1], op[2])
            elif kind == "drop":
                assert s.delete_namespace(op[1]) == m.drop(op[1])
            elif kind == "create":
                if m.exists(op[1]):
                    continue
                s.create_namespace(op[1])
                m.create(op[1])
            elif kind == "commit":
                commit()
            elif kind == "checkout":
                if m.stage:
                    commit()
                if op[1] not in m.heads:
                    s.branch(op[1])
                    m.heads[op[1]] = m.heads[m.cur]
                else:
                    s.checkout(op[1])
                m.cur = op[1]
            elif kind == "merge" and op[1] in m.heads and op[1] != m.cur:
                if m.stage:
                    commit()
                dest, src = m.heads[m.cur], m.heads[op[1]]
                base = s.store.merge_base(dest, src)
                take_source = op[2] == "source"
                new = s.merge(op[1], ConflictResolution.TakeSource if take_source else None)
                if base == src:
                    assert new == dest
                elif base == dest:
                    assert new == src
                else:
                    m.commits[new] = merge_model(m.commits[base], m.commits[dest],
                                                 m.commits[src], take_source)
                m.heads[m.cur] = new
            # the working view, namespace by namespace
            assert s.current_branch == m.cur
            expect_ns = sorted(ns for ns in NAMESPACES if m.exists(ns))
            assert [n for n in s.list_namespaces() if n in NAMESPACES] == expect_ns
            for ns in NAMESPACES:
                assert s.ns_list_keys(ns) == sorted(m.view(ns))
        for b, c in m.heads.items():
            state = m.commits[c]
            for ns in NAMESPACES:
                assert dict(s.store.iter_items_at(b, tree="" if ns == "default" else
                                                  "ns/" + ns)) == state.get(ns, {})
                assert (s.store.tree_root("" if ns == "default" else "ns/" + ns, b)
                        is not None) == (ns in state)
        # roots are canonical: a namespace changed between two branches exactly when
        # its pairs (or its existence) differ, and its root is a ProllyTree's
        for ns in NAMESPACES:
            for b1, c1 in m.heads.items():
                for b2, c2 in m.heads.items():
                    s1, s2 = m.commits[c1], m.commits[c2]
                    assert s.namespace_changed(ns, b1, b2) == \
                        ((ns in s1) != (ns in s2) or s1.get(ns) != s2.get(ns))
            pairs = m.committed().get(ns)
            if pairs is None:
                assert s.get_namespace_root_hash(ns) is None
            else:
                t = ProllyTree()
                for k, v in pairs.items():
                    t.insert(k, v)
                assert s.get_namespace_root_hash(ns) == t.get_root_hash()
    finally:
        s.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_namespaces_model_in_memory(seq):
    run(seq, "/unused", StorageBackend.InMemory)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_namespaces_model_git(seq):
    with tempfile.TemporaryDirectory() as d:
        run(seq, d + "/ds", StorageBackend.Git)
