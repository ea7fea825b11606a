"""Staged changes survive kill -9; two processes committing never lose a commit."""

import subprocess
import sys
import textwrap

import pytest

from prollytree.versioning import StorageBackend, VersionedKvStore

from .conftest import git

PERSISTENT = [StorageBackend.Git, StorageBackend.File, StorageBackend.RocksDB]


def run_py(code, *args, check=True):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                       capture_output=True, text=True, timeout=120)
    if check and r.returncode not in (0, -9):
        raise AssertionError(r.stderr)
    return r


@pytest.mark.parametrize("backend", PERSISTENT, ids=lambda b: b.name)
def test_staged_changes_survive_kill_9(tmp_path, backend):
    path = str(tmp_path / "ds")
    r = run_py("""
        import os, signal, sys
        from prollytree.versioning import VersionedKvStore, StorageBackend
        s = VersionedKvStore(sys.argv[1], StorageBackend[sys.argv[2]])
        s.insert(b"committed", b"1")
        s.commit("c")
        for i in range(100):
            s.insert(b"k%03d" % i, b"v%d" % i)
        s.delete(b"committed")
        os.kill(os.getpid(), signal.SIGKILL)
        """, path, backend.name)
    assert r.returncode == -9
    s = VersionedKvStore(path, backend)
    st = s.status()
    assert len(st) == 101 and (b"committed", "deleted") in st
    assert s.get(b"k042") == b"v42" and s.get(b"committed") is None
    assert s.get_keys_at_ref("HEAD") == [(b"committed", b"1")]
    s.commit("after crash")
    assert len(s.list_keys()) == 100
    s.close()


def test_torn_journal_tail_ignored(tmp_path):
    path = tmp_path / "ds"
    s = VersionedKvStore(str(path), StorageBackend.File)
    s.insert(b"a", b"1")
    s.insert(b"b", b"2")
    s.close()
    journal = path / "staging.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-3])          # the last record cut short
    s = VersionedKvStore(str(path), StorageBackend.File)
    assert s.status() == [(b"a", "added")]
    s.insert(b"c", b"3")                    # appends after the torn record...
    s.commit("c")                           # ...and the commit takes what is intact
    assert s.list_keys() in ([b"a"], [b"a", b"c"])
    s.close()


def test_two_processes_commit_concurrently(tmp_path):
    path = str(tmp_path / "ds")
    VersionedKvStore(path).close()
    code = """
        import sys
        from prollytree.versioning import VersionedKvStore
        s = VersionedKvStore(sys.argv[1])
        for i in range(15):
            s.insert(b"%s-%02d" % (sys.argv[2].encode(), i), b"x")
            s.commit(f"{sys.argv[2]} {i}")
        s.close()
        """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), path, w],
                              stderr=subprocess.PIPE) for w in ("p1", "p2")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    s = VersionedKvStore(path)
    msgs = [e["message"] for e in s.log()]
    assert sorted(m for m in msgs if m != "Initial commit") == sorted(
        f"{w} {i}" for w in ("p1", "p2") for i in range(15))
    assert len(s.list_keys()) == 30
    s.close()
    assert git(path, "fsck", "--strict", "--no-dangling").stdout.strip() == ""
    assert git(path, "rev-list", "--count", "main").stdout.strip() == "31"


def test_two_store_objects_see_each_other(tmp_path):
    path = str(tmp_path / "ds")
    a = VersionedKvStore(path)
    b = VersionedKvStore(path)
    a.insert(b"x", b"1")
    assert b.get(b"x") == b"1" and b.status() == [(b"x", "added")]   # shared staging
    c = b.commit("b commits what a staged")
    assert a.current_commit() == c and a.status() == [] and a.get(b"x") == b"1"
    a.close()
    b.close()


def test_file_backend_second_writer_gets_clear_error(tmp_path, monkeypatch):
    path = str(tmp_path / "ds")
    s = VersionedKvStore(path, StorageBackend.File)
    r = run_py("""
        import os, sys
        os.environ["PROLLYTREE_LOCK_TIMEOUT"] = "0.2"
        from prollytree.versioning import VersionedKvStore, StorageBackend
        try:
            VersionedKvStore(sys.argv[1], StorageBackend.File)
        except ValueError as e:
            print(type(e).__name__, e)
        """, path)
    assert "StoreLockedError" in r.stdout and "locked" in r.stdout
    s.close()
