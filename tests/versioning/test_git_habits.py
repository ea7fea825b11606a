"""Git's rules and seed compatibility: default branch, branch deletion, empty messages,
constructor footguns, threads sharing one store, locks left by killed writers."""

import os
import subprocess
import sys
import threading

import pytest

from prollytree.errors import StoreLockedError
from prollytree.versioning import StorageBackend, VersionedKvStore

from .conftest import git


def test_fresh_repository_starts_on_main_whatever_init_default_branch(tmp_path):
    repo = tmp_path / "r"
    git(tmp_path, "-c", "init.defaultBranch=master", "init", "-q", str(repo))
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"k", b"v")
    s.commit("one")
    s.checkout("main")                         # the seed's examples do this
    assert s.current_branch() == "main" and s.list_branches() == ["main"]
    s.close()
    assert git(repo, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"
    assert git(repo, "log", "--format=%s").stdout.split("\n")[0] == "one"
    assert git(repo, "status", "--porcelain").stdout == ""


def test_repository_with_commits_keeps_its_branch(tmp_path):
    repo = tmp_path / "r"
    git(tmp_path, "-c", "init.defaultBranch=trunk", "init", "-q", str(repo))
    (repo / "a.txt").write_text("a")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "code")
    s = VersionedKvStore(str(repo / "data"))
    assert s.current_branch() == "trunk"
    s.close()


def test_branch_delete_follows_git(tmp_path):
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"a", b"1")
    c1 = s.commit("one")
    s.branch("merged")
    s.create_branch("topic")
    s.insert(b"b", b"2")
    s.commit("topic work")
    s.checkout(c1)                              # detached: the repository is on main
    with pytest.raises(ValueError, match="checked out"):
        s.delete_branch("main")
    s.checkout("main")
    with pytest.raises(ValueError, match="not fully merged"):
        s.delete_branch("topic")
    assert "topic" in s.list_branches()         # refused: nothing changed
    assert s.delete_branch("merged") == c1
    s.delete_branch("topic", force=True)
    assert s.list_branches() == ["main"]
    s.close()
    assert git(repo, "status", "--porcelain").stdout == ""


@pytest.mark.parametrize("message", ["", "   ", "\n"])
def test_empty_commit_message_is_refused(make_store, message):
    s = make_store()
    s.insert(b"k", b"v")
    before = s.current_commit()
    with pytest.raises(ValueError, match="empty"):
        s.commit(message)
    assert s.current_commit() == before and s.staged() == [(b"k", b"v")]


def test_constructor_refuses_what_is_not_a_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="empty"):
        VersionedKvStore("")
    assert not (tmp_path / ".git").exists()
    git(tmp_path, "init", "-q", "-b", "main", "repo")
    with pytest.raises(ValueError, match=".git"):
        VersionedKvStore(str(tmp_path / "repo" / ".git" / "x"))
    f = VersionedKvStore(str(tmp_path / "fileds"), StorageBackend.File)
    f.insert(b"k", b"v")
    f.commit("file")
    f.close()
    listing = sorted(os.listdir(tmp_path / "fileds"))
    with pytest.raises(ValueError, match="holds a File dataset"):
        VersionedKvStore(str(tmp_path / "fileds"))          # default: Git
    with pytest.raises(ValueError, match="holds a File dataset"):
        VersionedKvStore(str(tmp_path / "fileds"), StorageBackend.RocksDB)
    assert sorted(os.listdir(tmp_path / "fileds")) == listing and \
        not (tmp_path / "fileds" / ".git").exists()
    g = VersionedKvStore(str(tmp_path / "repo" / "gitds"))
    g.insert(b"k", b"v")
    g.commit("git")
    g.close()
    with pytest.raises(ValueError, match="holds a Git dataset"):
        VersionedKvStore(str(tmp_path / "repo" / "gitds"), StorageBackend.File)
    assert not (tmp_path / "repo" / "gitds" / "nodes").exists()


@pytest.mark.parametrize("backend", [StorageBackend.Git, StorageBackend.File,
                                     StorageBackend.LMDB, StorageBackend.InMemory],
                         ids=lambda b: b.name)
def test_threads_sharing_one_store_lose_nothing(tmp_path, backend):
    s = VersionedKvStore(str(tmp_path / "ds"), backend)
    model = {}
    errors = []
    stop = threading.Event()

    def writer(t):
        try:
            for i in range(150):
                k, v = b"t%d-%03d" % (t, i), b"%d" % i
                s.insert(k, v, tree="" if i % 2 else "ns/t%d" % t)
                model[(("" if i % 2 else "ns/t%d" % t), k)] = v
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def committer():
        try:
            n = 0
            while not stop.is_set():
                s.commit(f"c{n}")
                n += 1
                s.root_hash()
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    c = threading.Thread(target=committer)
    c.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    c.join()
    assert not errors, errors
    s.commit("last")
    got = {(t, k): v for t in s.list_trees() for k, v in s.iter_items(tree=t)}
    assert got == model
    s.close()


KILL_CHILD = r"""
import os, sys
from prollytree.versioning import VersionedKvStore
s = VersionedKvStore(sys.argv[1])
s.insert(b"k", b"v")
c = s.commit("before")
# a writer killed while it held Git's lock files: simulate the state it leaves behind
b = s.backend
b._lock_intent(b._ref_lock_paths("refs/heads/main") + [s.backend.repo.index_path() + ".lock"])
for p in b._ref_lock_paths("refs/heads/main")[:1] + [s.backend.repo.index_path() + ".lock"]:
    open(p, "wb").close()
print(c, flush=True)
os._exit(9)
"""


def test_lock_files_left_by_a_killed_writer_are_recovered(tmp_path):
    path = str(tmp_path / "ds")
    r = subprocess.run([sys.executable, "-c", KILL_CHILD, path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 9, r.stderr
    assert os.path.exists(os.path.join(path, ".git", "refs", "heads", "main.lock"))
    s = VersionedKvStore(path)
    s.insert(b"k2", b"v2")
    c = s.commit("after the crash")            # no wedge, no warning, no waiting
    assert s.get(b"k2") == b"v2" and s.log()[1]["id"] == r.stdout.strip()
    s.close()
    assert not os.path.exists(os.path.join(path, ".git", "refs", "heads", "main.lock"))
    assert git(path, "rev-parse", "main").stdout.strip() == c


def test_a_live_git_lock_gives_store_locked_error(tmp_path):
    path = tmp_path / "ds"
    s = VersionedKvStore(str(path))
    s.insert(b"k", b"v")
    s.commit("one")
    lock = path / ".git" / "refs" / "heads" / "main.lock"
    lock.write_bytes(b"")                       # held by "another git process"
    s.insert(b"k", b"w")
    with pytest.raises(StoreLockedError, match="main.lock"):
        s.commit("blocked")
    lock.unlink()
    s.commit("unblocked")
    assert s.get_at("HEAD", b"k") == b"w"
    s.close()


def test_remote_tracking_refs_resolve_and_merge_messages(tmp_path):
    a = VersionedKvStore(str(tmp_path / "a"))
    a.insert(b"k", b"1")
    base = a.commit("base")
    a.create_branch("side")
    a.insert(b"s", b"2")
    side = a.commit("side work")
    a.checkout("main")
    a.insert(b"m", b"3")
    a.commit("main work")
    # what a fetch leaves behind: a remote-tracking ref
    git(tmp_path / "a", "update-ref", "refs/remotes/origin/feature", side)
    assert a.resolve_ref("origin/feature") == side
    assert a.resolve_ref("refs/remotes/origin/feature~1") == base
    with pytest.raises(ValueError):
        a.resolve_ref("origin/nope")
    with pytest.raises(ValueError, match="empty"):
        a.merge("origin/feature", message="  ")
    m = a.merge("origin/feature")
    assert a.log(limit=1)[0]["message"] == \
        "Merge remote-tracking branch 'origin/feature' into main"
    a.create_branch("x", base)
    a.insert(b"x", b"x")
    a.commit("x work")
    a.checkout("main")
    assert a.merge("x", message="Bring in x") != m
    assert a.log(limit=1)[0]["message"] == "Bring in x"
    a.close()


def _pack_count(path):
    return len([f for f in os.listdir(os.path.join(path, ".git", "objects", "pack"))
                if f.endswith(".pack")])


def test_packs_are_consolidated_automatically(tmp_path, monkeypatch):
    from prollytree.versioning import git_backend
    monkeypatch.setattr(git_backend, "AUTO_PACK_LIMIT", 4)
    path = str(tmp_path / "ds")
    s = VersionedKvStore(path)
    commits = []
    for i in range(30):
        s.insert(b"k%03d" % i, b"v%d" % i)
        commits.append(s.commit(f"c{i}"))
        assert _pack_count(path) <= 4 + 3          # geometric repack keeps a few
    for i, c in enumerate(commits):                 # every version still reads
        assert s.get_at(c, b"k%03d" % i) == b"v%d" % i
        assert s.resolve_ref(c[:10]) == c
    s.close()
    assert git(path, "fsck", "--strict").returncode == 0


@pytest.mark.slow
def test_commit_speed_stays_flat_over_thousands_of_commits(tmp_path):
    import statistics
    import time
    s = VersionedKvStore(str(tmp_path / "ds"))
    times = []
    for i in range(3000):
        s.insert(b"k%05d" % (i % 500), b"v%d" % i)
        t0 = time.perf_counter()
        s.commit(f"c{i}")
        times.append(time.perf_counter() - t0)
    first, last = statistics.median(times[:300]), statistics.median(times[-300:])
    s.close()
    assert last < 1.5 * first, (first, last)
