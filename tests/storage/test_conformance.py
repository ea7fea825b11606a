"""The node-store contract, checked against every backend (memory, file, RocksDB, LMDB).

Each test compares the store with a plain dict model of what it should hold.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from prollytree.errors import CorruptNodeError, ReadOnlyError, StoreError
from prollytree.storage import open_store

from .helpers import CLASSES, OPEN_PRELUDE, node, nodes, popen_python, run_python

ABSENT = node(b"never stored")[0]


# -- nodes --------------------------------------------------------------------------------


# -- refs ---------------------------------------------------------------------------------


# -- persistence --------------------------------------------------------------------------


def test_reopen_gives_exactly_the_same_nodes_and_refs(disk_factory):
    store = disk_factory()
    items = nodes(500, size=200)
    store.put_many(items[:300])
    store.set_ref("root", items[0][0])
    store.flush()
    store.put_many(items[300:])
    store.set_ref("config", b"cfg")
    store.set_ref("root", items[1][0], expected=items[0][0])
    store.close()
    store.close()                                              # idempotent
    store = disk_factory()
    assert sorted(store.addresses()) == sorted(a for a, _ in items)
    assert store.get_many([a for a, _ in items]) == dict(items)
    assert dict(store.refs()) == {"root": items[1][0], "config": b"cfg"}
    assert store.check() == []


def test_context_manager_exit_persists(disk_factory):
    items = nodes(50)
    with disk_factory() as store:
        store.put_many(items)
        store.set_ref("root", b"r")
    assert store.read_only is False
    with disk_factory() as store:
        assert store.get_many([a for a, _ in items]) == dict(items)
        assert store.get_ref("root") == b"r"


def test_closed_store_refuses_use(disk_factory):
    store = disk_factory()
    store.put(*node(b"x"))
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get(node(b"x")[0])
    with pytest.raises(StoreError, match="closed"):
        store.put(*node(b"y"))
    with pytest.raises(StoreError, match="closed"):
        store.get_ref("root")


def test_open_store_builds_each_backend(disk_factory):
    with open_store(disk_factory.kind, disk_factory.path) as store:
        assert isinstance(store, CLASSES[disk_factory.kind])
        store.put(*node(b"via open_store"))
    with open_store(disk_factory.kind, str(disk_factory.path), read_only=True) as store:
        assert store.read_only and store.get(node(b"via open_store")[0]) == b"via open_store"


# -- bad input ----------------------------------------------------------------------------


def test_bad_constructor_arguments(tmp_path):
    for cls in CLASSES.values():
        with pytest.raises(TypeError):
            cls(42)
        with pytest.raises(TypeError):
            cls(str(tmp_path / "x"), read_only="yes")
        with pytest.raises(TypeError):
            cls(str(tmp_path / "x"), lock_timeout="1")
        with pytest.raises(ValueError):
            cls(str(tmp_path / "x"), lock_timeout=-1)


def test_path_that_is_a_file_is_refused(disk_factory, tmp_path):
    disk_factory.path.write_bytes(b"not a directory")
    with pytest.raises(StoreError, match="not a directory"):
        disk_factory()


# -- read-only ----------------------------------------------------------------------------


def test_read_only_refuses_writes(disk_factory):
    items = nodes(10)
    with disk_factory() as store:
        store.put_many(items)
        store.set_ref("root", b"r")
    ro = disk_factory(read_only=True)
    assert ro.read_only
    assert ro.get_many([a for a, _ in items]) == dict(items)
    assert ro.get_ref("root") == b"r"
    with pytest.raises(ReadOnlyError):
        ro.put(*node(b"new"))
    with pytest.raises(ReadOnlyError):
        ro.put_many([node(b"new")])
    with pytest.raises(ReadOnlyError):
        ro.set_ref("root", b"s")
    with pytest.raises(ReadOnlyError):
        ro.remove([items[0][0]])
    ro.flush()
    assert ro.check() == []
    ro.close()
    with disk_factory(read_only=True) as ro:
        assert sorted(ro.addresses()) == sorted(a for a, _ in items)
        assert ro.get_ref("root") == b"r"


def test_read_only_open_of_missing_store_fails(disk_factory):
    with pytest.raises(StoreError, match="no .* store"):
        disk_factory(read_only=True)
    assert not disk_factory.path.exists()                      # and creates nothing


def test_reader_alongside_writer_sees_flushed_data(disk_factory):
    writer = disk_factory()
    items = nodes(20)
    writer.put_many(items[:10])
    writer.set_ref("root", b"one")
    writer.flush()
    reader = disk_factory(read_only=True)
    assert reader.get_many([a for a, _ in items[:10]]) == dict(items[:10])
    assert reader.get_ref("root") == b"one"
    # the writer carries on while the reader is open
    writer.put_many(items[10:])
    writer.set_ref("root", b"two")
    writer.flush()
    assert writer.get_ref("root") == b"two"
    got = reader.get_many([a for a, _ in items])
    assert all(got[a] == d for a, d in items if a in got)     # never wrong bytes
    assert set(got) >= {a for a, _ in items[:10]}
    reader.close()
    writer.close()


def test_writer_opened_after_a_reader_in_the_same_process(disk_factory):
    with disk_factory() as store:
        store.put(*node(b"first"))
    reader = disk_factory(read_only=True)
    assert reader.get(node(b"first")[0]) == b"first"
    with disk_factory() as writer:
        writer.put(*node(b"second"))
        writer.flush()
        assert reader.get(node(b"first")[0]) == b"first"     # the reader still works
        got = reader.get(node(b"second")[0])
        assert got in (None, b"second")                      # depending on the backend
    assert reader.get(node(b"first")[0]) == b"first"
    reader.close()
    with disk_factory(read_only=True) as fresh:
        assert fresh.get(node(b"second")[0]) == b"second"


# -- integrity ----------------------------------------------------------------------------


def test_wrong_bytes_under_an_address_are_never_served(disk_factory):
    """A node whose bytes do not hash to its address raises CorruptNodeError naming it."""
    store = disk_factory()
    good, other = node(b"good"), node(b"other")
    store.put(good[0], other[1])                              # e.g. a caller's bug
    store.put(*other)
    with pytest.raises(CorruptNodeError) as err:
        store.get(good[0])
    assert good[0].hex() in str(err.value) and err.value.address == good[0]
    with pytest.raises(CorruptNodeError):
        store.get_many([other[0], good[0]])
    assert store.get(other[0]) == other[1]
    store = disk_factory.reopen(store)
    with pytest.raises(CorruptNodeError):
        store.get(good[0])
    assert [p.address for p in store.check()] == [good[0]]


def _flip_on_disk(directory, needle: bytes, delta: int = 7) -> int:
    """Flip one bit inside every stored copy of ``needle``; returns how many were hit."""
    hits = 0
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = bytearray(f.read())
        pos = data.find(needle)
        while pos >= 0:
            data[pos + delta] ^= 0x10
            hits += 1
            pos = data.find(needle, pos + 1)
        if hits:
            with open(path, "wb") as f:
                f.write(data)
    return hits


def test_bit_flip_on_disk_is_detected(disk_factory):
    items = nodes(200, size=300)
    victim = items[77]
    with disk_factory() as store:
        store.put_many(items)
    assert _flip_on_disk(disk_factory.path, victim[1]) >= 1
    try:
        store = disk_factory()
    except StoreError:
        return                                                # refusing to open is allowed
    with pytest.raises(StoreError):                          # CorruptNodeError or a backend error
        store.get(victim[0])
    with pytest.raises(StoreError):
        store.get_many([a for a, _ in items])
    # nodes not sharing damaged storage still read back exactly
    served = 0
    for a, d in items:
        try:
            got = store.get(a)
        except StoreError:
            continue
        assert got == d
        served += 1
    assert served >= len(items) // 2
    assert store.check() != []


def test_check_is_empty_on_a_healthy_store(disk_factory):
    with disk_factory() as store:
        store.put_many(nodes(100))
        store.set_ref("root", b"r")
        store.remove([nodes(100)[5][0]])
        assert store.check() == []
    with disk_factory() as store:
        assert store.check() == []


# -- threads ------------------------------------------------------------------------------


def test_threads_share_a_store(disk_factory):
    """Concurrent put_many, reads and compare-and-swap increments from several threads:
    no write is lost and no increment is counted twice."""
    import threading

    store = disk_factory()
    store.set_ref("counter", b"0")
    per_thread, n_threads = 300, 4
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            mine = nodes(per_thread, seed=100 + t)
            for i, (a, d) in enumerate(mine):
                store.put_many([(a, d)])
                assert store.get(a) == d
                while True:                                   # CAS retry loop
                    cur = store.get_ref("counter")
                    if store.set_ref("counter", b"%d" % (int(cur) + 1), expected=cur):
                        break
                if i % 10 == 0:
                    store.flush()
        except BaseException as e:                            # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)                               # interleave as much as possible
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert errors == []
    assert store.get_ref("counter") == b"%d" % (per_thread * n_threads)
    everything = [x for t in range(n_threads) for x in nodes(per_thread, seed=100 + t)]
    assert store.get_many([a for a, _ in everything]) == dict(everything)
    store = disk_factory.reopen(store)
    assert store.get_ref("counter") == b"%d" % (per_thread * n_threads)
    assert sorted(store.addresses()) == sorted(a for a, _ in everything)


# -- processes: one writer at a time --------------------------------------------------------


def test_second_writer_in_another_process_is_refused(disk_factory):
    store = disk_factory()
    store.put_many(nodes(5))
    store.set_ref("root", b"mine")
    store.flush()
    proc = run_python(OPEN_PRELUDE + f"""
from prollytree.errors import StoreLockedError
t0 = time.monotonic()
try:
    CLASSES[{disk_factory.kind!r}]({str(disk_factory.path)!r})
except StoreLockedError as e:
    print("LOCKED", round(time.monotonic() - t0, 2), e)
else:
    print("OPENED")
""", env={"PROLLYTREE_LOCK_TIMEOUT": "0.3"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("LOCKED"), proc.stdout
    waited = float(proc.stdout.split()[1])
    assert 0.25 <= waited < 5
    assert str(disk_factory.path) in proc.stdout and f"pid {os.getpid()}" in proc.stdout
    # nothing of ours was touched
    assert store.get_ref("root") == b"mine"
    assert sorted(store.addresses()) == sorted(a for a, _ in nodes(5))
    store.close()


def test_second_writer_in_the_same_process_shares_the_store(disk_factory):
    """Issue 8: a second writable open in the same process works at once and sees the
    first one's writes (one shared, reference-counted object)."""
    first = disk_factory()
    t0 = time.monotonic()
    second = disk_factory(lock_timeout=0)
    assert time.monotonic() - t0 < 1
    assert second is first
    first.put(*node(b"from the first"))
    second.set_ref("root", b"from the second")
    assert second.get(node(b"from the first")[0]) == b"from the first"
    assert first.get_ref("root") == b"from the second"
    first.close()                                            # the second is still open
    assert second.get(node(b"from the first")[0]) == b"from the first"
    second.close()
    with pytest.raises(StoreError, match="closed"):
        second.get(node(b"from the first")[0])
    with disk_factory(lock_timeout=0) as third:              # free once both closed
        assert third is not first
        assert third.get(node(b"from the first")[0]) == b"from the first"


def test_waiting_writer_gets_the_lock_when_the_first_closes(disk_factory):
    first = disk_factory()
    first.set_ref("root", b"first")
    first.flush()
    waiter = popen_python(OPEN_PRELUDE + f"""
print("OPENING", flush=True)
t0 = time.monotonic()
store = CLASSES[{disk_factory.kind!r}]({str(disk_factory.path)!r}, lock_timeout=30)
waited = time.monotonic() - t0
ok = store.set_ref("root", b"second", expected=b"first")
store.close()
print("GOT", round(waited, 2), ok)
""")
    # wait until the child is about to open (its imports can take a while on a busy
    # machine), then give it time to block on the lock
    assert waiter.stdout.readline().split() == ["OPENING"]
    time.sleep(0.5)
    assert waiter.poll() is None                              # still waiting for the lock
    first.put(*node(b"written while the other waits"))
    first.close()
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    tag, waited, ok = out.split()
    assert tag == "GOT" and float(waited) >= 0.4 and ok == "True"
    with disk_factory() as store:
        assert store.get_ref("root") == b"second"
        assert store.get(node(b"written while the other waits")[0]) is not None


def test_kill_9_after_flush_keeps_everything_flushed(disk_factory):
    proc = popen_python(OPEN_PRELUDE + f"""
store = CLASSES[{disk_factory.kind!r}]({str(disk_factory.path)!r})
items = nodes(2000, size=500)
for i in range(0, 2000, 100):
    store.put_many(items[i:i + 100])
store.set_ref("root", items[-1][0])
store.set_ref("config", b"cfg")
store.flush()
print("flushed", flush=True)
store.put_many(nodes(500, size=500, seed=1))      # after the flush: may or may not survive
store.set_ref("root", b"unflushed")
sys.stdout.write("more\\n"); sys.stdout.flush()
time.sleep(60)
""")
    assert proc.stdout.readline().strip() == "flushed"
    assert proc.stdout.readline().strip() == "more"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    items = nodes(2000, size=500)
    with disk_factory(lock_timeout=5) as store:              # the dead writer's lock is gone
        assert store.get_many([a for a, _ in items]) == dict(items)
        assert store.get_ref("config") == b"cfg"
        assert store.get_ref("root") in (items[-1][0], b"unflushed")
        later = nodes(500, size=500, seed=1)
        got = store.get_many([a for a, _ in later])
        assert all(got[a] == d for a, d in later if a in got)
        assert store.check() == []
        store.put(*node(b"life goes on"))
    with disk_factory() as store:
        assert store.get(node(b"life goes on")[0]) == b"life goes on"
