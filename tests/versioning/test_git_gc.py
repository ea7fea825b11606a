"""The Git backend after real ``git gc --prune=now``: nodes Git deleted are written again
when a later commit needs them (blobs and mirror trees), and the Git index the store
edits in-process stays what Git itself would write."""

import os
import random
import subprocess
import warnings

import pytest

from prollytree.versioning import VersionedKvStore

from .conftest import git


def _gc(repo):
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "--prune=now", "-q")


def _fsck_clean(repo):
    r = git(repo, "fsck", "--strict", "--no-dangling", check=False)
    assert r.returncode == 0 and r.stdout.strip() == "" and "missing" not in r.stderr, (
        r.stdout + r.stderr)


def _clone_reads(tmp_path, repo, sub, expected):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-local", str(repo), str(clone))
    s = VersionedKvStore(str(clone / sub) if sub else str(clone))
    try:
        assert dict(s.get_keys_at_ref("HEAD")) == expected
    finally:
        s.close()


def test_leaf_pruned_by_gc_is_written_again(tmp_path):
    """The reported case: a node that only a deleted branch had, pruned by git gc,
    recreated by a later commit on another branch."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"a", b"1")
    s.commit("1")
    s.create_branch("side")
    s.insert(b"b", b"unique")
    s.commit("2")
    s.checkout("main")
    s.delete_branch("side", force=True)
    s.close()
    _gc(repo)
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"b", b"unique")
    s.commit("3")
    assert dict(s.get_keys_at_ref("HEAD")) == {b"a": b"1", b"b": b"unique"}
    s.close()
    _fsck_clean(repo)
    _clone_reads(tmp_path, repo, "data", {b"a": b"1", b"b": b"unique"})


def test_same_process_and_mirror_trees_pruned_by_gc(tmp_path):
    """Internal nodes (mirror trees) and leaves of a deleted branch, pruned while the
    store stays open in this process, recreated on main: every one is written again."""
    repo = tmp_path / "repo"
    s = VersionedKvStore(str(repo))
    model = {b"base%05d" % i: b"v%d" % i for i in range(3000)}
    for k, v in model.items():
        s.insert(k, v)
    s.commit("base")
    s.create_branch("side")
    extra = {b"side%05d" % i: b"s%d" % i for i in range(6000)}  # whole new subtrees
    for k, v in extra.items():
        s.insert(k, v)
    side = s.commit("side")
    side_root = s.backend.read_commit(side).root
    s.checkout("main")
    s.delete_branch("side", force=True)
    _gc(repo)                       # the store object stays open across the gc
    store = s.backend.store
    assert store.known_id(side_root, s.backend.cache.load(side_root).level) is not None
    for k, v in extra.items():
        s.insert(k, v)
    c = s.commit("same subtrees again")
    assert s.backend.read_commit(c).root == side_root   # the very nodes git gc deleted
    model.update(extra)
    assert dict(s.get_keys_at_ref("HEAD")) == model
    s.close()
    _fsck_clean(repo)
    # every node of the new commit's tree is in Git, not only in the node map
    s = VersionedKvStore(str(repo))
    assert s.fsck()["ok"]
    s.close()
    _clone_reads(tmp_path, repo, None, model)


def test_read_of_pruned_node_drops_stale_map_entry(tmp_path):
    repo = tmp_path / "repo"
    s = VersionedKvStore(str(repo))
    s.insert(b"a", b"1")
    s.commit("1")
    s.create_branch("side")
    s.insert(b"gone", b"x")
    c = s.commit("side")
    root = s.backend.read_commit(c).root
    s.checkout("main")
    s.delete_branch("side", force=True)
    s.close()
    _gc(repo)
    s = VersionedKvStore(str(repo))
    store = s.backend.store
    assert store.blob_id(root) is not None          # the map still names it...
    assert store.get(root) is None                   # ...but it is gone: absent
    assert store.blob_id(root) is None               # and the stale entry dropped
    s.close()
    s = VersionedKvStore(str(repo))                  # the map file still names it
    assert s.backend.store.blob_id(root) is not None
    assert s.gc(dry_run=True)["map_entries_dropped"] == 1
    assert s.backend.store.blob_id(root) is not None
    report = s.gc()                                  # rewrites the map without it
    assert report["map_entries_dropped"] == 1 and report["managed_by_git"]
    assert report["removed"] == 0
    s.close()
    s = VersionedKvStore(str(repo))
    assert s.backend.store.blob_id(root) is None     # gone from the file too
    assert s.get(b"a") == b"1" and s.fsck()["ok"]
    s.close()


# -- the Git index, edited in-process --------------------------------------------------


def _user_repo(tmp_path, *config):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for kv in config:
        git(repo, "config", *kv)
    (repo / "code.py").write_text("print(1)\n")
    (repo / "z.txt").write_text("last\n")
    git(repo, "add", "code.py", "z.txt")
    git(repo, "commit", "-q", "-m", "code")
    return repo


def _index_matches_head(repo):
    """The index lists exactly HEAD's tree (what `git commit` would record) and the
    dataset's files are flagged skip-worktree."""
    assert git(repo, "write-tree").stdout.strip() == \
        git(repo, "rev-parse", "HEAD^{tree}").stdout.strip()
    assert git(repo, "status", "--porcelain").stdout == ""
    flags = git(repo, "ls-files", "-v").stdout.splitlines()
    data = [ln for ln in flags if ".prolly/" in ln]
    assert data and all(ln.startswith("S ") for ln in data), data[:5]
    assert all(ln.startswith("H ") for ln in flags if ".prolly/" not in ln)


@pytest.mark.parametrize("config", [
    (),
    (("core.untrackedCache", "true"), ("core.fsmonitor", "false")),
    (("index.version", "4"),),              # not edited in-process: git update-index
    (("core.splitIndex", "true"),),         # same
    (("index.skipHash", "true"),),
], ids=["plain", "untracked-cache", "v4", "split", "skiphash"])
def test_index_stays_what_git_would_write(tmp_path, config):
    repo = _user_repo(tmp_path, *config)
    git(repo, "status", "--porcelain")           # lets git write its extensions
    s = VersionedKvStore(str(repo / "data"))
    model = {}
    for r in range(4):
        for i in range(400 * (r + 1)):
            k = b"k%06d" % (i * 7 + r)
            model[k] = b"r%d" % r
            s.insert(k, model[k])
        if r == 2:
            for k in list(model)[::5]:
                s.delete(k)
                del model[k]
        s.commit(f"data {r}")
        _index_matches_head(repo)
        git(repo, "status", "--porcelain")       # git rewrites the index in between
    # the user's own work: the next git commit keeps the dataset
    (repo / "code.py").write_text("print(2)\n")
    git(repo, "add", "code.py")
    git(repo, "commit", "-q", "-m", "user")
    assert git(repo, "ls-tree", "-r", "--name-only", "HEAD", "data/.prolly/ROOT").stdout
    s.insert(b"after", b"user")
    model[b"after"] = b"user"
    s.commit("after the user's commit")
    _index_matches_head(repo)
    assert dict(s.get_keys_at_ref("HEAD")) == model
    s.close()
    _fsck_clean(repo)


def test_index_rewritten_when_git_changed_the_entries(tmp_path):
    """`git checkout` of another branch by the user rewrites the dataset's entries in
    the index behind the store's back: the store notices and rewrites them all."""
    repo = _user_repo(tmp_path)
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"a", b"1")
    s.commit("a")
    git(repo, "branch", "other")
    s.insert(b"b", b"2")
    s.commit("b on main")
    s.close()
    git(repo, "checkout", "-q", "other")          # checks out other's dataset files
    assert (repo / "data" / ".prolly" / "ROOT").exists()
    s = VersionedKvStore(str(repo / "data"))
    s.checkout("other")
    s.insert(b"c", b"3")
    s.commit("c on other")
    _index_matches_head(repo)
    s.close()


def test_index_lock_held_warns_and_recovers(tmp_path, monkeypatch):
    from prollytree.git import index as git_index
    monkeypatch.setattr(git_index, "LOCK_WAIT", 0.2)
    repo = _user_repo(tmp_path)
    s = VersionedKvStore(str(repo / "data"))
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    s.insert(b"a", b"1")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        c = s.commit("while git holds the index")
    assert any("index was not updated" in str(x.message) for x in w)
    assert git(repo, "rev-parse", "HEAD").stdout.strip() == c   # the commit stands
    lock.unlink()
    s.insert(b"b", b"2")
    s.commit("next")
    _index_matches_head(repo)
    s.close()


def test_index_at_repository_root_dataset(tmp_path):
    repo = _user_repo(tmp_path)
    s = VersionedKvStore(str(repo))
    for i in range(2000):
        s.insert(b"%05d" % i, b"x")
    s.commit("root dataset")
    _index_matches_head(repo)
    s.close()
    env = dict(os.environ)
    r = subprocess.run(["git", "diff", "--cached", "--stat"], cwd=repo, capture_output=True,
                       text=True, env=env)
    assert r.stdout == ""


def test_index_across_commits_of_one_process(tmp_path):
    """Consecutive commits reuse this process's parsed index; a git command in between
    (another writer) is noticed; the result is always what git would write."""
    repo = _user_repo(tmp_path)
    s = VersionedKvStore(str(repo / "data"))
    model = {}
    for r in range(12):
        for i in range(150):
            k = b"k%05d" % ((i * 37 + r * 11) % 3000)
            model[k] = b"%d" % r
        s.insert_batch([(k, v) for k, v in model.items() if v == b"%d" % r])
        if r % 4 == 3:
            for k in list(model)[r::7]:
                s.delete(k)
                del model[k]
        s.commit(f"r{r}")
        if r == 5:   # the user stages a file of their own between two store commits
            (repo / "new.txt").write_text("hello\n")
            git(repo, "add", "new.txt")
    assert git(repo, "diff", "--cached", "--name-only").stdout == "new.txt\n"
    git(repo, "commit", "-q", "-m", "user adds new.txt")
    _index_matches_head(repo)
    assert dict(s.get_keys_at_ref("HEAD")) == model
    ls = git(repo, "ls-files", "-s", "data/.prolly").stdout.splitlines()
    tree = git(repo, "ls-tree", "-r", "HEAD", "data/.prolly").stdout.splitlines()
    assert [ln.split()[1] for ln in ls] == [ln.split()[2] for ln in tree]
    s.close()


def _random_gc_run(tmp_path, rounds, seed):
    rng = random.Random(seed)
    repo = tmp_path / "repo"
    s = VersionedKvStore(str(repo))
    branches = {"main": {}}
    cur = "main"
    keys = [b"k%03d" % i for i in range(300)]
    values = [b"a", b"b", b"c"]            # few values: old nodes recur often
    for r in range(rounds):
        op = rng.random()
        # the repository has main checked out: Git (and the store) refuse to delete it
        if op < 0.15 and len(branches) > 1 and set(branches) - {cur, "main"}:
            victim = rng.choice(sorted(set(branches) - {cur, "main"}))
            s.delete_branch(victim, force=True)
            del branches[victim]
        elif op < 0.35:
            name = f"b{r}"
            s.create_branch(name)
            branches[name] = dict(branches[cur])
            cur = name
        elif op < 0.5:
            cur = rng.choice(sorted(branches))
            s.checkout(cur)
        else:
            model = branches[cur]
            for _ in range(rng.randrange(1, 40)):
                k = rng.choice(keys)
                if rng.random() < 0.2:
                    if s.delete(k):
                        del model[k]
                else:
                    v = rng.choice(values)
                    s.insert(k, v)
                    model[k] = v
            s.commit(f"r{r}")
        if r % 7 == 6:
            s.close()
            _gc(repo)
            _fsck_clean(repo)
            s = VersionedKvStore(str(repo))
            s.checkout(cur)
        for b, model in branches.items():
            assert dict(s.get_keys_at_ref(b)) == model, (r, b)
    s.close()
    _gc(repo)
    _fsck_clean(repo)
    s = VersionedKvStore(str(repo))
    assert s.fsck()["ok"]
    s.close()


def test_random_branches_deleted_and_gc(tmp_path):
    _random_gc_run(tmp_path, 30, 1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_random_branches_deleted_and_gc_long(tmp_path, seed):
    _random_gc_run(tmp_path, 150, seed)


def test_commit_on_top_of_fetched_commits_with_an_empty_node_map(tmp_path):
    """The parent's mirror is unknown to the node map (deleted here; likewise for
    commits fetched from elsewhere): the store learns it and reuses it."""
    repo = tmp_path / "repo"
    s = VersionedKvStore(str(repo))
    model = {b"k%04d" % i: b"v" for i in range(3000)}
    s.insert_batch(model.items())
    s.commit("load")
    s.close()
    os.unlink(repo / ".git" / "prollytree" / "nodemap")
    packs = set(os.listdir(repo / ".git" / "objects" / "pack"))
    s = VersionedKvStore(str(repo))
    s.insert(b"k0001", b"changed")
    model[b"k0001"] = b"changed"
    s.commit("small change")
    assert dict(s.get_keys_at_ref("HEAD")) == model
    s.close()
    new = [p for p in os.listdir(repo / ".git" / "objects" / "pack")
           if p.endswith(".pack") and p not in packs]
    assert len(new) == 1
    # the commit's pack holds the changed path only, not a copy of the whole tree
    assert os.path.getsize(repo / ".git" / "objects" / "pack" / new[0]) < 20_000
    _fsck_clean(repo)
