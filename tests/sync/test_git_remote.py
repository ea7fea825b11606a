"""Git remotes of Git-backed datasets (prollytree.sync.git_remote) against the real
``git`` binary: bare repositories on disk, ``file://`` URLs and a real ``git daemon``
on 127.0.0.1 started here. Every check compares the stores with a dict model per branch
and the remote with ``git fsck --strict``."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest

from prollytree.errors import (MergeConflictError, NonFastForwardError, RemoteError,
                               UnknownRefError)
from prollytree.sync import git_remote as gr
from prollytree.versioning import ConflictResolution, StorageBackend, VersionedKvStore

pytestmark = pytest.mark.usefixtures("git_home")     # tests/conftest.py


def git(cwd, *args, check=True) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode:
        raise AssertionError(f"git {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon(tmp_path):
    """A real ``git daemon`` serving tmp_path/served on 127.0.0.1, push enabled."""
    base = tmp_path / "served"
    base.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
         "--export-all", "--enable=receive-pack", f"--base-path={base}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"git daemon did not start: {proc.stderr.read()!r}")
            time.sleep(0.05)
    try:
        yield base, port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# An ``ssh`` stand-in: parses OpenSSH's command line as a client gives it ([-x] [-p PORT]
# [-i KEY] [-o OPTION]... [user@]host COMMAND), logs it, and runs COMMAND here, as sshd
# would after logging in (``-o SetEnv=GIT_PROTOCOL=...`` becomes that variable, as
# sshd's ``AcceptEnv GIT_PROTOCOL`` does). Everything on the client side is real: the
# URL parsing, the ssh command line, the Git protocol over the child's pipes, and the
# real git-upload-pack / git-receive-pack at the other end. Only OpenSSH's own
# authentication and encryption are left out (no sshd can be assumed on a CI machine).
SSH_STANDIN = r"""#!{python}
import json, os, sys
args, opts = sys.argv[1:], {{"o": []}}
while args and args[0].startswith("-"):
    flag = args.pop(0)
    if flag in ("-p", "-i", "-o", "-l"):
        opts.setdefault(flag[1], []).append(args.pop(0)) if flag == "-o" else \
            opts.__setitem__(flag[1], args.pop(0))
    elif flag == "-G":            # git asks whether this is OpenSSH
        sys.exit(0)
host, command = args[0], " ".join(args[1:])
with open({log!r}, "a") as f:
    f.write(json.dumps({{"host": host, "port": opts.get("p"), "command": command,
                        "options": opts["o"]}}) + "\n")
for o in opts["o"]:
    o = o.replace("=", " ", 1) if o.startswith("SetEnv=") else o
    if o.startswith("SetEnv "):
        name, _, value = o[len("SetEnv "):].partition("=")
        os.environ[name.strip()] = value
os.execvp("sh", ["sh", "-c", command])
"""


@pytest.fixture
def ssh_standin(tmp_path, monkeypatch):
    """``GIT_SSH_COMMAND`` set to the stand-in above; yields the path of its log (one JSON
    line per connection) so a test can check the ssh transport really was used."""
    log = tmp_path / "ssh.log"
    script = tmp_path / "fake-ssh"
    script.write_text(SSH_STANDIN.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(script))
    monkeypatch.setenv("GIT_SSH_VARIANT", "ssh")   # the git binary: OpenSSH's flags
    return log


def ssh_log(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def bare(path) -> str:
    git(os.path.dirname(path), "init", "-q", "--bare", "-b", "main", str(path))
    return str(path)


def new_store(path, sub="data"):
    """A Git-backed store in ``path/sub`` of a new repository at ``path``."""
    os.makedirs(path, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return VersionedKvStore(os.path.join(path, sub) if sub else path)


def contents(store, ref=None) -> dict:
    if ref is None:
        return dict(store.iter_items())
    return dict(store.iter_items_at(ref))


def fsck(path) -> None:
    r = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr and "missing" not in r.stderr, r.stderr


def fill(store, model: dict, n: int, seed: int, prefix=b"k") -> None:
    rnd = random.Random(seed)
    for _ in range(n):
        k = prefix + b"%05d" % rnd.randrange(n * 2)
        if model and rnd.random() < 0.2:
            k = rnd.choice(sorted(model))
            store.delete(k)
            model.pop(k)
        else:
            v = b"v%d" % rnd.randrange(10**9)
            store.insert(k, v)
            model[k] = v


def test_remotes_are_gits(tmp_path):
    s = new_store(tmp_path / "a")
    try:
        assert gr.list_remotes(s) == {}
        gr.add_remote(s, "origin", str(tmp_path / "r.git"))
        gr.add_remote(s, "up", "git://127.0.0.1:9/x.git")
        assert gr.list_remotes(s) == {"origin": str(tmp_path / "r.git"),
                                      "up": "git://127.0.0.1:9/x.git"}
        out = git(tmp_path / "a", "remote", "-v")
        assert f"origin\t{tmp_path / 'r.git'} (fetch)" in out
        assert "up\tgit://127.0.0.1:9/x.git (push)" in out
        with pytest.raises(ValueError, match="already exists"):
            gr.add_remote(s, "up", "/elsewhere")
        for bad in ("", "a b", "x/y", "-x", "a..b"):
            with pytest.raises(ValueError):
                gr.add_remote(s, bad, "/p")
        with pytest.raises(TypeError):
            gr.add_remote(s, 3, "/p")
        with pytest.raises(TypeError):
            gr.add_remote(s, "z", 3)
        with pytest.raises(ValueError, match="no remote named 'nope'"):
            gr.remove_remote(s, "nope")
        with pytest.raises(ValueError, match="no remote named 'nope'"):
            gr.fetch(s, "nope")
        assert gr.list_remotes(s) == {"origin": str(tmp_path / "r.git"),
                                      "up": "git://127.0.0.1:9/x.git"}
        gr.remove_remote(s, "up")
        assert gr.list_remotes(s) == {"origin": str(tmp_path / "r.git")}
        assert "up" not in git(tmp_path / "a", "remote")
        # git's own remotes are ours
        git(tmp_path / "a", "remote", "add", "byhand", "/some/where")
        assert gr.list_remotes(s)["byhand"] == "/some/where"
    finally:
        s.close()
    m = VersionedKvStore(tmp_path / "m", StorageBackend.InMemory)
    with pytest.raises(ValueError, match="Git-backed"):
        gr.list_remotes(m)
    with pytest.raises(TypeError):
        gr.list_remotes("not a store")


def _url(kind: str, tmp_path, daemon_info=None) -> tuple[str, str]:
    """(url to use, path of the bare repository) for a transport kind."""
    if kind == "path":
        return bare(tmp_path / "remote.git"), str(tmp_path / "remote.git")
    if kind == "file":
        p = bare(tmp_path / "remote.git")
        return "file://" + p, p
    if kind == "ssh":   # through the ssh stand-in (the port only travels to it)
        p = bare(tmp_path / "remote.git")
        return f"ssh://prolly@127.0.0.1:2222{p}", p
    base, port = daemon_info
    p = bare(base / "remote.git")
    return f"git://127.0.0.1:{port}/remote.git", p


@pytest.mark.parametrize("kind", ["path", "file", "git", "ssh"])
def test_push_clone_pull_roundtrip(tmp_path, kind, request):
    info = request.getfixturevalue("daemon") if kind == "git" else None
    log = request.getfixturevalue("ssh_standin") if kind == "ssh" else None
    url, remote_path = _url(kind, tmp_path, info)
    a = new_store(tmp_path / "a")
    model: dict = {}
    fill(a, model, 3000, 1)
    a.commit("load")
    gr.add_remote(a, "origin", url)
    r = gr.push(a)
    assert r["status"] == "created" and r["new"] == a.current_commit()
    assert git(remote_path, "rev-parse", "refs/heads/main").strip() == a.current_commit()
    fsck(remote_path)
    b = gr.clone(url, tmp_path / "b")
    try:
        assert b.path == str(tmp_path / "b" / "data")
        assert contents(b) == model
        assert b.current_branch() == "main" and b.current_commit() == a.current_commit()
        assert gr.list_remotes(b) == {"origin": url}
        assert git(tmp_path / "b", "status", "--porcelain") == ""
        fsck(tmp_path / "b")
        # b changes and pushes (fast-forward); a pulls (fast-forward)
        fill(b, model, 200, 2)
        b.commit("from b")
        assert gr.push(b)["status"] == "fast-forward"
        fsck(remote_path)
        p = gr.pull(a)
        assert p["merged"] == "fast-forward" and contents(a) == model
        assert a.current_commit() == b.current_commit()
        assert gr.pull(a)["merged"] == "up-to-date"
        # both change disjoint keys: a's push is refused, pull merges (two parents)
        model_a, model_b = dict(model), dict(model)
        a.insert(b"only-a", b"1")
        model_a[b"only-a"] = b"1"
        a.commit("a side")
        b.insert(b"only-b", b"2")
        model_b[b"only-b"] = b"2"
        b.commit("b side")
        gr.push(b)
        remote_tip = git(remote_path, "rev-parse", "main").strip()
        with pytest.raises(NonFastForwardError, match="pull"):
            gr.push(a)
        assert git(remote_path, "rev-parse", "main").strip() == remote_tip  # unchanged
        before = a.current_commit()
        p = gr.pull(a)
        assert p["merged"] == "merge"
        merged = a.commit_info()
        assert merged["parents"] == (before, remote_tip) or \
            list(merged["parents"]) == [before, remote_tip]
        assert contents(a) == {**model_a, **model_b}
        assert gr.push(a)["status"] == "fast-forward"
        fsck(remote_path)
        gr.pull(b)
        assert contents(b) == contents(a) == {**model_a, **model_b}
        # git itself sees a two-parent merge on the remote
        assert len(git(remote_path, "rev-list", "--parents", "-n1", "main").split()) == 3
        if log is not None:   # every transfer went through ssh, as Git runs it
            calls = ssh_log(log)
            assert {c["host"] for c in calls} == {"prolly@127.0.0.1"}
            assert {c["port"] for c in calls} == {"2222"}
            assert {c["command"] for c in calls} == {
                f"git-upload-pack '{remote_path}'", f"git-receive-pack '{remote_path}'"}
            # clone, 4 pushes, 3 pulls, one more pull: each opens a connection
            assert len(calls) >= 9
    finally:
        b.close()
        a.close()


def test_conflicts_force_and_fetch_only(tmp_path):
    url = bare(tmp_path / "r.git")
    a = VersionedKvStore(tmp_path / "a")
    a.insert(b"k", b"base")
    a.commit("base")
    gr.add_remote(a, "origin", url)
    gr.push(a)
    b = gr.clone(url, tmp_path / "b")
    b.insert(b"k", b"from-b")
    b.commit("b")
    gr.push(b)
    a.insert(b"k", b"from-a")
    a.commit("a")
    head = a.current_commit()
    # fetch moves only the tracking ref
    f = gr.fetch(a)
    assert f["updated"]["main"][1] == b.current_commit()
    assert a.current_commit() == head
    assert a.resolve_ref(b.current_commit()) == b.current_commit()
    assert a.get_at(b.current_commit(), b"k") == b"from-b"
    # an unresolved conflict changes nothing
    with pytest.raises(MergeConflictError):
        gr.pull(a, conflict_resolution=lambda c: __import__(
            "prollytree.versioning", fromlist=["Unresolved"]).Unresolved)
    assert a.current_commit() == head and a.get(b"k") == b"from-a"
    # default resolution keeps ours; TakeSource takes theirs
    gr.pull(a, conflict_resolution=ConflictResolution.TakeSource)
    assert a.get(b"k") == b"from-b"
    assert a.commit_info()["parents"][1] == b.current_commit()
    # a force push over a diverged remote
    b.insert(b"k", b"b-again")
    b.commit("b2")
    gr.push(b)
    a.insert(b"z", b"1")
    a.commit("a2")
    with pytest.raises(NonFastForwardError):
        gr.push(a)
    r = gr.push(a, force=True)
    assert r["status"] == "forced"
    assert git(url, "rev-parse", "main").strip() == a.current_commit()
    fsck(url)
    # pushing another branch, and its tracking ref
    a.create_branch("feature")
    a.insert(b"f", b"1")
    a.commit("feature work")
    assert gr.push(a, "origin", "feature")["status"] == "created"
    assert git(url, "rev-parse", "feature").strip() == a.current_commit()
    assert "origin/feature" in git(tmp_path / "a", "branch", "-r")
    with pytest.raises(UnknownRefError):
        gr.push(a, "origin", "no-such-branch")
    with pytest.raises(UnknownRefError):
        gr.pull(b, "origin", "no-such-branch")
    # a branch deleted on the remote loses its tracking ref at the next fetch
    git(url, "branch", "-D", "feature")
    f = gr.fetch(a)
    assert f["updated"]["feature"][1] is None
    assert "origin/feature" not in git(tmp_path / "a", "branch", "-r")
    with pytest.raises(TypeError):
        gr.push(a, force="yes")
    a.close()
    b.close()


def test_errors_change_nothing(tmp_path):
    a = VersionedKvStore(tmp_path / "a")
    a.insert(b"k", b"v")
    a.commit("c")
    gr.add_remote(a, "origin", str(tmp_path / "missing.git"))
    refs = git(tmp_path / "a", "show-ref")
    with pytest.raises(RemoteError):
        gr.fetch(a)
    with pytest.raises(RemoteError):
        gr.push(a)
    assert git(tmp_path / "a", "show-ref") == refs
    with pytest.raises(RemoteError):
        gr.clone(tmp_path / "missing.git", tmp_path / "c")
    assert not (tmp_path / "c").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ValueError, match="not an empty directory"):
        gr.clone(tmp_path / "a", tmp_path / "full")
    assert os.listdir(tmp_path / "full") == ["f"]
    # an empty target directory is fine and stays when the clone fails
    (tmp_path / "empty").mkdir()
    with pytest.raises(RemoteError):
        gr.clone(tmp_path / "missing.git", tmp_path / "empty")
    assert os.listdir(tmp_path / "empty") == []
    with pytest.raises(TypeError):
        gr.clone(tmp_path / "a", 5)
    a.close()


def test_plain_git_clone_push_pull_keep_working(tmp_path):
    # a repository with code and a dataset in a subdirectory
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "README.md").write_text("hello\n")
    git(work, "add", "README.md")
    git(work, "commit", "-q", "-m", "code")
    s = VersionedKvStore(work / "data" / "set")
    model: dict = {}
    fill(s, model, 1500, 7)
    s.commit("data")
    s.close()
    assert git(work, "status", "--porcelain") == ""
    url = bare(tmp_path / "r.git")
    git(work, "push", "-q", url, "main")
    fsck(url)
    # plain git clone, then open the dataset and read everything
    git(tmp_path, "clone", "-q", url, "plain")
    p = VersionedKvStore.open(tmp_path / "plain" / "data" / "set")
    assert contents(p) == model
    # git clone wrote the dataset's files into the work tree; once the store commits
    # they are stale copies that `git pull` would refuse to overwrite: drop them (the
    # store keeps its entries in the index, skip-worktree)
    import shutil
    shutil.rmtree(tmp_path / "plain" / "data" / "set" / ".prolly")
    p.insert(b"via-git", b"1")
    p.commit("written in a plain clone")
    model[b"via-git"] = b"1"
    p.close()
    git(tmp_path / "plain", "push", "-q", "origin", "main")
    fsck(url)
    # our clone finds the dataset, checks out the other files, keeps status clean
    c = gr.clone(url, tmp_path / "ours")
    assert c.path == str(tmp_path / "ours" / "data" / "set")
    assert (tmp_path / "ours" / "README.md").read_text() == "hello\n"
    assert not (tmp_path / "ours" / "data" / "set" / ".prolly").exists()
    assert git(tmp_path / "ours", "status", "--porcelain") == ""
    assert contents(c) == model
    c.insert(b"via-ours", b"2")
    c.commit("ours")
    model[b"via-ours"] = b"2"
    gr.push(c)
    c.close()
    # plain git pull brings it to the plain clone
    git(tmp_path / "plain", "pull", "-q", "--ff-only")
    p = VersionedKvStore.open(tmp_path / "plain" / "data" / "set")
    assert contents(p) == model
    p.close()
    # a repository holding two datasets: clone must be told which
    s2 = VersionedKvStore(work / "other")
    s2.insert(b"x", b"y")
    s2.commit("second dataset")
    s2.close()
    git(work, "pull", "-q", "--no-rebase", url, "main")
    git(work, "push", "-q", url, "main")
    with pytest.raises(ValueError, match="2 datasets"):
        gr.clone(url, tmp_path / "two")
    assert not (tmp_path / "two").exists()
    o = gr.clone(url, tmp_path / "two", dataset="other")
    assert contents(o) == {b"x": b"y"}
    o.close()


@pytest.mark.parametrize("seed", [11, 12])
def test_model_random_sync(tmp_path, seed):
    """Three clones of one remote doing random commits, pushes (retrying after a pull
    when refused) and pulls; after each step every store equals its dict model, and at
    the end all agree and the remote is fsck-clean."""
    rnd = random.Random(seed)
    url = bare(tmp_path / "r.git")
    first = VersionedKvStore(tmp_path / "s0")
    first.insert(b"seed", b"0")
    first.commit("seed")
    gr.add_remote(first, "origin", url)
    gr.push(first)
    stores = [first] + [gr.clone(url, tmp_path / f"s{i}") for i in (1, 2)]
    models = [{b"seed": b"0"} for _ in stores]
    try:
        for step in range(14):
            i = rnd.randrange(3)
            s, m = stores[i], models[i]
            action = rnd.choice(["commit", "commit", "push", "pull"])
            if action == "commit":
                for _ in range(rnd.randrange(1, 30)):
                    # each store writes its own key space: merges never conflict
                    k = b"s%d-%03d" % (i, rnd.randrange(60))
                    if k in m and rnd.random() < 0.3:
                        s.delete(k)
                        del m[k]
                    else:
                        v = b"%d" % rnd.randrange(1000)
                        s.insert(k, v)
                        m[k] = v
                s.commit(f"step {step}")
            elif action == "push":
                try:
                    gr.push(s)
                except NonFastForwardError:
                    gr.pull(s)
                    gr.push(s)
                m.clear()
                m.update(contents(s))
            else:
                gr.pull(s)
                m.clear()
                m.update(contents(s))
            assert contents(s) == m
        # converge: everyone pushes (pulling first), then everyone pulls
        for s in stores:
            gr.pull(s)
            gr.push(s)
        for s in stores:
            gr.pull(s)
        union: dict = {}
        for s in stores:
            assert contents(s) == contents(stores[0])
        # every key a store wrote last is as it wrote it (own key spaces)
        for i, s in enumerate(stores):
            own = {k: v for k, v in contents(s).items() if k.startswith(b"s%d-" % i)}
            union.update(own)
        assert contents(stores[0]) == {**union, b"seed": b"0"}
        fsck(url)
    finally:
        for s in stores:
            s.close()


def test_store_methods_delegate(tmp_path):
    url = bare(tmp_path / "r.git")
    a = VersionedKvStore(tmp_path / "a")
    a.insert(b"k", b"v")
    a.commit("c")
    a.add_remote("origin", url)
    assert a.list_remotes() == {"origin": url}
    assert a.push()["status"] == "created"
    b = VersionedKvStore.clone(url, tmp_path / "b")
    assert b.get(b"k") == b"v"
    b.insert(b"k2", b"v2")
    b.commit("c2")
    b.push("origin", "main")
    assert a.fetch()["updated"]["main"][1] == b.current_commit()
    assert a.pull()["merged"] == "fast-forward" and a.get(b"k2") == b"v2"
    a.remove_remote("origin")
    assert a.list_remotes() == {}
    a.close()
    b.close()


def test_push_to_checked_out_branch_is_refused(tmp_path):
    """As Git's receive-pack does by default: a non-bare target's checked-out branch
    does not move under its work tree; other branches do."""
    a = VersionedKvStore(tmp_path / "a")
    a.insert(b"k", b"v")
    a.commit("c")
    b = gr.clone(tmp_path / "a", tmp_path / "b")
    b.insert(b"k", b"w")
    b.commit("c2")
    tip = a.current_commit()
    with pytest.raises(RemoteError, match="checked out"):
        gr.push(b)
    assert a.current_commit() == tip and a.get(b"k") == b"v"
    b.create_branch("side")
    assert gr.push(b, "origin", "side")["status"] == "created"
    a.close()
    # (a fresh store: a store open in this process learnt the repository's node map
    # before the push; see the note in docs/sync-http.md)
    a = VersionedKvStore.open(tmp_path / "a")
    assert a.get_at("side", b"k") == b"w"
    fsck(tmp_path / "a")
    a.close()
    b.close()


def test_branches_model(tmp_path):
    """Several branches travel: a dict model per branch, checked on both sides after
    each push / fetch / pull, and against the tracking refs' commits."""
    rnd = random.Random(5)
    url = bare(tmp_path / "r.git")
    a = VersionedKvStore(tmp_path / "a")
    models = {"main": {}}
    fill(a, models["main"], 300, 1)
    a.commit("main 1")
    for name in ("dev", "exp"):
        a.create_branch(name, "main")
        models[name] = dict(models["main"])
        fill(a, models[name], 80, hash(name) % 100)
        a.commit(f"{name} 1")
    gr.add_remote(a, "origin", url)
    for name in models:
        assert gr.push(a, "origin", name)["status"] == "created"
    b = gr.clone(url, tmp_path / "b", branch="dev")
    assert b.current_branch() == "dev" and contents(b) == models["dev"]
    f = gr.fetch(b)
    assert f["updated"] == {}
    for name, model in models.items():
        tip = git(tmp_path / "b", "rev-parse", f"refs/remotes/origin/{name}").strip()
        assert contents(b, tip) == model
    for round_ in range(3):
        name = rnd.choice(sorted(models))
        # b works on `name` (creating its local branch from the tracking ref)
        if name not in b.list_branches():
            tip = git(tmp_path / "b", "rev-parse", f"refs/remotes/origin/{name}").strip()
            b.branch(name, tip)
        b.checkout(name)
        fill(b, models[name], 40, 100 + round_)
        b.commit(f"b round {round_}")
        gr.push(b, "origin", name)
        assert contents(b) == models[name]
        # a pulls that branch, and the others stay as they were
        a.checkout(name)
        r = gr.pull(a)
        assert r["merged"] == "fast-forward"
        for n, model in models.items():
            assert contents(a, n) == model, n
    fsck(url)
    a.close()
    b.close()


def test_ssh_remote_alongside_the_git_binary(tmp_path, ssh_standin, monkeypatch):
    """The store and ``git`` reach one ssh:// remote the same way (GIT_SSH_COMMAND, then
    core.sshCommand), each seeing the other's pushes; a failing remote command is a
    RemoteError that changes nothing."""
    remote = bare(tmp_path / "r.git")
    url = f"ssh://127.0.0.1{remote}"
    a = new_store(tmp_path / "a")
    model = {}
    fill(a, model, 500, 7)
    a.commit("load")
    a.add_remote("origin", url)
    assert a.push()["status"] == "created"
    fsck(remote)
    # the git binary clones it over the same ssh, and pushes a commit of its own
    git(tmp_path, "clone", "-q", url, "g")
    assert git(tmp_path / "g", "rev-parse", "HEAD").strip() == a.current_commit()
    (tmp_path / "g" / "NOTES").write_text("from git\n")
    git(tmp_path / "g", "add", "NOTES")
    git(tmp_path / "g", "commit", "-q", "-m", "notes")
    git(tmp_path / "g", "push", "-q", "origin", "main")
    tip = git(remote, "rev-parse", "main").strip()
    assert a.pull()["merged"] == "fast-forward" and a.current_commit() == tip
    assert contents(a) == model
    # core.sshCommand is honoured when the environment names no ssh program
    monkeypatch.delenv("GIT_SSH_COMMAND")
    git(tmp_path / "a", "config", "core.sshCommand", str(tmp_path / "fake-ssh"))
    a.insert(b"over", b"config")
    a.commit("via core.sshCommand")
    n = len(ssh_log(ssh_standin))
    assert a.push()["status"] == "fast-forward"
    assert len(ssh_log(ssh_standin)) == n + 1
    assert git(remote, "rev-parse", "main").strip() == a.current_commit()
    # a remote command that fails (no repository there) is a RemoteError, nothing moves
    a.add_remote("nowhere", f"ssh://127.0.0.1{tmp_path / 'missing.git'}")
    refs = git(tmp_path / "a", "show-ref")
    with pytest.raises(RemoteError):
        a.fetch("nowhere")
    with pytest.raises(RemoteError):
        a.push("nowhere")
    assert git(tmp_path / "a", "show-ref") == refs
    with pytest.raises(RemoteError):
        VersionedKvStore.clone(f"ssh://127.0.0.1{tmp_path / 'missing.git'}", tmp_path / "c")
    assert not (tmp_path / "c").exists()
    a.close()
