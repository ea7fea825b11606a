"""Random branch / commit / checkout / merge sequences against a dict model per branch."""

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prollytree.versioning import ConflictResolution, StorageBackend, VersionedKvStore

KEYS = [b"k%02d" % i for i in range(12)]
VALUES = [b"a", b"b", b"c", b"dd"]
BRANCHES = ["main", "b1", "b2"]

_put = st.tuples(st.just("put"), st.sampled_from(KEYS), st.sampled_from(VALUES))
_del = st.tuples(st.just("del"), st.sampled_from(KEYS))
_commit = st.tuples(st.just("commit"))
_checkout = st.tuples(st.just("checkout"), st.sampled_from(BRANCHES))
_merge = st.tuples(st.just("merge"), st.sampled_from(BRANCHES),
                   st.sampled_from(["source", "dest"]))
# repeated members weight the choice: enough commits and switches to make branches diverge
ops = st.lists(st.one_of(_put, _put, _put, _del, _commit, _commit, _checkout, _checkout,
                         _merge, _merge), min_size=15, max_size=60)


def model_merge(base, dest, src, take_source):
    out = dict(dest)
    for k in set(base) | set(dest) | set(src):
        b, d, s = base.get(k), dest.get(k), src.get(k)
        if s == b or s == d:
            continue
        if d == b or take_source:       # only the source changed it, or source wins
            if s is None:
                out.pop(k, None)
            else:
                out[k] = s
    return out


def run(backend, seq, path):
    s = VersionedKvStore(path, backend)
    try:
        commits = {s.current_commit(): {}}       # commit id -> contents
        heads = {"main": s.current_commit()}
        cur = "main"
        staged = {}
        view = {}

        def commit():
            nonlocal staged
            c = s.commit(f"c{len(commits)}")
            view = dict(commits[heads[cur]])
            for k, v in staged.items():
                if v is None:
                    view.pop(k, None)
                else:
                    view[k] = v
            commits[c] = view
            heads[cur] = c
            staged = {}

        for op in seq:
            if op[0] == "put":
                s.insert(op[1], op[2])
                staged[op[1]] = op[2]
            elif op[0] == "del":
                existed = s.delete(op[1])
                view = {**commits[heads[cur]], **staged}
                assert existed == (view.get(op[1]) is not None)
                if existed:
                    staged[op[1]] = None
            elif op[0] == "commit":
                commit()
            elif op[0] == "checkout":
                if op[1] not in heads:
                    s.create_branch(op[1])
                    heads[op[1]] = heads[cur]
                else:
                    s.checkout(op[1], staged="carry")
                cur = op[1]
            elif op[0] == "merge" and op[1] in heads and op[1] != cur:
                if staged:
                    commit()
                dest, src = heads[cur], heads[op[1]]
                base = s.merge_base(dest, src)
                take_source = op[2] == "source"
                res = ConflictResolution.TakeSource if take_source else None
                new = s.merge(op[1], res)
                if base == src:
                    assert new == dest
                elif base == dest:
                    assert new == src
                else:
                    commits[new] = model_merge(commits[base], commits[dest],
                                               commits[src], take_source)
                heads[cur] = new
            view = {**commits[heads[cur]], **staged}
            view = {k: v for k, v in view.items() if v is not None}
            assert s.current_branch() == cur
            assert dict(s.get_keys_at_ref("HEAD")) == commits[heads[cur]]
        for b, c in heads.items():
            assert dict(s.get_keys_at_ref(b)) == commits[c]
        assert {k: s.get(k) for k in s.list_keys()} == view
    finally:
        s.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_model_in_memory(seq):
    run(StorageBackend.InMemory, seq, "/unused")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_model_git(seq):
    with tempfile.TemporaryDirectory() as d:
        run(StorageBackend.Git, seq, d + "/ds")
