"""The Git backend checked with git itself: fsck, log, show, status, gc, clone."""

from prollytree.versioning import StorageBackend, VersionedKvStore

from .conftest import git


def _fill(s, n, tag=b"v"):
    model = {}
    for i in range(n):
        k, v = b"key%05d" % i, tag + b"%d" % i
        s.insert(k, v)
        model[k] = v
    return model


def _user_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Repo User")
    git(repo, "config", "user.email", "user@repo.example")
    (repo / "code.py").write_text("print('hi')\n")
    (repo / "lib").mkdir()
    (repo / "lib" / "util.py").write_text("X = 1\n")
    git(repo, "add", "code.py", "lib/util.py")
    git(repo, "commit", "-q", "-m", "user code")
    return repo


def test_standalone_repo_fsck_log_status(tmp_path):
    path = tmp_path / "ds"
    s = VersionedKvStore(str(path))
    model = _fill(s, 2000)
    c1 = s.commit("load 2000 keys")
    s.create_branch("feat")
    s.update(b"key00001", b"feat")
    s.commit("feat change")
    s.checkout("main")
    s.update(b"key00002", b"main")
    s.commit("main change")
    m = s.merge("feat")
    s.close()
    assert (path / ".git").is_dir()            # a repository was initialised there
    fsck = git(path, "fsck", "--strict", "--no-dangling")
    assert fsck.returncode == 0 and fsck.stdout.strip() == "", fsck.stdout + fsck.stderr
    out = git(path, "log", "--format=%H %s", "main").stdout.splitlines()
    assert out[0] == f"{m} Merge branch 'feat' into main"
    assert f"{c1} load 2000 keys" in out
    parents = git(path, "rev-list", "--parents", "-n", "1", m).stdout.split()
    assert len(parents) == 3                    # a true two-parent merge commit
    assert git(path, "show", "--stat", m).returncode == 0
    assert git(path, "status", "--porcelain").stdout == ""
    assert git(path, "cat-file", "-p", "main:.prolly/ROOT").stdout.startswith(
        "prollytree-dataset 2")
    # gc --prune=now keeps every node: data still readable
    git(path, "gc", "--prune=now", "-q")
    s = VersionedKvStore(str(path))
    model[b"key00001"] = b"feat"
    model[b"key00002"] = b"main"
    assert dict(s.get_keys_at_ref("main")) == model
    assert dict(s.get_keys_at_ref(c1)) == _fill_model(2000)
    s.close()
    assert git(path, "fsck", "--strict", "--no-dangling").returncode == 0


def _fill_model(n):
    return {b"key%05d" % i: b"v%d" % i for i in range(n)}


def test_dataset_in_user_repo(tmp_path):
    repo = _user_repo(tmp_path)
    # the user has a change staged and another one unstaged: neither may be touched
    (repo / "code.py").write_text("print('staged')\n")
    git(repo, "add", "code.py")
    (repo / "lib" / "util.py").write_text("X = 2\n")
    before = git(repo, "status", "--porcelain").stdout
    s = VersionedKvStore(str(repo / "data" / "kv"))
    assert s.current_branch() == "main"
    model = _fill(s, 1500)
    c = s.commit("data commit")
    s.insert(b"key00003", b"again")
    model[b"key00003"] = b"again"
    c2 = s.commit("second data commit")
    s.close()
    assert git(repo, "status", "--porcelain").stdout == before
    assert git(repo, "rev-parse", "HEAD").stdout.strip() == c2     # on the repo's branch
    assert git(repo, "rev-parse", "HEAD~2").stdout.strip() != c
    show = git(repo, "show", "--name-only", "--format=%an <%ae>|%s", c2).stdout
    assert show.startswith("Test Author <author@example.com>|second data commit")
    assert all(p.startswith("data/kv/.prolly/") for p in show.split("\n")[1:] if p)
    # the committed tree still has the user's committed files, unchanged
    assert git(repo, "show", "HEAD:code.py").stdout == "print('hi')\n"
    assert git(repo, "show", "HEAD:lib/util.py").stdout == "X = 1\n"
    # the user's next commit keeps the dataset (the index lists it)
    git(repo, "commit", "-q", "-m", "user commits staged code")
    assert git(repo, "show", "HEAD:code.py").stdout == "print('staged')\n"
    ls = git(repo, "ls-tree", "-r", "--name-only", "HEAD", "data/kv/.prolly").stdout.split()
    assert "data/kv/.prolly/ROOT" in ls
    s = VersionedKvStore(str(repo / "data" / "kv"))
    assert dict(s.get_keys_at_ref("HEAD")) == model
    s.insert(b"after", b"user commit")
    s.commit("after the user's commit")
    s.close()
    assert git(repo, "fsck", "--strict", "--no-dangling").stdout.strip() == ""
    assert git(repo, "status", "--porcelain").stdout == " M lib/util.py\n"


def test_clone_carries_data(tmp_path):
    repo = _user_repo(tmp_path)
    s = VersionedKvStore(str(repo / "data"))
    model = _fill(s, 3000)
    s.commit("load")
    s.create_branch("feat")
    s.insert(b"feat", b"1")
    s.commit("feat")
    s.close()
    git(repo, "gc", "--prune=now", "-q")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-local", str(repo), str(clone))
    git(clone, "branch", "feat", "origin/feat")
    s = VersionedKvStore(str(clone / "data"))
    assert dict(s.get_keys_at_ref("main")) == model
    assert s.get(b"key00042") == model[b"key00042"]
    assert dict(s.get_keys_at_ref("feat"))[b"feat"] == b"1"
    s.insert(b"in-clone", b"x")
    c = s.commit("commit in the clone")
    s.close()
    git(clone, "push", "-q", "origin", "main:from-clone")
    s = VersionedKvStore(str(repo / "data"))
    assert s.get_keys_at_ref(c)[0] == (b"in-clone", b"x")
    s.close()
    assert git(clone, "fsck", "--strict", "--no-dangling").stdout.strip() == ""


def test_identity_from_git_config_and_fallback(tmp_path, monkeypatch):
    for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
              "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(k, raising=False)
    repo = _user_repo(tmp_path)
    s = VersionedKvStore(str(repo / "d"))
    s.insert(b"a", b"1")
    s.commit("c")
    assert s.log()[0]["author"] == "Repo User <user@repo.example>"
    assert s.log()[0]["committer"] == "Repo User <user@repo.example>"
    s.close()
    s = VersionedKvStore(str(tmp_path / "standalone"))
    s.insert(b"a", b"1")
    s.commit("c")
    assert s.log()[0]["author"] == "prollytree <prollytree@localhost>"
    s.close()


def test_branches_are_git_branches(tmp_path):
    path = tmp_path / "ds"
    s = VersionedKvStore(str(path))
    s.insert(b"a", b"1")
    s.commit("c")
    s.create_branch("exp")
    s.insert(b"b", b"2")
    c = s.commit("on exp")
    git(path, "tag", "v1", c)
    git(path, "tag", "-a", "-m", "annotated", "v2", c)
    assert s.get_keys_at_ref("v1") == s.get_keys_at_ref("v2") == [(b"a", b"1"), (b"b", b"2")]
    s.close()
    heads = git(path, "for-each-ref", "--format=%(refname:short)", "refs/heads").stdout.split()
    assert sorted(heads) == ["exp", "main"]
    assert git(path, "rev-parse", "exp").stdout.strip() == c


def test_storage_backend_repr():
    assert repr(StorageBackend.Git) == "StorageBackend.Git"
    assert str(StorageBackend.Git) == "Git"
    assert [m.name for m in StorageBackend] == ["File", "Git", "InMemory", "RocksDB", "LMDB", "S3"]
