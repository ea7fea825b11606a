"""The public methods beyond the seed API (open/probe, resolve_ref, get_at, tree_at,
commit_info, log, revert, fsck, gc, staged, insert_batch, branch/create_branch with a
start, list_refs, iter_items) on every backend, against a dict model per commit and, on
Git, against git itself."""

import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest

from prollytree import verify_proof
from prollytree.errors import ReadOnlyError, UnknownRefError
from prollytree.versioning import (MergeConflict, RevertConflictError, StorageBackend,
                                   VersionedKvStore)
from prollytree.versioning import staging as staging_module

from .conftest import git

PERSISTENT = [StorageBackend.Git, StorageBackend.File, StorageBackend.RocksDB]


def build_history(s):
    """A small history with a merge; returns {commit id: contents} and the ids."""
    model = {s.current_commit(): {}}
    cur = {}

    def commit(msg, **changes):
        for k, v in changes.items():
            k = k.encode()
            if v is None:
                s.delete(k)
                cur.pop(k, None)
            else:
                s.insert(k, v)
                cur[k] = v
        c = s.commit(msg)
        model[c] = dict(cur)
        return c

    c1 = commit("one", a=b"1", b=b"1", c=b"1")
    c2 = commit("two", a=b"2", b=None, d=b"new")
    s.create_branch("feat")
    f1 = commit("feat one", e=b"feat")
    s.checkout("main")
    cur.clear()
    cur.update(model[c2])
    c3 = commit("three", c=b"3")
    m = s.merge("feat")
    cur.update({b"e": b"feat"})
    model[m] = dict(cur)
    return model, {"c1": c1, "c2": c2, "f1": f1, "c3": c3, "m": m}


# -- open / probe ---------------------------------------------------------------------------


def test_open_existing_only_and_probe(tmp_path, backend):
    missing = tmp_path / "nothing"
    assert VersionedKvStore.probe(str(missing)) is None
    with pytest.raises(ValueError, match="not a dataset"):
        VersionedKvStore.open(str(missing), backend)
    assert not missing.exists()                       # nothing was created
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"not a dataset.*{empty.name}"):
        VersionedKvStore.open(str(empty))
    assert list(empty.iterdir()) == []
    with pytest.raises(TypeError):
        VersionedKvStore.probe(1)
    with pytest.raises(TypeError):
        VersionedKvStore.open(None)
    path = tmp_path / "ds"
    s = VersionedKvStore(str(path), backend)          # the constructor creates
    s.insert(b"k", b"v")
    c = s.commit("c")
    s.insert(b"staged", b"1")
    s.close()
    if backend is StorageBackend.InMemory:
        assert VersionedKvStore.probe(str(path)) is None
        with pytest.raises(ValueError, match="not a dataset"):
            VersionedKvStore.open(str(path), backend)
        return
    assert VersionedKvStore.probe(str(path)) is backend
    for kind in (backend, None):                      # None: whichever backend it is
        s = VersionedKvStore.open(str(path), kind)
        assert s.storage_backend() is backend
        assert s.current_commit() == c and s.get(b"staged") == b"1"
        s.close()
    other = StorageBackend.File if backend is not StorageBackend.File else StorageBackend.RocksDB
    with pytest.raises(ValueError, match=f"holds a {backend.name} dataset"):
        VersionedKvStore.open(str(path), other)


def test_probe_git_subdirectories_and_clone(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "src").mkdir()
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"k", b"v")
    s.commit("c")
    s.close()
    assert VersionedKvStore.probe(str(repo / "data")) is StorageBackend.Git
    assert VersionedKvStore.probe(str(repo)) is None
    assert VersionedKvStore.probe(str(repo / "src")) is None
    assert VersionedKvStore.probe(str(repo / ".git")) is None
    with pytest.raises(ValueError, match="not a dataset"):
        VersionedKvStore.open(str(repo / "src"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert not (clone / ".git" / "prollytree").exists()
    assert VersionedKvStore.probe(str(clone / "data")) is StorageBackend.Git  # from HEAD
    s = VersionedKvStore.open(str(clone / "data"))
    assert s.get(b"k") == b"v"
    s.close()


# -- refs, values and commits at a ref ---------------------------------------------------------


def test_refs_values_and_commit_info_against_model(make_store, backend, tmp_path):
    s = make_store()
    model, ids = build_history(s)
    keys = sorted({k for contents in model.values() for k in contents} | {b"zz"})
    for cid, contents in model.items():
        assert s.resolve_ref(cid) == cid
        assert s.resolve_ref(cid[:10]) == cid
        for k in keys:
            assert s.get_at(cid, k) == contents.get(k)
        info = s.commit_info(cid)
        assert info["id"] == cid
        assert dict(s.iter_items_at(cid)) == contents
    assert s.resolve_ref("HEAD") == s.resolve_ref("main") == ids["m"]
    assert s.resolve_ref("main^2") == ids["f1"]
    assert s.resolve_ref("main~1") == ids["c3"]
    assert s.resolve_ref("main^2~1") == ids["c2"]
    assert s.resolve_ref("refs/heads/feat") == ids["f1"]
    assert s.get_at("feat", b"e") == b"feat" and s.get_at("main~1", b"e") is None
    for bad in ("nope", "main~99", "main^3", "0" * 40, ids["m"][:39] + "x"):
        with pytest.raises(UnknownRefError):
            s.resolve_ref(bad)
    with pytest.raises(TypeError):
        s.resolve_ref(1)
    with pytest.raises(TypeError):
        s.get_at("HEAD", "k")
    info = s.commit_info()
    assert info["parents"] == [ids["c3"], ids["f1"]]
    assert info["message"] == "Merge branch 'feat' into main"
    assert info["root"] == s.root_hash() and isinstance(info["tz_offset"], int)
    assert s.commit_info(ids["c1"])["parents"] == [s.resolve_ref("main~4")]
    # log of any ref, with parents, limited
    log = s.log()
    assert log[0]["id"] == ids["m"]
    assert {e["id"] for e in log[1:3]} == {ids["c3"], ids["f1"]}   # same generation
    assert {e["id"] for e in log} == set(model)
    by_id = {e["id"]: e for e in log}
    for cid in model:
        assert by_id[cid] == {k: v for k, v in s.commit_info(cid).items() if k != "root"}
    assert [e["id"] for e in s.log("feat")] == [e["id"] for e in log
                                                if e["id"] in
                                                {ids["f1"], ids["c2"], ids["c1"],
                                                 s.resolve_ref("main~4")}]
    assert s.log("main", limit=2) == log[:2]
    assert s.log(limit=0) == []
    with pytest.raises(ValueError):
        s.log(limit=-1)
    refs = s.list_refs()
    assert refs == {"refs/heads/feat": ids["f1"], "refs/heads/main": ids["m"]}
    s.tag("v1", "main~1")
    assert s.list_refs()["refs/tags/v1"] == ids["c3"]
    assert list(s.list_refs()) == sorted(s.list_refs())
    if backend is StorageBackend.Git:
        repo = tmp_path / "ds"
        for expr in ("main~1", "main^2", "main^2~1", "v1"):
            assert s.resolve_ref(expr) == git(repo, "rev-parse", expr + "^{commit}").stdout.strip()
        for cid in model:
            line = git(repo, "rev-list", "--parents", "-n", "1", cid).stdout.split()
            assert s.commit_info(cid)["parents"] == line[1:]
        assert {e["id"] for e in log} == set(git(repo, "rev-list", "main").stdout.split())


def test_tree_at_is_a_read_only_snapshot(make_store):
    s = make_store()
    model, ids = build_history(s)
    for cid, contents in model.items():
        t = s.tree_at(cid)
        assert dict(t.items()) == contents
        assert t.size() == len(contents)
        assert t.get_root_hash() == s.commit_info(cid)["root"]
        assert t.stats()["total_key_value_pairs"] == len(contents)
    t = s.tree_at("feat")
    assert t.find(b"e") == b"feat" and t.find(b"b") is None
    p = t.generate_proof(b"e")
    assert verify_proof(t.get_root_hash(), p, b"e", b"feat")
    with pytest.raises(ReadOnlyError):
        t.insert(b"x", b"y")
    with pytest.raises(ReadOnlyError):
        t.delete(b"e")
    t.close()                                   # closing the snapshot keeps the store open
    assert s.get(b"e") == b"feat"
    assert dict(s.tree_at().items()) == model[ids["m"]]
    with pytest.raises(UnknownRefError):
        s.tree_at("nope")


# -- revert ------------------------------------------------------------------------------------


def test_revert_against_model(make_store):
    s = make_store()
    model, ids = build_history(s)
    head = model[ids["m"]]
    # revert "two" (a=1->2, b deleted, d added) on top of the merge
    r = s.revert(ids["c2"])
    expected = dict(head)
    expected.update({b"a": b"1", b"b": b"1"})
    del expected[b"d"]
    assert dict(s.iter_items_at("HEAD")) == expected
    info = s.commit_info(r)
    assert info["parents"] == [ids["m"]]
    assert info["message"] == f'Revert "two"\n\nThis reverts commit {ids["c2"]}.'
    # already undone: nothing is committed
    assert s.revert(ids["c2"]) is None and s.current_commit() == r
    # a conflict: a key changed again since; nothing changes
    s.insert(b"c", b"changed again")
    c4 = s.commit("c again")
    with pytest.raises(RevertConflictError) as e:
        s.revert(ids["c3"])
    assert e.value.conflicts == [MergeConflict(b"c", b"3", b"1", b"changed again")]
    assert isinstance(e.value, ValueError) and s.current_commit() == c4
    # revert of a merge commit: its changes against the first parent (e=feat added)
    r2 = s.revert(ids["m"], message="undo the merge")
    assert s.get(b"e") is None and s.commit_info(r2)["message"] == "undo the merge"
    # revert of a revert restores
    s.revert(r2)
    assert s.get(b"e") == b"feat"
    # refusals: staged changes, detached HEAD, bad types; none changes anything
    s.insert(b"staged", b"1")
    with pytest.raises(ValueError, match="staged"):
        s.revert("HEAD")
    s.delete(b"staged")
    tip = s.current_commit()
    with pytest.raises(TypeError):
        s.revert("HEAD", message=b"x")
    with pytest.raises(UnknownRefError):
        s.revert("nope")
    s.checkout("main~1")
    with pytest.raises(ReadOnlyError):
        s.revert("main")
    s.checkout("main", staged="discard")
    assert s.current_commit() == tip


def test_revert_root_commit(make_store):
    s = make_store()
    first = s.log()[-1]["id"]                   # "Initial commit": the empty dataset
    assert s.revert(first) is None
    s.insert(b"a", b"1")
    c = s.commit("a")
    s.revert(c)
    assert s.list_keys() == []


# -- fsck / gc ------------------------------------------------------------------------------------


def test_fsck_and_gc_against_model(make_store, backend):
    s = make_store()
    model, ids = build_history(s)
    s.create_branch("doomed")
    for i in range(300):
        s.insert(b"doomed%04d" % i, b"x" * 40)
    s.commit("doomed")
    s.checkout("main")
    report = s.fsck()
    assert report["ok"] and report["problems"] == []
    assert report["refs"] == 3 and report["commits"] == len(model) + 1
    assert report["nodes"] >= report["trees"] >= 2 and report["bytes"] > 0
    seen = []
    s.fsck(seen.append)
    assert sum(seen) == report["nodes"]
    s.delete_branch("doomed", force=True)
    dry = s.gc(dry_run=True)
    assert dry["dry_run"] and dry["commits"] == len(model) and dry["removed"] == 0
    if backend is StorageBackend.Git:
        assert dry["managed_by_git"] and dry["unreachable_nodes"] >= 1
        assert s.gc()["removed"] == 0
    else:
        assert not dry["managed_by_git"]
        assert dry["unreachable_nodes"] >= 2 and dry["unreachable_commits"] == 1
        assert s.gc(dry_run=True) == dry                      # a dry run removes nothing
        done = s.gc()
        assert done["removed"] == dry["unreachable_nodes"]
        assert done["removed_commits"] == 1
        again = s.gc()
        assert again["removed"] == again["removed_commits"] == 0
    for cid, contents in model.items():                 # everything reachable stays
        assert dict(s.iter_items_at(cid)) == contents
    assert s.fsck()["ok"]


def test_fsck_reports_missing_and_damaged_nodes():
    s = VersionedKvStore("unused", StorageBackend.InMemory)
    for i in range(500):
        s.insert(b"k%04d" % i, b"v%d" % i)
    old = s.commit("old")
    s.create_branch("side")
    s.insert(b"k0000", b"changed")
    s.commit("new")
    old_root = s.commit_info(old)["root"]
    store = s.backend.store
    leaf = s.tree_at(old).node_cache.load(old_root).vals[-1]    # a leaf only "old" has?
    # pick a leaf of the old tree that the new tree does not share
    new_leaves = set(s.tree_at("side").node_cache.load(s.root_hash()).vals)
    only_old = [a for a in s.tree_at(old).node_cache.load(old_root).vals
                if a not in new_leaves]
    assert only_old
    leaf = only_old[0]
    store.remove([leaf])
    report = s.fsck()
    assert not report["ok"]
    (p,) = report["problems"]
    assert p["kind"] == "missing-node" and p["object"] == leaf.hex()
    assert p["commit"] == old and p["reached_from"] == "branch main"
    store.put(leaf, b"\x93\x00\x90\x90garbage")          # wrong bytes under the address
    (p,) = s.fsck()["problems"]
    assert p["kind"] == "damaged-node" and "hash" in p["detail"]
    s.close()


# -- staging: staged(), insert_batch() -----------------------------------------------------


def test_staged_and_insert_batch_against_model(make_store, backend, tmp_path, monkeypatch):
    s = make_store()
    s.insert_batch([(b"a", b"1"), (b"b", b"1"), (b"c", b"1")])
    s.commit("base")
    committed = {b"a": b"1", b"b": b"1", b"c": b"1"}
    staged = {}
    rng = random.Random(7)
    writes = []
    for i in range(2000):
        k = b"k%04d" % rng.randrange(600)
        v = b"v%d" % i
        writes.append((k, v))
        staged[k] = v
    calls = []
    real_write = os.write
    monkeypatch.setattr(staging_module.os, "write",
                        lambda fd, data: calls.append(len(data)) or real_write(fd, data))
    assert s.insert_batch(writes) == 2000               # later pairs for a key win
    monkeypatch.undo()
    if backend is not StorageBackend.InMemory:
        assert len(calls) == 1                          # one append to the journal
    s.insert_batch({b"a": b"1"})                         # a mapping; a no-op write
    staged[b"a"] = b"1"
    s.insert_batch(iter([[b"list", b"pair"]]))           # any (key, value) pairs
    staged[b"list"] = b"pair"
    assert s.delete(b"b")
    staged[b"b"] = None
    assert s.staged() == sorted(staged.items())
    assert (b"a", "modified") not in s.status()          # status leaves no-ops out
    view = dict(committed)
    for k, v in staged.items():
        if v is None:
            view.pop(k, None)
        else:
            view[k] = v
    assert dict(s.iter_items()) == view
    # bad input stages nothing
    before = s.staged()
    for bad in ([(b"x", b"1"), ("y", b"1")], [(b"x", b"1"), (b"y", 2)], [(b"x",)],
                b"xy", [b"xy"], [(b"x", b"1", b"2")], 5):
        with pytest.raises(TypeError):
            s.insert_batch(bad)
        assert s.staged() == before
    if backend is not StorageBackend.InMemory:          # they are in the journal
        s.close()
        s = make_store("ds")
        assert s.staged() == before
    s.commit("all")
    assert s.staged() == [] and dict(s.iter_items_at("HEAD")) == view
    s.checkout("HEAD~1")
    with pytest.raises(ReadOnlyError):
        s.insert_batch([(b"x", b"1")])
    assert s.staged() == []
    s.close()


@pytest.mark.parametrize("backend", [StorageBackend.Git, StorageBackend.File],
                         ids=lambda b: b.name)
def test_insert_batch_survives_kill_9(tmp_path, backend):
    path = str(tmp_path / "ds")
    code = textwrap.dedent("""
        import os, signal, sys
        from prollytree.versioning import VersionedKvStore, StorageBackend
        s = VersionedKvStore(sys.argv[1], StorageBackend[sys.argv[2]])
        s.insert_batch([(b"k%05d" % i, b"v%d" % i) for i in range(5000)])
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    r = subprocess.run([sys.executable, "-c", code, path, backend.name], timeout=120)
    assert r.returncode == -signal.SIGKILL
    s = VersionedKvStore(path, backend)
    assert len(s.staged()) == 5000 and s.get(b"k04999") == b"v4999"
    s.close()


def test_iter_items_current_view_ranges(make_store):
    s = make_store()
    rng = random.Random(3)
    committed = {b"%03d" % i: b"c%d" % i for i in range(0, 300, 2)}
    s.insert_batch(committed.items())
    s.commit("base")
    view = dict(committed)
    for i in range(150):
        k = b"%03d" % rng.randrange(320)
        if rng.random() < 0.3:
            if s.delete(k):
                del view[k]
        else:
            s.insert(k, b"s%d" % i)
            view[k] = b"s%d" % i
    keys = sorted(view)
    assert list(s.iter_items()) == [(k, view[k]) for k in keys]
    for _ in range(30):
        a, b = sorted(rng.sample(range(330), 2))
        lo, hi = b"%03d" % a, b"%03d" % b
        assert list(s.iter_items(lo, hi)) == [(k, view[k]) for k in keys if lo <= k < hi]
        assert list(s.iter_items(lo)) == [(k, view[k]) for k in keys if lo <= k]
        assert list(s.iter_items(end=hi)) == [(k, view[k]) for k in keys if k < hi]
    assert s.list_keys() == keys
    with pytest.raises(TypeError):
        s.iter_items("a")


# -- branches with a start point ------------------------------------------------------------------


def test_branch_and_create_branch_with_start(make_store):
    s = make_store()
    model, ids = build_history(s)
    assert s.branch("old", "main~2") == ids["c2"]
    assert s.current_branch() == "main" and s.list_refs()["refs/heads/old"] == ids["c2"]
    assert s.branch("here") == ids["m"]
    with pytest.raises(ValueError, match="already exists"):
        s.branch("old")
    with pytest.raises(UnknownRefError):
        s.branch("never", "nope")
    with pytest.raises(ValueError):
        s.branch("bad name")
    assert "never" not in s.list_branches()
    # create_branch at a start: switches in one step
    assert s.create_branch("fix", ids["c1"]) == ids["c1"]
    assert s.current_branch() == "fix" and s.current_commit() == ids["c1"]
    assert dict(s.iter_items()) == model[ids["c1"]]
    s.insert(b"fix", b"1")
    # staged changes and another start: refused (nothing created) unless told
    with pytest.raises(ValueError, match="staged"):
        s.create_branch("f2", "main")
    assert "f2" not in s.list_branches() and s.current_branch() == "fix"
    s.create_branch("f2", "main", staged="carry")
    assert s.current_branch() == "f2" and s.current_commit() == ids["m"]
    assert s.staged() == [(b"fix", b"1")]
    s.create_branch("f3", "feat", staged="discard")
    assert s.staged() == [] and s.current_commit() == ids["f1"]
    s.insert(b"k", b"v")
    s.create_branch("f4")                       # same base: staged changes stay
    assert s.staged() == [(b"k", b"v")] and s.current_branch() == "f4"
    with pytest.raises(ValueError, match="already exists"):
        s.create_branch("main")
    assert s.current_branch() == "f4"
    with pytest.raises(ValueError):
        s.create_branch("f5", staged="keep")
    with pytest.raises(TypeError):
        s.create_branch("f5", 3)
    assert s.delete_branch("old") == ids["c2"]
