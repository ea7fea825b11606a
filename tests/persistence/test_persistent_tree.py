"""ProllyTree on every persistent store: reopen, same roots everywhere, durability,
integrity, gc, one writer at a time, and a model test of a tree per backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from prollytree import ProllyTree, ReadOnlyError, StoreError, TreeConfig

KINDS = ["file", "rocksdb", "lmdb"]
DATA = {b"key%05d" % i: b"value%d" % i for i in range(5000)}


def memory_root(pairs: dict, config: TreeConfig | None = None) -> bytes:
    t = ProllyTree(config=config)
    t.insert_batch(pairs.items())
    return t.get_root_hash()


@pytest.mark.parametrize("kind", KINDS)
def test_reopen_holds_exactly_what_it_held(kind, tmp_path):
    path = tmp_path / kind
    with ProllyTree(kind, str(path)) as t:
        t.insert_batch(DATA.items())
        t.delete(b"key00010")
        t.update(b"key00011", b"changed")
        root = t.get_root_hash()
    with ProllyTree(kind, str(path)) as t:
        assert t.get_root_hash() == root
        expected = dict(DATA)
        del expected[b"key00010"]
        expected[b"key00011"] = b"changed"
        assert dict(t.items()) == expected
        assert t.size() == len(expected)
        assert t.verify()["ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_same_content_same_root_on_every_store(kind, tmp_path):
    cfg = TreeConfig(modulus=16)
    with ProllyTree(kind, str(tmp_path / kind), config=cfg) as t:
        for k in sorted(DATA, reverse=True):  # a different write order than memory_root
            t.insert(k, DATA[k])
        assert t.get_root_hash() == memory_root(DATA, cfg)


@pytest.mark.parametrize("kind", KINDS)
def test_config_is_kept_and_checked(kind, tmp_path):
    path = str(tmp_path / kind)
    cfg = TreeConfig(modulus=8, base=3)
    with ProllyTree(kind, path, config=cfg) as t:
        t.insert(b"a", b"1")
    with ProllyTree(kind, path) as t:  # no config given: the stored one is used
        assert t.config == cfg
    with pytest.raises(ValueError, match="created with"):
        ProllyTree(kind, path, config=TreeConfig())
    with ProllyTree(kind, path, config=cfg) as t:
        assert t.find(b"a") == b"1"


@pytest.mark.parametrize("kind", KINDS)
def test_normal_exit_without_close_loses_nothing(kind, tmp_path):
    path = str(tmp_path / kind)
    script = textwrap.dedent(f"""
        from prollytree import ProllyTree
        t = ProllyTree({kind!r}, {path!r})
        for i in range(3000):
            t.insert(b"k%05d" % i, b"v%d" % i)
        print(t.get_root_hash().hex())
        t.insert(b"late", b"written after the root was printed")
        # no close(), no flush(): the interpreter exits normally
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.strip()
    with ProllyTree(kind, path) as t:
        assert t.find(b"late") == b"written after the root was printed"
        assert t.size() == 3001
        t.delete(b"late")
        assert t.get_root_hash().hex() == out


@pytest.mark.parametrize("kind", KINDS)
def test_kill_9_after_close_loses_nothing(kind, tmp_path):
    path = str(tmp_path / kind)
    script = textwrap.dedent(f"""
        import os, signal, sys
        from prollytree import ProllyTree
        t = ProllyTree({kind!r}, {path!r})
        t.insert_batch((b"k%05d" % i, b"v%d" % i) for i in range(4000))
        t.close()
        print(t.get_root_hash().hex() if False else "closed", flush=True)
        t2 = ProllyTree({kind!r}, {path!r})
        t2.insert(b"unflushed", b"x")  # buffered, never flushed: may be lost
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9 and "closed" in proc.stdout
    with ProllyTree(kind, path) as t:
        assert t.size() == 4000
        assert t.get_root_hash() == memory_root({b"k%05d" % i: b"v%d" % i for i in range(4000)})
        assert t.verify()["ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_gc_removes_only_unreachable_nodes(kind, tmp_path):
    path = str(tmp_path / kind)
    with ProllyTree(kind, path) as t:
        t.insert_batch(DATA.items())
        old_root = t.get_root_hash()
        for i in range(0, 5000, 50):
            t.insert(b"key%05d" % i, b"new")
            t.flush()  # each flush leaves the previous path behind as garbage
        report = t.gc(extra_roots=[old_root])
        assert report["removed"] > 0
        # the current tree and the named old root are both intact
        old = ProllyTree.from_root(old_root, t.store, t.config)
        assert dict(old.items()) == DATA
        assert t.verify()["ok"]
        before = len(list(t.store.addresses()))
        second = t.gc()  # now the old root is no longer protected
        assert second["removed"] > 0
        assert len(list(t.store.addresses())) == before - second["removed"]
        assert t.verify()["ok"] and t.size() == len(DATA)
    with ProllyTree(kind, path) as t:
        assert t.verify()["ok"]
        assert t.find(b"key00050") == b"new"


@pytest.mark.parametrize("kind", KINDS)
def test_second_writer_is_refused_readers_allowed(kind, tmp_path, monkeypatch):
    path = str(tmp_path / kind)
    monkeypatch.setenv("PROLLYTREE_LOCK_TIMEOUT", "0.2")
    with ProllyTree(kind, path) as t:
        t.insert(b"a", b"1")
        t.flush()
        script = f"from prollytree import ProllyTree; ProllyTree({kind!r}, {path!r})"
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={**os.environ, "PROLLYTREE_LOCK_TIMEOUT": "0.2"})
        assert proc.returncode != 0 and "StoreLockedError" in proc.stderr
        reader = ProllyTree(kind, path, read_only=True)
        assert reader.find(b"a") == b"1"
        with pytest.raises(ReadOnlyError):
            reader.insert(b"b", b"2")
        reader.close()
        t.insert(b"b", b"2")
    with ProllyTree(kind, path) as t:
        assert t.find(b"b") == b"2"


def test_damaged_file_store_never_serves_wrong_values(tmp_path):
    path = tmp_path / "file"
    with ProllyTree("file", str(path)) as t:
        t.insert_batch(DATA.items())
    log = path / "nodes.log"
    data = bytearray(log.read_bytes())
    # flip one byte inside a value (b"value" occurs only in leaf payloads)
    pos = data.find(b"value2500")
    assert pos > 0
    data[pos + 5] ^= 0x01
    log.write_bytes(bytes(data))
    for name in os.listdir(path):
        if name.endswith(".idx"):
            os.remove(path / name)
    try:
        t = ProllyTree("file", str(path))
    except StoreError:
        return  # refusing to open a damaged store is acceptable
    with t:
        report = t.verify()
        assert not report["ok"]
        assert report["damaged"] or report["missing"]
        with pytest.raises(StoreError):
            dict(t.items())
        assert t.find(b"key00001") == b"value1"  # undamaged leaves still serve


@given(ops=st.lists(st.tuples(st.sampled_from(["set", "del", "flush", "reopen"]),
                              st.binary(max_size=4), st.binary(max_size=4)), max_size=40))
@settings(max_examples=15, deadline=None)
def test_model_on_file_store(tmp_path_factory, ops):
    path = str(tmp_path_factory.mktemp("model"))
    model: dict = {}
    cfg = TreeConfig(modulus=4)
    t = ProllyTree("file", path, config=cfg)
    try:
        for op, k, v in ops:
            if op == "set":
                t.insert(k, v)
                model[k] = v
            elif op == "del":
                assert t.delete(k) == (k in model)
                model.pop(k, None)
            elif op == "flush":
                t.flush()
            else:
                t.close()
                t = ProllyTree("file", path)
            assert t.find(k) == model.get(k)
        assert dict(t.items()) == model
        assert t.get_root_hash() == memory_root(model, cfg)
    finally:
        t.close()


def test_two_trees_on_one_path_in_one_process_see_each_other(tmp_path):
    """The same path opened twice at once: no lock wait, both see each other's flushed
    writes, and concurrent unflushed changes on both merge instead of one losing."""
    import time
    t0 = time.monotonic()
    a = ProllyTree("file", str(tmp_path / "t"))
    b = ProllyTree("file", str(tmp_path / "t"))
    assert time.monotonic() - t0 < 2.0
    a.insert(b"a", b"1")
    a.flush()
    assert b.find(b"a") == b"1"
    b.insert(b"b", b"2")
    b.flush()
    assert a.find(b"b") == b"2"
    a.insert(b"c", b"3")          # both change the tree before either flushes
    b.insert(b"d", b"4")
    b.delete(b"a")
    a.flush()
    b.flush()
    model = {b"b": b"2", b"c": b"3", b"d": b"4"}
    assert dict(a.items()) == dict(b.items()) == model
    assert a.get_root_hash() == b.get_root_hash()
    a.close()
    b.close()
    with ProllyTree("file", str(tmp_path / "t")) as c:
        assert dict(c.items()) == model
