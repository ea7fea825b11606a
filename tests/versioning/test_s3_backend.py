"""VersionedKvStore on S3 (StorageBackend.S3) against a real SeaweedFS server.

The generic API tests (test_api, test_kv_store, test_named_trees, ...) run on S3 too,
through ``make_store``; these tests cover what is S3's own: URL locations, probing
without creating anything, the per-machine state directory, several "machines" (one
state directory each) committing to one dataset, and damage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from prollytree.errors import CorruptNodeError, CorruptRefError
from prollytree.storage.s3 import parse_s3_url
from prollytree.versioning import StorageBackend, VersionedKvStore
from prollytree.versioning.store_backend import S3_STATE_ENV, s3_state_dir

STATE = S3_STATE_ENV


@pytest.fixture
def url(s3_server):
    return s3_server.prefix_url("vkv")


@contextmanager
def machine(state_dir):
    """Act as another machine: its own per-machine state directory."""
    saved = os.environ.get(STATE)
    os.environ[STATE] = str(state_dir)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(STATE, None)
        else:
            os.environ[STATE] = saved


def listing(server, url):
    bucket, prefix = parse_s3_url(url)
    got = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return sorted(o["Key"][len(prefix) + 1:] for o in got.get("Contents", []))


def test_probe_and_open_create_nothing_then_recognise_the_dataset(s3_server, url, tmp_path):
    with machine(tmp_path / "a"):
        assert VersionedKvStore.probe(url) is None
        with pytest.raises(ValueError, match="not a dataset"):
            VersionedKvStore.open(url)
        assert listing(s3_server, url) == []            # probing wrote nothing
        assert not (tmp_path / "a").exists()
        with VersionedKvStore(url) as s:                # an s3:// location means S3
            assert s.storage_backend() is StorageBackend.S3
            assert s.path == url                        # not turned into a local path
            s.insert(b"k", b"v")
            s.commit("one")
        keys = listing(s3_server, url)
        assert "refs/versioning%2Fconfig" in keys and "refs/HEAD" in keys
        assert "refs/refs%2Fheads%2Fmain" in keys
        # per-machine state lives locally, under sha256(url)
        state = s3_state_dir(url)
        assert state.startswith(str(tmp_path / "a"))
        assert os.path.isfile(os.path.join(state, "staging.journal"))
    with machine(tmp_path / "b"):                       # another machine
        assert VersionedKvStore.probe(url) is StorageBackend.S3
        with VersionedKvStore.open(url) as s:
            assert s.get(b"k") == b"v"
            assert [c["message"] for c in s.log()] == ["one", "Initial commit"]
        with pytest.raises(ValueError, match="S3"):
            VersionedKvStore.open(url, StorageBackend.File)


def test_bad_locations(s3_server, tmp_path):
    with machine(tmp_path):
        with pytest.raises(ValueError, match="bucket"):
            VersionedKvStore("s3://A_bad_bucket/x")
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            VersionedKvStore(str(tmp_path / "d"), StorageBackend.S3)
        with pytest.raises(ValueError, match="directory"):
            VersionedKvStore("s3://prolly-tests/x", StorageBackend.File)
    assert not (tmp_path / "d").exists()


def test_default_state_dir_is_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(STATE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    d = s3_state_dir("s3://b/p")
    assert os.path.dirname(d) == str(tmp_path / "prollytree" / "s3")
    assert d != s3_state_dir("s3://b/q")


def test_staged_changes_stay_per_machine_and_reopen_in_a_new_process(url, tmp_path):
    with machine(tmp_path / "a"), VersionedKvStore(url) as s:
        s.insert(b"committed", b"1")
        s.commit("c")
        s.insert(b"staged", b"2")
    code = ("import sys; from prollytree.versioning import VersionedKvStore\n"
            "s = VersionedKvStore.open(sys.argv[1])\n"
            "print(s.get(b'committed'), s.get(b'staged'), len(s.log()))\n"
            "s.insert(b'from-child', b'3'); print(s.commit('child'))\n")

    def child(state):
        env = dict(os.environ, **{STATE: str(state)})
        r = subprocess.run([sys.executable, "-c", code, url], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.split("\n")
    # another machine: sees the commits, not this machine's staging
    out_b = child(tmp_path / "b")
    assert out_b[0] == "b'1' None 2"
    # same machine: sees the staged change (and commits it with its own)
    out_a = child(tmp_path / "a")
    assert out_a[0] == "b'1' b'2' 3"
    with machine(tmp_path / "c"), VersionedKvStore.open(url) as s:
        assert dict(s.iter_items()) == {b"committed": b"1", b"staged": b"2",
                                        b"from-child": b"3"}
        assert [c["id"] for c in s.log()][:2] == [out_a[1], out_b[1]]
    with machine(tmp_path / "a"), VersionedKvStore.open(url) as s:
        assert s.staged() == []                         # committed by the child


def test_reads_see_other_machines_commits_and_lost_races_rebase(url, tmp_path):
    with machine(tmp_path / "a"):
        a = VersionedKvStore(url)
    with machine(tmp_path / "b"):
        b = VersionedKvStore(url)
    try:
        a.insert_batch([(b"x", b"a0"), (b"y", b"a0")])
        base = a.commit("base")
        assert b.get(b"x") == b"a0"                      # no reopen needed
        assert b.current_commit() == base
        # both stage; a commits first; b's commit loses the branch CAS and is rebased
        a.insert(b"x", b"a1")
        a.insert(b"only-a", b"1")
        a.delete(b"y")
        b.insert(b"x", b"b1")                            # same key, other value
        b.insert(b"only-b", b"1")
        # b read the tip before a's commit: make b's commit race by moving the branch
        # under it (a commits between b's staging and b's commit)
        ca = a.commit("from a")
        cb = b.commit("from b")
        model = {b"x": b"b1", b"only-a": b"1", b"only-b": b"1"}   # b's staged x wins
        assert dict(b.iter_items()) == model
        assert dict(a.iter_items()) == model             # a sees b's commit at once
        log = [c["id"] for c in a.log()]
        assert log[:3] == [cb, ca, base]                 # linear: b rebased onto a
        assert b.commit_info(cb)["parents"] == [ca]
    finally:
        a.close()
        b.close()


def test_lost_compare_and_swap_is_rebased_not_refused(url, tmp_path):
    """Force the race: another machine commits after this one has read the tip."""
    with machine(tmp_path / "a"):
        a = VersionedKvStore(url)
    with machine(tmp_path / "b"):
        b = VersionedKvStore(url)
    try:
        a.insert(b"k", b"a")
        a.commit("a0")
        b.insert(b"k", b"b")
        b.insert(b"kb", b"b")
        real = b.repo.write_commit
        raced = []

        def racing(branch, tip, trees, parents, message):
            if not raced:                               # once: a commits in between
                raced.append(True)
                a.insert(b"ka", b"a")
                a.insert(b"k", b"a2")
                raced.append(a.commit("a1"))
            return real(branch, tip, trees, parents, message)
        b.repo.write_commit = racing
        cb = b.commit("b0")
        assert len(raced) == 2
        assert b.commit_info(cb)["parents"] == [raced[1]]
        assert dict(a.iter_items()) == {b"k": b"b", b"kb": b"b", b"ka": b"a"}
    finally:
        a.close()
        b.close()


WORKER = r"""
import os, sys
from prollytree.versioning import VersionedKvStore
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = VersionedKvStore.open(url)
print("READY", flush=True)
sys.stdin.readline()
ids = []
for i in range(n):
    s.insert(b"%s-%03d" % (who.encode(), i), b"v%d" % i)
    if i % 2:
        s.insert(b"shared", who.encode())             # a key every process writes
    ids.append(s.commit(f"{who} {i}"))
s.close()
print(" ".join(ids), flush=True)
"""


def test_four_processes_committing_to_one_s3_dataset_lose_nothing(url, tmp_path):
    """Four "machines" (own state directories, so no shared lock) commit at once; every
    key and every reported commit id is in the history, which stays linear."""
    with machine(tmp_path / "init"), VersionedKvStore(url):
        pass
    n = 8
    procs = []
    for p in range(4):
        env = dict(os.environ, **{STATE: str(tmp_path / f"m{p}")})
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, url, f"p{p}", str(n)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env))
    for p in procs:
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    reported = {}
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reported[f"p{i}"] = out.split()
    with machine(tmp_path / "check"), VersionedKvStore.open(url) as s:
        items = dict(s.iter_items())
        for p in range(4):
            for i in range(n):
                assert items[b"p%d-%03d" % (p, i)] == b"v%d" % i
        assert items[b"shared"] in {b"p0", b"p1", b"p2", b"p3"}
        assert len(items) == 4 * n + 1
        log = s.log()
        ids = [c["id"] for c in log]
        assert len(ids) == 4 * n + 1                    # + the initial commit
        for who, mine in reported.items():
            assert len(mine) == n
            # each process's commits appear in its own order, each exactly once
            assert [c for c in reversed(ids) if c in set(mine)] == mine
        for c in log[:-1]:
            assert len(c["parents"]) == 1               # rebased, never a lost update


def test_damage_is_reported_not_served(s3_server, url, tmp_path):
    with machine(tmp_path / "a"), VersionedKvStore(url) as s:
        s.insert_batch([(b"k%04d" % i, b"v" * 40) for i in range(300)])
        s.commit("data")
        root = s.root_hash()
    bucket, prefix = parse_s3_url(url)
    client = s3_server.client()
    h = root.hex()
    client.put_object(Bucket=bucket, Key=f"{prefix}/nodes/{h[:2]}/{h}", Body=b"garbage")
    with machine(tmp_path / "b"):                      # no cached copy of the good node
        with pytest.raises(CorruptNodeError):
            with VersionedKvStore.open(url) as s:
                s.get(b"k0001")
    client.put_object(Bucket=bucket, Key=f"{prefix}/refs/refs%2Fheads%2Fmain", Body=b"x" * 5)
    for m in "ab":
        with machine(tmp_path / m), pytest.raises(CorruptRefError):
            VersionedKvStore.open(url)


CREATOR = r"""
import sys
from prollytree.versioning import VersionedKvStore
url, who = sys.argv[1], sys.argv[2]
sys.stdin.readline()
s = VersionedKvStore(url)                             # create (or join) the dataset
s.insert(who.encode(), b"1")
print(s.commit(who), flush=True)
s.close()
"""


def test_machines_creating_one_dataset_at_once_agree(url, tmp_path):
    """config, HEAD and the initial commit are created only if absent: three machines
    creating the dataset at the same moment end up with one history holding all."""
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, url, f"m{p}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, **{STATE: str(tmp_path / f"m{p}")}))
             for p in range(3)]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        ids.append(out.strip())
    with machine(tmp_path / "check"), VersionedKvStore.open(url) as s:
        assert dict(s.iter_items()) == {b"m0": b"1", b"m1": b"1", b"m2": b"1"}
        log = s.log()
        assert sorted(c["id"] for c in log[:3]) == sorted(ids)
        assert [c["message"] for c in log[3:]] == ["Initial commit"]
