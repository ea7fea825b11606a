"""Remotes of store-backed datasets (File, RocksDB, LMDB, InMemory, S3) through the
VersionedKvStore methods: clone / fetch / pull / push checked against a dict model per
branch, the nodes a push sends against the addresses the remote gained (brute force),
and every refused or failed call against the state before it."""

from __future__ import annotations

import os
import random

import pytest

from prollytree.errors import MergeConflictError, NonFastForwardError, RemoteError
from prollytree.storage import open_store
from prollytree.sync import open_dataset_store
from prollytree.versioning import (ConflictResolution, StorageBackend, Unresolved,
                                   VersionedKvStore)


def fill(store, model: dict, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(n):
        k = b"k%05d" % rnd.randrange(4 * n)
        if model and rnd.random() < 0.2:
            k = rnd.choice(sorted(model))
            store.delete(k)
            model.pop(k)
        else:
            v = b"v%d" % rnd.randrange(10**9)
            store.insert(k, v)
            model[k] = v


def addresses(path) -> set[bytes]:
    """Every record (node, root set, commit) of the dataset at ``path``."""
    with open_dataset_store(str(path), read_only=True) as st:
        return set(st.addresses())


def refs(path) -> dict:
    with open_dataset_store(str(path), read_only=True) as st:
        return dict(st.refs())


@pytest.mark.parametrize("kind", ["File", "RocksDB", "LMDB", "InMemory"])
def test_push_clone_pull_against_a_model(tmp_path, kind):
    hub = str(tmp_path / "hub")
    a = VersionedKvStore(tmp_path / "a", StorageBackend[kind])
    model = {b"k%06d" % i: b"v%d" % (i * 7) for i in range(12000)}
    a.insert_batch(sorted(model.items()))
    fill(a, model, 200, 1)
    a.commit("load")
    a.add_remote("origin", hub)
    assert a.list_remotes() == {"origin": hub}
    r = a.push()
    assert r["status"] == "created" and r["new"] == a.current_commit()
    assert r["nodes_sent"] == len(addresses(hub)) and r["bytes_sent"] > 0
    b = VersionedKvStore.clone(hub, tmp_path / "b")
    assert b.storage_backend() is StorageBackend.File
    assert dict(b.iter_items()) == model and b.current_commit() == a.current_commit()
    assert b.list_remotes() == {"origin": hub}
    assert [c["id"] for c in b.log()] == [c["id"] for c in a.log()]
    # b changes 5 keys and pushes: exactly the records the hub lacked travel
    fill(b, model, 5, 2)
    b.commit("from b")
    before = addresses(hub)
    r = b.push()
    assert r["status"] == "fast-forward"
    gained = addresses(hub) - before
    assert r["nodes_sent"] == len(gained) and 0 < len(gained) < len(before) // 8
    assert b.push()["status"] == "up-to-date"
    # a pulls: a fast-forward
    p = a.pull()
    assert p["merged"] == "fast-forward" and dict(a.iter_items()) == model
    assert a.current_commit() == b.current_commit()
    assert a.pull()["merged"] == "up-to-date"
    # both change disjoint keys: a's push is refused (hub unchanged), pull merges
    a.insert(b"only-a", b"1")
    a.commit("a side")
    b.insert(b"only-b", b"2")
    b.commit("b side")
    b.push()
    hub_refs = refs(hub)
    with pytest.raises(NonFastForwardError, match="pull"):
        a.push()
    assert refs(hub) == hub_refs
    head = a.current_commit()
    p = a.pull()
    assert p["merged"] == "merge"
    assert list(a.commit_info()["parents"]) == [head, b.current_commit()]
    assert dict(a.iter_items()) == {**model, b"only-a": b"1", b"only-b": b"2"}
    assert a.push()["status"] == "fast-forward"
    assert b.pull()["merged"] == "fast-forward"
    assert dict(b.iter_items()) == dict(a.iter_items())
    a.close()
    b.close()


def test_conflicts_force_branches_and_tracking_refs(tmp_path):
    hub = str(tmp_path / "hub")
    a = VersionedKvStore(tmp_path / "a", StorageBackend.File)
    a.insert(b"k", b"base")
    a.commit("base")
    a.add_remote("origin", hub)
    a.push()
    b = VersionedKvStore.clone(hub, tmp_path / "b")
    b.insert(b"k", b"theirs")
    b.commit("b")
    b.push()
    a.insert(b"k", b"ours")
    a.commit("a")
    head = a.current_commit()
    with pytest.raises(MergeConflictError):
        a.pull(conflict_resolution=lambda conflict: Unresolved)
    assert a.current_commit() == head and a.get(b"k") == b"ours"
    # the fetch happened: the tracking branch is b's commit
    assert a.resolve_ref("origin/main") == b.current_commit()
    assert a.pull(conflict_resolution=ConflictResolution.TakeSource)["merged"] == "merge"
    assert a.get(b"k") == b"theirs"
    assert a.push()["status"] == "fast-forward"
    # a forced push replaces the hub's branch (dropping a's merge)
    b.insert(b"k", b"forced")
    b.commit("diverge")
    with pytest.raises(NonFastForwardError):
        b.push()
    assert b.push(force=True)["status"] == "forced"
    c = VersionedKvStore.clone(hub, tmp_path / "c")
    assert c.get(b"k") == b"forced"
    # every branch is fetched; a branch deleted at the hub drops its tracking ref
    b.create_branch("side")
    b.checkout("side")
    b.insert(b"s", b"1")
    b.commit("side")
    b.push()
    f = c.fetch()
    assert set(f["updated"]) == {"side"} and f["head"] == "main"
    assert c.resolve_ref("origin/side") == b.current_commit()
    with open_store("file", os.path.join(hub, "nodes")) as st:
        st.set_ref("refs/heads/side", None, expected=st.get_ref("refs/heads/side"))
    assert c.fetch()["updated"] == {"side": (f["updated"]["side"][1], None)}
    with pytest.raises(ValueError):
        c.resolve_ref("origin/side")
    # clone of a named branch
    d = VersionedKvStore.clone(hub, tmp_path / "d", branch="main",
                               storage_backend=StorageBackend.RocksDB)
    assert d.storage_backend() is StorageBackend.RocksDB and d.get(b"k") == b"forced"
    # remotes persist, and removing one drops its tracking refs
    c.close()
    c = VersionedKvStore(tmp_path / "c", StorageBackend.File)
    assert c.list_remotes() == {"origin": hub}
    c.remove_remote("origin")
    assert c.list_remotes() == {}
    assert not any(r.startswith("refs/remotes/") for r in refs(tmp_path / "c"))
    for s in (a, b, c, d):
        s.close()


def test_bad_input_and_failures_change_nothing(tmp_path):
    a = VersionedKvStore(tmp_path / "a", StorageBackend.File)
    a.insert(b"k", b"v")
    a.commit("c")
    for bad, err in ((5, TypeError), (b"/x", TypeError), ("", ValueError),
                     ("git://127.0.0.1/x.git", ValueError),
                     ("ssh://127.0.0.1/x", ValueError), ("s3://", ValueError)):
        with pytest.raises(err):
            a.add_remote("x", bad)
    for bad, err in ((5, TypeError), ("a/b", ValueError), ("", ValueError)):
        with pytest.raises(err):
            a.add_remote(bad, str(tmp_path / "hub"))
    assert a.list_remotes() == {}
    a.add_remote("origin", str(tmp_path / "hub"))
    with pytest.raises(ValueError, match="already exists"):
        a.add_remote("origin", str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="no remote"):
        a.push("nope")
    with pytest.raises(ValueError, match="no remote"):
        a.remove_remote("nope")
    with pytest.raises(TypeError):
        a.push(force="yes")
    before = refs(tmp_path / "a")
    with pytest.raises(RemoteError):          # nothing at the remote to fetch
        a.fetch()
    with pytest.raises(RemoteError):
        a.pull()
    a.add_remote("self", str(tmp_path / "a"))
    with pytest.raises(ValueError, match="itself"):
        a.push("self")
    assert refs(tmp_path / "a") == before
    a.tree("notes").insert(b"n", b"1")       # staged in a named tree only: refused too
    with pytest.raises(ValueError, match="staged"):
        a.pull("self")
    assert refs(tmp_path / "a") == before   # refused before fetching: no tracking ref
    a.insert(b"staged", b"1")
    with pytest.raises(ValueError, match="staged"):
        a.pull()
    # clone: a missing source leaves no directory; a non-empty target is refused
    with pytest.raises(RemoteError):
        VersionedKvStore.clone(str(tmp_path / "missing"), tmp_path / "c",
                               storage_backend=StorageBackend.File)
    assert not (tmp_path / "c").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    a.push()
    with pytest.raises(ValueError, match="not an empty directory"):
        VersionedKvStore.clone(str(tmp_path / "hub"), tmp_path / "full")
    assert os.listdir(tmp_path / "full") == ["f"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception):
        VersionedKvStore.clone(str(tmp_path / "hub"), tmp_path / "empty", branch="nope")
    assert os.listdir(tmp_path / "empty") == []
    a.close()


def test_push_to_and_clone_from_s3(s3_server, tmp_path):
    url = s3_server.prefix_url("store-remote")
    a = VersionedKvStore(tmp_path / "a", StorageBackend.File)
    model = {b"k%05d" % i: b"v%d" % i for i in range(3000)}
    a.insert_batch(sorted(model.items()))
    fill(a, model, 50, 3)
    a.commit("load")
    a.add_remote("origin", url)
    assert a.push()["status"] == "created"
    # an S3 working copy sees it at once; its commit comes back by pull
    s3 = VersionedKvStore(url)
    assert dict(s3.iter_items()) == model
    s3.insert(b"from-s3", b"1")
    s3.commit("s3 side")
    s3.close()
    model[b"from-s3"] = b"1"
    assert a.pull()["merged"] == "fast-forward" and dict(a.iter_items()) == model
    b = VersionedKvStore.clone(url, tmp_path / "b")
    assert dict(b.iter_items()) == model and b.list_remotes() == {"origin": url}
    a.close()
    b.close()


@pytest.mark.parametrize("kind", ["Git", "File"])
def test_bad_arguments_to_the_remote_calls_change_nothing(tmp_path, kind):
    """Wrong types and values raise TypeError / ValueError before anything moves (the
    fetch of a pull included), on both kinds of remotes."""
    import subprocess
    if kind == "Git":
        subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "a")], check=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "hub")],
                       check=True)
        a = VersionedKvStore(tmp_path / "a" / "data")
    else:
        a = VersionedKvStore(tmp_path / "a", StorageBackend.File)
    a.insert(b"k", b"v")
    a.commit("c")
    a.add_remote("origin", str(tmp_path / "hub"))
    a.push()
    b = VersionedKvStore.clone(str(tmp_path / "hub"), tmp_path / "b")
    b.insert(b"k", b"w")
    b.commit("b")
    b.push()
    before = (a.current_commit(), a.list_refs() if hasattr(a, "list_refs") else None)
    tracking = a.resolve_ref("origin/main")
    for call, err in ((lambda: a.pull(conflict_resolution="theirs"), TypeError),
                      (lambda: a.pull(branch=5), TypeError),
                      (lambda: a.pull(5), TypeError),
                      (lambda: a.push(branch="no..pe"), ValueError),
                      (lambda: a.push(force=1), TypeError),
                      (lambda: a.fetch("no/pe"), ValueError),
                      (lambda: a.add_remote("x", 5), TypeError)):
        with pytest.raises(err):
            call()
        assert a.resolve_ref("origin/main") == tracking      # no fetch happened
    assert (a.current_commit(), a.list_refs() if hasattr(a, "list_refs") else None) == before
    assert a.list_remotes() == {"origin": str(tmp_path / "hub")}
    a.close()
    b.close()
