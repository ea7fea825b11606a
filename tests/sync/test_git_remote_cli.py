"""``git-prolly clone | fetch | pull | push | remote | serve`` through the installed
executable (subprocess), against bare repositories and a real ``git-prolly serve``."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import EXE, Runner, _env
from tests.cli.test_transfer import _run_with_tty_stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    return _env(home)


@pytest.fixture
def origin(tmp_path: Path, env: dict) -> Runner:
    """A runner in tmp_path/a/data: a Git dataset with two keys committed."""
    a = tmp_path / "a"
    a.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=a, check=True, env=env)
    gp = Runner(a, env)
    gp.ok("init", "data")
    ds = Runner(a / "data", env)
    ds.ok("set", "k1", "one")
    ds.ok("set", "k2", "two")
    ds.ok("commit", "-m", "first")
    return ds


def test_remote_push_clone_pull_cli(tmp_path, env, origin):
    ds = origin
    bare = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True,
                   env=env)
    ds.ok("remote", "add", "origin", str(bare))
    assert ds.ok("remote", "list", "--json").json() == [{"name": "origin",
                                                          "url": str(bare)}]
    assert ds.ok("remote", "list", "-v").stdout == f"origin\t{bare}\n"
    assert ds.ok("remote", "list").stdout == "origin\n"
    assert ds.fails(2, "remote", "add", "origin", "/x").stderr.startswith(
        "error: remote 'origin' already exists")
    r = ds.ok("push", "--json").json()
    assert r["status"] == "created" and r["branch"] == "main"
    assert ds.git("rev-parse", "main", cwd=bare).strip() == r["new"]
    assert "new branch" in ds.ok("push").stdout or "up to date" in ds.ok("push").stdout
    # clone into a new directory
    top = Runner(tmp_path, env)
    c = top.ok("clone", str(bare), "b", "--json").json()
    assert c["branch"] == "main" and c["commit"] == r["new"] and c["keys"] == 2
    assert c["path"] == str(tmp_path / "b" / "data")
    other = Runner(tmp_path / "b" / "data", env)
    assert other.ok("get", "k1").stdout == "one\n"
    assert other.git("status", "--porcelain") == ""
    # default directory name from the URL
    top.ok("clone", str(bare))
    assert Runner(tmp_path / "r" / "data", env).ok("get", "k2").stdout == "two\n"
    # other pushes, origin pulls (fast-forward)
    other.ok("set", "k3", "three")
    other.ok("commit", "-m", "from b")
    assert "k3" not in ds.ok("list").stdout
    out = other.ok("push").stdout
    assert out.startswith(f"To {bare}\n")
    p = ds.ok("pull", "--json").json()
    assert p["result"] == "fast-forward" and p["updated"]["main"]["new"] == p["commit"]
    assert ds.ok("get", "k3").stdout == "three\n"
    assert ds.ok("pull").stdout.endswith("Already up to date.\n")
    # both change k1: push refused (exit 1), pull stops on the conflict (exit 1)
    other.ok("set", "k1", "theirs")
    other.ok("commit", "-m", "b changes k1")
    other.ok("push")
    ds.ok("set", "k1", "ours")
    ds.ok("commit", "-m", "a changes k1")
    head = ds.ok("log", "-n", "1", "--json").json()[0]["id"]
    e = ds.fails(1, "push")
    assert "pull" in e.stderr
    e = ds.fails(1, "pull")
    assert "1 conflict(s)" in e.stderr and "b'k1'" in e.stderr
    assert ds.ok("log", "-n", "1", "--json").json()[0]["id"] == head
    assert ds.ok("get", "k1").stdout == "ours\n"
    f = ds.ok("fetch", "--json").json()
    assert f["remote"] == "origin" and f["updated"] == {}
    p = ds.ok("pull", "--strategy", "take-source", "--json").json()
    assert p["result"] == "merge"
    assert ds.ok("get", "k1").stdout == "theirs\n"
    assert len(ds.ok("log", "-n", "1", "--json").json()[0]["parents"]) == 2
    ds.ok("push")
    # a forced push
    other.ok("set", "k9", "x")
    other.ok("commit", "-m", "diverge")
    other.fails(1, "push")
    assert "forced update" in other.ok("push", "--force").stdout
    # fetch output, then remove the remote
    assert "origin/main" in ds.ok("fetch").stdout
    ds.ok("remote", "remove", "origin")
    assert ds.ok("remote", "list", "--json").json() == []
    ds.fails(2, "fetch")
    # failures: a bad URL leaves no directory behind
    top.fails(2, "clone", str(tmp_path / "nope.git"), "z")
    assert not (tmp_path / "z").exists()
    rc = subprocess.run(["git", "fsck", "--strict"], cwd=bare, capture_output=True)
    assert rc.returncode == 0, rc.stderr


def test_serve_cli(tmp_path, env, origin):
    ds = origin
    port = free_port()
    ds.fails(2, "serve", "--allow-push")  # a token is required
    senv = dict(env)
    senv["GIT_PROLLY_TOKEN"] = "sek"
    proc = subprocess.Popen([EXE, "serve", "--port", str(port), "--allow-push"],
                            cwd=ds.cwd, env=senv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    top = Runner(tmp_path, env)
    try:
        deadline = time.time() + 90   # a loaded 2-core machine imports slowly
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.time() < deadline, "server did not start"
                time.sleep(0.1)
        # on a terminal, the HTTP transfer draws its bars (bytes received, objects checked)
        code, _, term = _run_with_tty_stderr(["clone", url, "tty-web"], tmp_path, env)
        assert code == 0, term
        assert b"Receiving objects" in term and b"Checking objects" in term, term
        c = top.ok("clone", url, "web", "--json").json()
        assert c["keys"] == 2
        web = Runner(Path(c["path"]), env)
        assert c["path"] == str(tmp_path / "web" / "data")
        assert web.ok("get", "k2").stdout == "two\n"
        web.ok("set", "k4", "four")
        web.ok("commit", "-m", "over http")
        e = web.fails(2, "push")
        assert "401" in e.stderr
        e = web.fails(2, "push", "--token", "wrong")
        assert "403" in e.stderr
        r = web.ok("push", "--token", "sek", "--json").json()
        assert r["status"] == "fast-forward"
        assert ds.ok("get", "k4").stdout == "four\n"
        ds.ok("set", "k5", "five")
        ds.ok("commit", "-m", "server side")
        assert web.ok("pull", "--json").json()["result"] == "fast-forward"
        assert web.ok("get", "k5").stdout == "five\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert b"serving" in proc.stderr.read()
    assert proc.returncode in (0, -signal.SIGTERM)


def test_remote_list_hides_tokens(origin):
    origin.ok("remote", "add", "web", "http://s3cret@127.0.0.1:9/")
    assert "s3cret" not in origin.ok("remote", "list", "-v").stdout
    assert origin.ok("remote", "list", "--json").json() == [
        {"name": "web", "url": "http://***@127.0.0.1:9/"}]
    e = origin.fails(2, "fetch", "web")
    assert "s3cret" not in e.stderr


def test_transfers_draw_progress_bars_on_a_terminal(tmp_path, env, origin):
    """push / clone draw a rich bar per phase on stderr when it is a terminal, counting
    the phase's objects; piped, stderr stays empty."""
    import json
    ds = origin
    bare = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True,
                   env=env)
    ds.ok("remote", "add", "origin", str(bare))
    code, out, term = _run_with_tty_stderr(["push", "--json"], ds.cwd, env)
    assert code == 0, term
    n = json.loads(out)["objects_sent"]
    assert n > 0 and n == len(ds.git("rev-list", "--objects", "--all", cwd=bare).split("\n")) - 1
    assert b"Copying objects" in term and f"{n}/{n}".encode() in term, term
    code, _, term = _run_with_tty_stderr(["clone", str(bare), "b"], tmp_path, env)
    assert code == 0, term
    assert b"Copying objects" in term and f"{n}/{n}".encode() in term, term
    assert b"Learning dataset" in term, term
    Runner(tmp_path, env).ok("clone", str(bare), "c")     # piped: stderr empty


def test_serve_cli_for_a_file_dataset(tmp_path, env):
    """git prolly serve in a File dataset serves its node store: clone and push through
    the store methods, a token required to write."""
    from prollytree.errors import AuthenticationError
    from prollytree.versioning import StorageBackend, VersionedKvStore
    top = Runner(tmp_path, env)
    top.ok("init", "fds", "--storage", "file")
    ds = Runner(tmp_path / "fds", env)
    ds.ok("set", "k1", "one")
    ds.ok("commit", "-m", "first")
    port = free_port()
    proc = subprocess.Popen([EXE, "serve", "--port", str(port), "--allow-push"],
                            cwd=ds.cwd, env=dict(env, GIT_PROLLY_TOKEN="sek"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90   # a loaded 2-core machine imports slowly
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.time() < deadline, "server did not start"
                time.sleep(0.1)
        c = VersionedKvStore.clone(url, tmp_path / "c")
        assert c.storage_backend() is StorageBackend.File
        assert c.get(b"k1") == b"one"
        c.insert(b"k2", b"two")
        c.commit("second")
        with pytest.raises(AuthenticationError):
            c.push()
        assert c.push(token="sek")["status"] == "fast-forward"
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert b"serving" in proc.stderr.read()
    assert ds.ok("get", "k2").stdout == "two\n"
