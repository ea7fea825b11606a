"""Threads sharing one ProllyTree: no acknowledged write is lost, reads are consistent.

Several writer threads (single inserts, batches, deletes, updates) and a thread asking for
the root hash run together on every backend; afterwards the tree must equal a dict model
built from what each writer did, and its root hash must equal that of a tree built from
scratch. Readers check that a key, once written by the writer that owns it, never reads
back older.
"""

from __future__ import annotations

import threading

import pytest

from prollytree import ProllyTree, TreeConfig

from .helpers import naive_root

BACKENDS = ["memory", "file", "lmdb", "rocksdb"]


def _tree(kind: str, tmp_path, config=None) -> ProllyTree:
    if kind == "memory":
        return ProllyTree(config=config)
    return ProllyTree(kind, str(tmp_path / kind), config=config)


def _run(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a thread hung"


@pytest.mark.parametrize("kind", BACKENDS)
def test_writers_and_a_root_hash_thread_lose_nothing(kind, tmp_path):
    config = TreeConfig(modulus=8)  # small nodes: many splits and merges under contention
    tree = _tree(kind, tmp_path, config)
    writers, per_writer = 4, 1500
    models: list[dict] = [{} for _ in range(writers)]
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(w: int) -> None:
        try:
            model = models[w]
            for i in range(per_writer):
                key = b"w%d-%05d" % (w, (i * 7919) % per_writer)
                if i % 50 == 49:  # a batch now and then
                    batch = [(b"w%d-b%05d-%d" % (w, i, j), b"%d" % j) for j in range(20)]
                    tree.insert_batch(batch)
                    model.update(batch)
                elif i % 10 == 9 and model:
                    victim = next(iter(model))
                    assert tree.delete(victim) is True
                    del model[victim]
                elif i % 10 == 8 and model:
                    k = next(reversed(model))
                    assert tree.update(k, b"u%d" % i) is True
                    model[k] = b"u%d" % i
                else:
                    tree.insert(key, b"v%d" % i)
                    model[key] = b"v%d" % i
                # our own writes read back at once, whatever the other threads do
                if i % 5 == 0:
                    probe = key if key in model else next(iter(model), key)
                    assert tree.find(probe) == model.get(probe)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    def hasher() -> None:
        try:
            while not done.is_set():
                assert len(tree.get_root_hash()) == 32
                tree.size()
        except BaseException as e:
            errors.append(e)

    ws = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    h = threading.Thread(target=hasher)
    h.start()
    _run(ws)
    done.set()
    h.join(60)
    assert not errors, errors[:3]
    expected: dict = {}
    for m in models:
        expected.update(m)  # writers use disjoint keys
    assert dict(tree.items()) == expected
    assert tree.size() == len(expected)
    assert tree.get_root_hash() == naive_root(expected, config)
    root = tree.get_root_hash()
    tree.close()
    if kind != "memory":  # and it is all durable
        again = _tree(kind, tmp_path, config)
        assert again.get_root_hash() == root
        assert dict(again.items()) == expected
        again.close()


def test_readers_see_a_consistent_snapshot_while_writers_run():
    """A reader iterating the tree sees one root: the pairs it gets are exactly the
    pairs of some root hash the tree had (here: all keys share one generation)."""
    tree = ProllyTree(config=TreeConfig(modulus=8))
    keys = [b"k%04d" % i for i in range(400)]
    tree.insert_batch([(k, b"0") for k in keys])
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for gen in range(1, 30):
                tree.insert_batch([(k, b"%d" % gen) for k in keys])  # one batch = one root
        except BaseException as e:
            errors.append(e)
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                values = {v for _, v in tree.items()}
                assert len(values) == 1, f"a scan mixed generations {sorted(values)[:3]}"
                assert len(tree) == len(keys)
        except BaseException as e:
            errors.append(e)

    _run([threading.Thread(target=writer), threading.Thread(target=reader),
          threading.Thread(target=reader)])
    assert not errors, errors[:3]


def test_single_inserts_from_many_threads_with_a_flushing_thread():
    """The lock-free insert path against buffer swaps: 8 threads x 3000 single inserts
    while another thread applies the buffer continuously."""
    tree = ProllyTree()
    stop = threading.Event()

    def inserter(t: int) -> None:
        for i in range(3000):
            tree.insert(b"%d-%d" % (t, i), b"%d" % i)

    def flusher() -> None:
        while not stop.is_set():
            tree.get_root_hash()

    f = threading.Thread(target=flusher)
    f.start()
    _run([threading.Thread(target=inserter, args=(t,)) for t in range(8)])
    stop.set()
    f.join()
    assert tree.size() == 8 * 3000
    assert all(tree.find(b"%d-%d" % (t, i)) == b"%d" % i for t in range(8) for i in range(3000))
