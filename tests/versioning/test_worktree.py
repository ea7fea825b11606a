"""WorktreeManager and WorktreeVersionedKvStore against the git binary: real worktrees,
independent working copies over shared objects, locks on disk, three-way merges."""

import os
import shutil
import subprocess

import pytest

from prollytree import (MergeConflictError, UnknownRefError, VersionedKvStore,
                        WorktreeLockedError, WorktreeManager, WorktreeVersionedKvStore)
from prollytree.versioning import ConflictResolution

from .conftest import git


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "README").write_text("hello\n")
    git(r, "add", "README")
    git(r, "commit", "-q", "-m", "init")
    s = VersionedKvStore(str(r / "data"))
    s.insert(b"base", b"0")
    s.commit("base data")
    s.close()
    return r


def porcelain(repo):
    """{real path: {"branch", "locked"}} from `git worktree list --porcelain`."""
    out, cur = {}, None
    for line in git(repo, "worktree", "list", "--porcelain").stdout.splitlines():
        if line.startswith("worktree "):
            cur = os.path.realpath(line[9:])
            out[cur] = {"branch": None, "locked": None}
        elif line.startswith("branch "):
            out[cur]["branch"] = line[len("branch refs/heads/"):]
        elif line.startswith("locked"):
            out[cur]["locked"] = line[7:]
    return out


def test_linked_worktree_store_shares_objects(repo, tmp_path):
    git(repo, "worktree", "add", "-q", "-b", "feat", str(tmp_path / "wt"))
    s = VersionedKvStore(str(tmp_path / "wt" / "data"))
    assert s.current_branch() == "feat" and s.get(b"base") == b"0"
    s.insert(b"k", b"v")
    cid = s.commit("in the worktree")
    s.close()
    # the objects went to the shared object database, not .git/worktrees/wt/objects
    assert not os.path.exists(repo / ".git" / "worktrees" / "wt" / "objects")
    assert git(repo, "fsck", "--strict").returncode == 0
    assert git(repo, "rev-parse", "feat").stdout.strip() == cid
    main = VersionedKvStore(str(repo / "data"))
    assert main.current_branch() == "main" and main.get(b"k") is None
    assert main.get_at("feat", b"k") == b"v"
    main.close()


def test_add_list_and_other_managers(repo, tmp_path):
    m = WorktreeManager(str(repo))
    [main] = m.list_worktrees()
    assert main["id"] == "main" and main["branch"] == "main" and not main["is_linked"]
    info = m.add_worktree(str(tmp_path / "agent1"), "agent1", True)
    assert info == {"id": "agent1", "path": os.path.realpath(tmp_path / "agent1"),
                    "branch": "agent1", "is_linked": True}
    # a real worktree: git lists it, status and log work and are clean
    assert porcelain(repo)[info["path"]]["branch"] == "agent1"
    assert git(info["path"], "status", "--porcelain").stdout == ""
    assert git(info["path"], "log", "--format=%s", "-1").stdout.strip() == "base data"
    assert (tmp_path / "agent1" / "README").read_text() == "hello\n"
    assert not (tmp_path / "agent1" / "data" / ".prolly").exists()   # not written out
    # made by hand with git: seen, with Git's id
    git(repo, "worktree", "add", "-q", "-b", "manual", str(tmp_path / "by-hand"))
    # another manager (another process would read the same files) sees everything
    other = WorktreeManager(str(tmp_path / "agent1"))
    ids = {e["id"]: e["branch"] for e in other.list_worktrees()}
    assert ids == {"main": "main", "agent1": "agent1", "by-hand": "manual"}
    assert other.repo_path == os.path.realpath(repo)
    # Git's rules for branches
    with pytest.raises(ValueError, match="already exists"):
        m.add_worktree(str(tmp_path / "x"), "agent1", True)
    with pytest.raises(ValueError, match="agent1"):      # checked out in agent1 already
        m.add_worktree(str(tmp_path / "x"), "agent1", False)
    with pytest.raises(UnknownRefError):
        m.add_worktree(str(tmp_path / "x"), "nope", False)
    with pytest.raises(ValueError):
        m.add_worktree(str(tmp_path / "main"), "b", True)
    with pytest.raises(ValueError, match="invalid branch"):
        m.add_worktree(str(tmp_path / "x"), "bad..name", True)
    with pytest.raises(TypeError):
        m.add_worktree(str(tmp_path / "x"), "ok", "yes")
    assert not (tmp_path / "x").exists()
    assert sorted(porcelain(repo)) == sorted(e["path"] for e in m.list_worktrees())


def test_manager_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not a Git repository"):
        WorktreeManager(str(tmp_path))
    with pytest.raises(TypeError):
        WorktreeManager(5)
    git(tmp_path, "init", "-q")
    with pytest.raises(ValueError, match="dataset"):
        WorktreeManager(str(tmp_path), dataset="../out")
    m = WorktreeManager(str(tmp_path))
    with pytest.raises(ValueError, match="unknown worktree"):
        m.is_locked("nope")
    with pytest.raises(TypeError):
        m.lock_worktree(3, "x")


def test_worktree_stores_are_independent(repo, tmp_path):
    m = WorktreeManager(str(repo))
    a = m.add_worktree(str(tmp_path / "a"), "a", True)
    wa = WorktreeVersionedKvStore.from_worktree(a["path"], a["id"], "a", m)
    main = VersionedKvStore(str(repo / "data"))
    wa.insert(b"x", b"1")
    main.insert(b"y", b"2")                     # staged in main's own journal
    assert wa.get(b"y") is None and main.get(b"x") is None
    c = wa.commit("a: x")
    assert main.resolve_ref("a") == c and main.current_branch() == "main"
    assert main.staged() == [(b"y", b"2")]
    main.commit("main: y")
    assert wa.list_keys() == [b"base", b"x"]
    assert m.get_branch_commit("a") == c == git(repo, "rev-parse", "a").stdout.strip()
    assert git(repo, "status", "--porcelain").stdout == ""
    assert git(a["path"], "status", "--porcelain").stdout == ""
    assert wa.current_branch() == "a" and wa.worktree_id() == "a"
    with pytest.raises(ValueError, match="checked out"):
        WorktreeVersionedKvStore.from_worktree(a["path"], a["id"], "main", m)
    with pytest.raises(ValueError, match="is at"):
        WorktreeVersionedKvStore.from_worktree(str(repo), a["id"], "a", m)
    wa.close()
    main.close()


def test_locks_are_gits_and_shared(repo, tmp_path):
    m1 = WorktreeManager(str(repo))
    a = m1.add_worktree(str(tmp_path / "a"), "a", True)
    m2 = WorktreeManager(str(repo))
    m1.lock_worktree("a", "agent busy")
    assert m2.is_locked("a") and porcelain(repo)[a["path"]]["locked"] == "agent busy"
    assert (repo / ".git" / "worktrees" / "a" / "locked").read_text() == "agent busy\n"
    with pytest.raises(WorktreeLockedError, match="already locked"):
        m2.lock_worktree("a", "me too")
    # Git honours it
    r = git(repo, "worktree", "remove", a["path"], check=False)
    assert r.returncode != 0 and "locked" in r.stderr
    with pytest.raises(WorktreeLockedError):
        m2.remove_worktree("a")
    # a lock taken through the manager has no holder: every handle is refused
    w = WorktreeVersionedKvStore.from_worktree(a["path"], "a", "a", m2)
    assert w.is_locked() and w.get(b"base") == b"0"
    for call in (lambda: w.insert(b"k", b"v"), lambda: w.delete(b"base"),
                 lambda: w.commit("no")):
        with pytest.raises(WorktreeLockedError, match="agent busy"):
            call()
    assert w.store.staged() == []
    assert m2.unlock_worktree("a") is True and not m1.is_locked("a")
    assert m2.unlock_worktree("a") is False
    # `git worktree lock` is seen too
    git(repo, "worktree", "lock", "--reason", "by git", a["path"])
    assert m1.lock_state("a") == (True, "by git", None)
    git(repo, "worktree", "unlock", a["path"])
    # a handle's lock: its holder writes, other handles do not
    w2 = WorktreeVersionedKvStore.from_worktree(a["path"], "a", "a", m1)
    w.lock("w works")
    assert w.holds_lock() and not w2.holds_lock()
    w.insert(b"k", b"v")
    w.commit("holder commits")
    with pytest.raises(WorktreeLockedError):
        w2.insert(b"k2", b"v")
    with pytest.raises(WorktreeLockedError):
        w2.unlock()
    with pytest.raises(WorktreeLockedError):
        w2.lock("steal")
    assert w.unlock() is True and w.unlock() is False
    w2.insert(b"k2", b"v")
    w2.commit("now w2")
    # the main worktree can be locked too (Git cannot: our own file, same format)
    m1.lock_worktree("main", "release")
    assert m2.is_locked("main") and m2.list_worktrees()[0]["lock_reason"] == "release"
    with pytest.raises(ValueError, match="main worktree cannot be removed"):
        m2.remove_worktree("main")
    # ... without Git's index lock (the wheel's main lock blocked every later commit)
    assert not (repo / ".git" / "index.lock").exists()
    assert git(repo, "status", "--porcelain").returncode == 0
    assert m2.unlock_worktree("main")
    wm = WorktreeVersionedKvStore.from_worktree(str(repo), "main", "main", m2)
    wm.insert(b"after-unlock", b"1")
    assert wm.commit("main commits after its lock") == m1.get_branch_commit("main")
    wm.close()
    w.close()
    w2.close()
    # removal
    assert m1.remove_worktree("a") is True
    assert a["path"] not in porcelain(repo) and not os.path.exists(a["path"])
    assert "a" in m1.list_branches()         # the branch stays, as with git


def test_list_branches_nested_and_packed(repo):
    m = WorktreeManager(str(repo))
    for name in ("feature/x/y", "alpha", "zeta/1"):
        git(repo, "branch", name)
    git(repo, "pack-refs", "--all")
    git(repo, "branch", "loose")
    expect = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").stdout.split()
    assert m.list_branches() == sorted(expect) == \
        ["alpha", "feature/x/y", "loose", "main", "zeta/1"]
    assert m.get_branch_commit("feature/x/y") == git(repo, "rev-parse", "main").stdout.strip()
    with pytest.raises(UnknownRefError):
        m.get_branch_commit("missing")


def _tip(repo, ref="main"):
    return git(repo, "rev-parse", ref).stdout.strip()


def test_merges(repo, tmp_path):
    m = WorktreeManager(str(repo))
    a = m.add_worktree(str(tmp_path / "a"), "a", True)
    b = m.add_worktree(str(tmp_path / "b"), "b", True)
    wa = WorktreeVersionedKvStore.from_worktree(a["path"], "a", "a", m)
    wb = WorktreeVersionedKvStore.from_worktree(b["path"], "b", "b", m)
    wa.insert(b"a1", b"1")
    ca = wa.commit("a1")
    # fast-forward: main has not moved
    assert m.merge_to_main("a", "merge a") == ca == _tip(repo)
    assert git(repo, "status", "--porcelain").stdout == ""       # main's index followed
    # three-way: a two-parent commit with our message
    wb.insert(b"b1", b"2")
    wb.insert(b"base", b"changed by b")
    cb = wb.commit("b1")
    merged = m.merge_to_main("b", "Merge agent b")
    assert git(repo, "log", "-1", "--format=%P%n%B", merged).stdout.split("\n")[:2] == \
        [f"{ca} {cb}", "Merge agent b"]
    main = VersionedKvStore(str(repo / "data"))
    assert dict(main.get_keys_at_ref("main")) == {b"base": b"changed by b", b"a1": b"1",
                                                 b"b1": b"2"}
    assert main.current_commit() == merged
    assert git(repo, "status", "--porcelain").stdout == ""
    # already merged: nothing happens
    assert m.merge_to_main("b", "again") == merged
    # conflict: nothing changes, and no scratch worktree or branch is left behind
    wa.insert(b"base", b"from a")
    wa.commit("a changes base")
    with pytest.raises(MergeConflictError) as e:
        m.merge_to_main("a", "conflicting")
    assert [(c.key, c.source_value, c.destination_value) for c in e.value.conflicts] == \
        [(b"base", b"from a", b"changed by b")]
    assert _tip(repo) == merged
    assert [w["id"] for w in m.list_worktrees()] == ["main", "a", "b"]
    assert len(porcelain(repo)) == 3 and m.list_branches() == ["a", "b", "main"]
    assert git(repo, "for-each-ref", "--format=%(refname)").stdout.split() == \
        ["refs/heads/a", "refs/heads/b", "refs/heads/main"]
    # ... unless a resolution is given
    res = m.merge_to_main("a", "take a", ConflictResolution.TakeSource)
    assert main.get(b"base") == b"from a" and main.current_commit() == res
    # merge_branch into a branch no worktree has checked out
    git(repo, "branch", "release", ca)
    rel = m.merge_branch("b", "release", "b into release")
    assert git(repo, "log", "-1", "--format=%s", "release").stdout.strip() == "b into release"
    assert dict(main.get_keys_at_ref("release")) == {b"base": b"changed by b", b"a1": b"1",
                                                    b"b1": b"2"}
    assert _tip(repo, "release") == rel
    # a locked target is refused
    m.lock_worktree("main", "frozen")
    wb.insert(b"b2", b"3")
    wb.commit("b2")
    with pytest.raises(WorktreeLockedError):
        m.merge_to_main("b", "no")
    m.unlock_worktree("main")
    # staged changes in the target's store are refused, nothing changes
    main.insert(b"pending", b"x")
    before = _tip(repo)
    with pytest.raises(ValueError, match="staged"):
        m.merge_to_main("b", "no")
    assert _tip(repo) == before
    main.delete(b"pending")
    m.merge_to_main("b", "yes")
    assert main.get(b"b2") == b"3"
    with pytest.raises(ValueError, match="already"):
        m.merge_branch("a", "a", "self")
    with pytest.raises(TypeError):
        m.merge_to_main("a", None)
    assert git(repo, "fsck", "--strict").returncode == 0
    assert git(repo, "status", "--porcelain").stdout == ""
    main.close()
    wa.close()
    wb.close()


def test_first_worktree_of_an_empty_repository(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    m = WorktreeManager(str(tmp_path))
    info = m.add_worktree(str(tmp_path.parent / (tmp_path.name + "-wt")), "w", True)
    w = WorktreeVersionedKvStore.from_worktree(info["path"], info["id"], "w", m)
    w.insert(b"k", b"v")
    w.commit("first")
    assert m.merge_to_main(info["id"], "merge") == m.get_branch_commit("w")
    w.close()
    s = VersionedKvStore(str(tmp_path / "data"))
    assert s.get(b"k") == b"v"
    s.close()


def test_merge_redone_when_the_target_moves(repo, tmp_path):
    m = WorktreeManager(str(repo))
    a = m.add_worktree(str(tmp_path / "a"), "a", True)
    wa = WorktreeVersionedKvStore.from_worktree(a["path"], "a", "a", m)
    wm = WorktreeVersionedKvStore.from_worktree(str(repo), "main", "main", m)
    assert wm.worktree_id() == "main" and wm.current_branch() == "main"
    wa.insert(b"base", b"a")
    wa.commit("a")
    wm.insert(b"base", b"main")
    wm.commit("main")
    calls = []

    def resolve(c):
        calls.append(c.key)
        if len(calls) == 1:       # someone commits to main while the merge is computed
            wm.insert(b"late", b"1")
            wm.commit("concurrent commit")
        return c.source_value

    cid = m.merge_to_main("a", "merge a", resolve)
    assert calls == [b"base", b"base"]            # computed twice: the first result is stale
    assert wm.store.current_commit() == cid
    assert dict(wm.store.get_keys_at_ref("main")) == {b"base": b"a", b"late": b"1"}
    assert git(repo, "log", "-1", "--format=%s", "main").stdout.strip() == "merge a"
    assert git(repo, "status", "--porcelain").stdout == ""
    # the main worktree can be locked by a handle too
    wm.lock("release")
    wm.insert(b"x", b"1")
    other = WorktreeVersionedKvStore.from_worktree(str(repo), "main", "main", m)
    with pytest.raises(WorktreeLockedError):
        other.insert(b"y", b"1")
    assert wm.unlock()
    wa.close()
    wm.close()
    other.close()


def test_prune_after_a_crashed_merge(repo, tmp_path):
    m = WorktreeManager(str(repo))
    # what a merge killed half-way leaves: a scratch worktree whose directory is gone
    # (it lives in the temporary directory) and its branch
    scratch = tmp_path / "prollytree-merge-0123456789abcdef"
    git(repo, "worktree", "add", "-q", "--detach", str(scratch))
    git(repo, "branch", "prollytree-merge/0123456789abcdef")
    git(repo, "branch", "prollytree-merge/fedcba9876543210")   # branch alone
    assert m.list_branches() == ["main"] and len(m.list_worktrees()) == 1   # hidden
    live = m.prune()
    assert live == {"worktrees": 0, "branches": 1}           # the scratch dir still exists
    shutil.rmtree(scratch)
    assert m.prune() == {"worktrees": 1, "branches": 1}
    assert git(repo, "worktree", "list", "--porcelain").stdout.count("worktree ") == 1
    assert git(repo, "for-each-ref", "--format=%(refname)").stdout.split() == \
        ["refs/heads/main"]


@pytest.mark.parametrize("dataset", [".", "sub/data"])
def test_dataset_at_other_places(tmp_path, dataset):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    s = VersionedKvStore(str(repo / dataset))
    s.insert(b"k", b"0")
    s.commit("start")
    s.close()
    m = WorktreeManager(str(repo), dataset=dataset)
    wt = m.add_worktree(str(tmp_path / "w"), "w", True)
    assert m.dataset_path(wt["id"]) == os.path.normpath(os.path.join(wt["path"], dataset))
    w = WorktreeVersionedKvStore.from_worktree(wt["path"], wt["id"], "w", m)
    assert w.get(b"k") == b"0"
    w.insert(b"k", b"1")
    w.commit("w")
    assert git(wt["path"], "status", "--porcelain").stdout == ""
    m.merge_to_main(wt["id"], "merge")
    main = VersionedKvStore(str(repo / dataset))
    assert main.get(b"k") == b"1"
    main.close()
    w.close()
    assert git(repo, "status", "--porcelain").stdout == ""


def test_node_map_rebuilt_from_a_linked_worktree(repo, tmp_path):
    """With the node map damaged and every object loose in the common object directory,
    a store opened in a linked worktree (whose own Git dir has no objects) reads all."""
    m = WorktreeManager(str(repo))
    wt = m.add_worktree(str(tmp_path / "w"), "w", True)
    s = VersionedKvStore(os.path.join(wt["path"], "data"))
    for i in range(300):
        s.insert(b"k%04d" % i, b"v%d" % i)
    s.commit("many")
    s.close()
    # every object loose in the common object directory
    packdir = repo / ".git" / "objects" / "pack"
    for idx in packdir.glob("*.pack"):
        data = idx.read_bytes()
        idx.unlink()
        idx.with_suffix(".idx").unlink()
        subprocess.run(["git", "unpack-objects", "-q"], input=data, cwd=repo, check=True)
    (repo / ".git" / "prollytree" / "nodemap").write_bytes(b"garbage")
    s = VersionedKvStore(os.path.join(wt["path"], "data"))
    assert dict(s.iter_items()) == {b"base": b"0", **{b"k%04d" % i: b"v%d" % i
                                                      for i in range(300)}}
    s.close()


def test_manager_merge_covers_every_namespace(repo, tmp_path):
    """merge_to_main is three-way over every tree of the dataset, namespaces included,
    and agrees with a model of each namespace."""
    from prollytree import NamespacedKvStore
    main = NamespacedKvStore(str(repo / "data"))
    main.ns_insert("users", b"u0", b"base")
    main.ns_insert("tmp", b"t", b"1")
    main.commit("namespaces")
    m = WorktreeManager(str(repo))
    a = m.add_worktree(str(tmp_path / "a"), "a", True)
    agent = NamespacedKvStore(os.path.join(a["path"], "data"))
    assert agent.current_branch == "a" and agent.ns_get("users", b"u0") == b"base"
    agent.ns_insert("users", b"ua", b"agent")
    agent.ns_insert("notes", b"n", b"agent")
    agent.delete_namespace("tmp")
    agent.commit("agent")
    main.ns_insert("users", b"um", b"main")
    main.insert(b"base", b"main")
    main.commit("main")
    merged = m.merge_to_main("a", "Merge a")
    assert git(repo, "log", "-1", "--format=%s", merged).stdout.strip() == "Merge a"
    expect = {"default": {b"base": b"main"},
              "users": {b"u0": b"base", b"ua": b"agent", b"um": b"main"},
              "notes": {b"n": b"agent"}}
    assert main.current_commit() == merged
    assert main.list_namespaces() == sorted(expect)
    for name, pairs in expect.items():
        assert dict(main.ns_items(name)) == pairs
    # a conflict inside a namespace names its tree and changes nothing
    agent.ns_insert("users", b"u0", b"agent's")
    agent.commit("agent u0")
    main.ns_insert("users", b"u0", b"main's")
    tip = main.commit("main u0")
    with pytest.raises(MergeConflictError) as e:
        m.merge_to_main("a", "no")
    assert [(c.tree, c.key) for c in e.value.conflicts] == [("ns/users", b"u0")]
    assert m.get_branch_commit("main") == tip == main.current_commit()
    agent.close()
    main.close()
    assert git(repo, "status", "--porcelain").stdout == ""


def test_bad_input_changes_nothing(repo, tmp_path):
    m = WorktreeManager(str(repo))
    w = m.add_worktree(str(tmp_path / "w"), "w", True)
    h = WorktreeVersionedKvStore.from_worktree(w["path"], "w", "w", m)
    h.insert(b"x", b"y")
    h.commit("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")

    def state():
        return (git(repo, "for-each-ref").stdout,
                git(repo, "worktree", "list", "--porcelain").stdout,
                sorted(os.listdir(repo / ".git" / "worktrees")), m.is_locked("w"),
                h.store.tree_status(), sorted(os.listdir(tmp_path)))

    before = state()
    calls = {
        TypeError: [lambda: m.merge_branch("w", 5, "x"), lambda: m.merge_to_main(None, "x"),
                    lambda: m.merge_to_main("w", "x", "take-source"),
                    lambda: m.lock_worktree("w", 5), lambda: m.remove_worktree(5),
                    lambda: m.remove_worktree("w", "yes"), lambda: m.is_locked(None),
                    lambda: m.add_worktree(5, "n", True), lambda: m.get_branch_commit(5),
                    lambda: m.add_worktree(str(tmp_path / "n"), "n", True, 7),
                    lambda: WorktreeVersionedKvStore.from_worktree(w["path"], "w", "w", "m"),
                    lambda: h.insert("k", b"v"), lambda: h.commit(5), lambda: h.lock(5),
                    lambda: WorktreeManager(str(repo), dataset=5)],
        UnknownRefError: [lambda: m.merge_branch("w", "nope", "x"),
                          lambda: m.add_worktree(str(tmp_path / "n"), "n", True, "nope")],
        ValueError: [lambda: m.merge_to_main("w", "  "), lambda: m.merge_to_main("zz", "x"),
                     lambda: m.lock_worktree("w", "two\nlines"),
                     lambda: m.lock_worktree("zz", "r"), lambda: m.remove_worktree("zz"),
                     lambda: m.unlock_worktree("zz"),
                     lambda: m.add_worktree(str(tmp_path / "full"), "n", True),
                     lambda: m.add_worktree(str(tmp_path / "n"), "n", False, "main"),
                     lambda: WorktreeManager(str(repo), dataset=".git/x")],
    }
    for error, group in calls.items():
        for call in group:
            with pytest.raises(error):
                call()
            assert state() == before
    h.close()
