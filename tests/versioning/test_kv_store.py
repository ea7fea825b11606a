"""The VersionedKvStore API on every backend, checked against a dict model."""

import re

import pytest

from prollytree import verify_proof
from prollytree.errors import MergeConflictError, UnknownRefError
from prollytree.versioning import (ConflictResolution, KvDiff, MergeConflict, StorageBackend,
                                   Unresolved, VersionedKvStore)

HEX40 = re.compile(r"[0-9a-f]{40}\Z")


def contents(s):
    return {k: s.get(k) for k in s.list_keys()}


def test_staging_and_commit(make_store):
    s = make_store()
    assert s.insert(b"a", b"1") is None
    assert s.status() == [(b"a", "added")]
    assert s.get(b"a") == b"1"
    c1 = s.commit("first")
    assert HEX40.match(c1) and s.current_commit() == c1
    assert s.status() == []
    assert s.update(b"a", b"2") is True
    assert s.update(b"zz", b"2") is False
    assert s.delete(b"nope") is False
    s.insert(b"b", b"x")
    assert s.status() == [(b"a", "modified"), (b"b", "added")]
    assert s.delete(b"b") is True       # staged insert, then staged delete: no change
    assert s.status() == [(b"a", "modified")]
    c2 = s.commit("second")
    assert s.delete(b"a") is True
    assert s.status() == [(b"a", "deleted")]
    c3 = s.commit("third")
    assert s.get(b"a") is None and s.list_keys() == []
    log = s.log()
    assert [e["id"] for e in log[:3]] == [c3, c2, c1]
    assert [e["message"] for e in log[:3]] == ["third", "second", "first"]
    for e in log:
        assert set(e) == {"id", "parents", "author", "committer", "message", "timestamp",
                          "tz_offset"}
        assert isinstance(e["timestamp"], int) and isinstance(e["tz_offset"], int)
    assert log[0]["parents"] == [c2] and log[1]["parents"] == [c1]
    assert s.get_commit_history() == log
    assert s.storage_backend() in list(StorageBackend)


def test_types_rejected(make_store):
    s = make_store()
    with pytest.raises(TypeError):
        s.insert("a", b"1")
    with pytest.raises(TypeError):
        s.insert(b"a", "1")
    with pytest.raises(TypeError):
        s.get(1)
    with pytest.raises(TypeError):
        s.commit(b"msg")
    assert s.status() == []


def test_identity_in_log(make_store, backend):
    s = make_store()
    s.insert(b"k", b"v")
    s.commit("c")
    e = s.log()[0]
    assert e["author"] == "Test Author <author@example.com>"
    assert e["committer"] == "Test Committer <committer@example.com>"


def test_refs_everywhere(make_store):
    s = make_store()
    ids = []
    for i in range(4):
        s.insert(b"k", b"%d" % i)
        ids.append(s.commit(f"c{i}"))
    s.tag("v1", ids[1])
    for ref, want in [("HEAD", ids[3]), ("HEAD~1", ids[2]), ("HEAD^", ids[2]),
                      ("HEAD~3", ids[0]), ("HEAD~1^", ids[1]), ("main", ids[3]),
                      ("main~2", ids[1]), (ids[2], ids[2]), (ids[2][:7], ids[2]),
                      ("v1", ids[1]), ("refs/tags/v1", ids[1]), ("refs/heads/main", ids[3])]:
        assert dict(s.get_keys_at_ref(ref)) == {b"k": s.get_keys_at_ref(want)[0][1]}, ref
    for bad in ["nope", "HEAD~99", "deadbeefdeadbeef", "main~x", ""]:
        with pytest.raises(ValueError) as e:
            s.diff(bad, "HEAD")
        assert isinstance(e.value, UnknownRefError)
    with pytest.raises(ValueError, match="nope"):
        s.checkout("nope")
    with pytest.raises(ValueError, match="nope"):
        s.merge("nope")


def test_branches_and_checkout(make_store):
    s = make_store()
    s.insert(b"a", b"1")
    base = s.commit("base")
    assert s.current_branch() == "main" and s.list_branches() == ["main"]
    s.branch("side")
    assert s.current_branch() == "main" and s.list_branches() == ["main", "side"]
    with pytest.raises(ValueError, match="side"):
        s.branch("side")
    with pytest.raises(ValueError):
        s.branch("bad name")
    s.create_branch("feat")
    assert s.current_branch() == "feat"
    s.insert(b"b", b"2")
    f1 = s.commit("feat work")
    s.checkout("main")
    assert s.get(b"b") is None and s.current_commit() == base
    s.checkout("feat")
    assert s.get(b"b") == b"2" and s.current_commit() == f1
    # detached checkout of a commit: readable, read-only
    s.checkout(base[:10])
    assert s.current_branch() is None and s.current_commit() == base
    assert s.get(b"a") == b"1" and s.get(b"b") is None
    with pytest.raises(ValueError, match="detached"):
        s.insert(b"x", b"y")
    with pytest.raises(ValueError, match="detached"):
        s.commit("no")
    s.create_branch("from-base")
    s.insert(b"c", b"3")
    s.commit("on from-base")
    assert sorted(s.list_branches()) == ["feat", "from-base", "main", "side"]


def test_checkout_with_staged_changes(make_store):
    s = make_store()
    s.insert(b"a", b"1")
    s.commit("c")
    s.branch("other")
    s.insert(b"a", b"1")  # staged no-op still counts as staged
    s.checkout("other")   # same commit: allowed
    s.checkout("main")
    s.insert(b"x", b"1")
    s.checkout("main")
    s.checkout("other")  # same commit id: fine
    s.checkout("main")
    s.commit("x")
    s.insert(b"y", b"2")
    with pytest.raises(ValueError, match="staged"):
        s.checkout("other")
    assert s.current_branch() == "main" and s.get(b"y") == b"2"
    s.checkout("other", staged="carry")
    assert s.current_branch() == "other" and s.get(b"y") == b"2" and s.get(b"x") is None
    s.checkout("main", staged="discard")
    assert s.get(b"y") is None and s.status() == []


def test_listing_not_truncated(make_store):
    s = make_store()
    model = {b"k%05d" % i: b"v%d" % i for i in range(3000)}
    for k, v in model.items():
        s.insert(k, v)
    s.commit("bulk")
    s.insert(b"staged", b"1")
    assert s.list_keys() == sorted(list(model) + [b"staged"])
    assert s.get_keys_at_ref("HEAD") == sorted(model.items())


def test_diff(make_store):
    s = make_store()
    for i in range(500):
        s.insert(b"k%04d" % i, b"v")
    a = s.commit("a")
    s.update(b"k0010", b"changed")
    s.delete(b"k0020")
    s.insert(b"new", b"n")
    b = s.commit("b")
    d = s.diff(a, b)
    assert [x.key for x in d] == [b"k0010", b"k0020", b"new"]
    assert [x.operation for x in d] == ["Modified", "Removed", "Added"]
    assert (d[0].old_value, d[0].new_value) == (b"v", b"changed")
    assert (d[1].old_value, d[1].new_value) == (b"v", None)
    assert (d[2].old_value, d[2].new_value) == (None, b"n")
    assert all(isinstance(x, KvDiff) for x in d)
    assert "Modified" in repr(d[0]) and "k0010" in repr(d[0])
    assert s.diff(b, a)[1].operation == "Added"
    assert s.diff("HEAD", "HEAD") == []


def _two_sides(s):
    s.insert(b"a", b"base")
    s.insert(b"b", b"base")
    s.insert(b"c", b"base")
    s.insert(b"d", b"base")
    base = s.commit("base")
    s.create_branch("feat")
    s.update(b"a", b"feat")      # conflict: both modify
    s.delete(b"b")               # conflict: delete vs modify
    s.insert(b"f", b"feat-only")
    s.commit("feat")
    s.checkout("main")
    s.update(b"a", b"main")
    s.update(b"b", b"main")
    s.update(b"d", b"main-only")
    s.commit("main")
    return base


def test_merge_conflicts_and_resolutions(make_store):
    s = make_store()
    _two_sides(s)
    main_tip = s.current_commit()
    ok, conflicts = s.try_merge("feat")
    assert ok is False
    assert conflicts == [MergeConflict(b"a", b"base", b"feat", b"main"),
                         MergeConflict(b"b", b"base", None, b"main")]
    assert s.current_commit() == main_tip
    # a callable that leaves a conflict unresolved: error listing it, nothing changes
    with pytest.raises(MergeConflictError) as e:
        s.merge("feat", lambda c: Unresolved if c.key == b"a" else c.source_value)
    assert [c.key for c in e.value.conflicts] == [b"a"] and "b'a'" in str(e.value)
    assert s.current_commit() == main_tip

    def boom(c):
        raise RuntimeError("no")
    with pytest.raises(ValueError):
        s.merge("feat", boom)
    assert s.current_commit() == main_tip
    with pytest.raises(TypeError):
        s.merge("feat", "TakeSource")
    # default (None) = IgnoreAll: destination wins conflicts, other changes merge
    m = s.merge("feat")
    assert contents(s) == {b"a": b"main", b"b": b"main", b"c": b"base",
                           b"d": b"main-only", b"f": b"feat-only"}
    log = s.log()
    assert log[0]["id"] == m and log[0]["message"] == "Merge branch 'feat' into main"
    assert s.backend.read_commit(m).parents == (main_tip, s.backend.branch_commit("feat"))
    # already merged: no-op
    assert s.merge("feat") == m
    assert s.try_merge("feat") == (True, [])


@pytest.mark.parametrize("res,expect_a,expect_b", [
    (ConflictResolution.TakeSource, b"feat", None),
    (ConflictResolution.TakeDestination, b"main", b"main"),
    (ConflictResolution.IgnoreAll, b"main", b"main"),
    (lambda c: (c.source_value or b"") + (c.destination_value or b""), b"featmain", b"main"),
    (lambda c: None, None, None),
])
def test_merge_resolution_strategies(make_store, backend, res, expect_a, expect_b):
    if backend is not StorageBackend.InMemory:
        pytest.skip("strategy logic is backend independent")
    s = make_store()
    _two_sides(s)
    s.merge("feat", res)
    assert s.get(b"a") == expect_a and s.get(b"b") == expect_b
    assert s.get(b"f") == b"feat-only" and s.get(b"d") == b"main-only"


def test_fast_forward_and_no_false_conflicts(make_store):
    s = make_store()
    s.insert(b"k", b"0")
    s.commit("base")
    s.create_branch("feat")
    s.insert(b"k", b"1")
    f = s.commit("feat 1")
    s.checkout("main")
    assert s.merge("feat") == f               # fast-forward: no new commit
    assert s.current_commit() == f and s.log()[0]["message"] == "feat 1"
    # diverge, merge with a conflict resolved by source, then more work on both sides
    s.checkout("feat")
    s.insert(b"k", b"feat")
    s.insert(b"x", b"1")
    s.commit("feat 2")
    s.checkout("main")
    s.insert(b"k", b"main")
    s.commit("main 2")
    s.merge("feat", ConflictResolution.TakeSource)
    assert s.get(b"k") == b"feat"
    s.checkout("feat")
    s.insert(b"y", b"1")
    s.commit("feat 3")
    s.checkout("main")
    s.insert(b"z", b"1")
    s.commit("main 3")
    ok, conflicts = s.try_merge("feat")      # k was settled by the first merge
    assert ok and conflicts == []
    assert contents(s) == {b"k": b"feat", b"x": b"1", b"y": b"1", b"z": b"1"}


def test_merge_refuses_with_staged_changes(make_store):
    s = make_store()
    s.insert(b"a", b"1")
    s.commit("c")
    s.create_branch("f")
    s.insert(b"b", b"1")
    s.commit("f")
    s.checkout("main")
    s.insert(b"s", b"1")
    with pytest.raises(ValueError, match="staged"):
        s.merge("f")
    assert s.get(b"b") is None


def test_commits_for_key(make_store):
    s = make_store()
    s.insert(b"k", b"1")
    c1 = s.commit("set k")
    s.insert(b"other", b"x")
    s.commit("other")
    s.insert(b"k", b"2")
    c3 = s.commit("change k")
    s.insert(b"k", b"2")
    s.commit("same value")
    s.delete(b"k")
    c5 = s.commit("delete k")
    assert [c["id"] for c in s.get_commits_for_key(b"k")] == [c5, c3, c1]
    assert s.get_commits_for_key(b"never") == []


def test_proofs(make_store):
    s = make_store()
    for i in range(300):
        s.insert(b"k%03d" % i, b"v%d" % i)
    s.commit("c")
    p = s.generate_proof(b"k007")
    assert s.verify_proof(p, b"k007", b"v7")
    assert not s.verify_proof(p, b"k007", b"v8")
    assert verify_proof(s.root_hash(), p, b"k007", b"v7")
    s.insert(b"k007", b"new")
    s.commit("c2")
    assert not s.verify_proof(p, b"k007", b"v7")   # proofs are at the current commit


def test_reopen(tmp_path, backend):
    if backend is StorageBackend.InMemory:
        pytest.skip("volatile")
    path = str(tmp_path / "ds")
    s = VersionedKvStore(path, backend)
    s.insert(b"a", b"1")
    c = s.commit("c")
    s.create_branch("f")
    s.insert(b"staged", b"yes")
    s.close()
    s = VersionedKvStore.open(path, backend)
    assert s.current_branch() == "f" and s.current_commit() == c
    assert s.status() == [(b"staged", "added")] and s.get(b"a") == b"1"
    assert s.list_branches() == ["f", "main"]
    s.close()
