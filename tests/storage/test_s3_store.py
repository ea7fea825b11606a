"""The S3 store against a real S3 server (SeaweedFS, started by the s3_server fixture):
persistence, damage detection, the read cache, read-only opens, compare-and-swap between
processes, and ProllyTree("s3", ...) against a dict model. The node-store conformance
suite (test_conformance.py) runs on it too."""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from prollytree import ProllyTree
from prollytree.errors import CorruptNodeError, ReadOnlyError, StoreError
from prollytree.storage import open_store
from prollytree.storage.s3 import S3NodeStore, parse_s3_url

from .helpers import node, nodes

pytestmark = pytest.mark.usefixtures("s3_server")


@pytest.fixture
def url(s3_server):
    return s3_server.prefix_url()


def _key(url: str, address: bytes) -> tuple[str, str]:
    bucket, prefix = parse_s3_url(url)
    h = address.hex()
    return bucket, f"{prefix}/nodes/{h[:2]}/{h}"


def test_reopen_sees_everything(url):
    items = nodes(200, size=150)
    with S3NodeStore(url) as store:
        store.put_many(items)
        store.set_ref("root", items[0][0], expected=None)
        store.set_ref("heads/main", b"x")
    with S3NodeStore(url) as store:
        assert store.get_many([a for a, _ in items]) == dict(items)
        assert sorted(store.addresses()) == sorted(a for a, _ in items)
        assert dict(store.refs()) == {"root": items[0][0], "heads/main": b"x"}
        assert store.check() == []
    with open_store("s3", url, read_only=True) as ro:
        assert isinstance(ro, S3NodeStore) and ro.read_only
        assert ro.get(items[5][0]) == items[5][1]
        with pytest.raises(ReadOnlyError):
            ro.put(*node(b"new"))
        with pytest.raises(ReadOnlyError):
            ro.set_ref("root", None)
        with pytest.raises(ReadOnlyError):
            ro.remove([items[0][0]])


def test_read_only_open_of_a_missing_store_fails_and_creates_nothing(s3_server, url):
    with pytest.raises(StoreError, match="no prollytree s3 store"):
        S3NodeStore(url, read_only=True)
    bucket, prefix = parse_s3_url(url)
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert listing.get("KeyCount", 0) == 0


def test_missing_bucket_is_a_store_error(s3_server):
    with pytest.raises(StoreError, match="does not exist"):
        S3NodeStore("s3://no-such-bucket-here/x", read_only=True)


def test_damaged_object_is_never_served(s3_server, url, tmp_path):
    items = nodes(20)
    victim, other = items[3], items[4]
    with S3NodeStore(url) as store:
        store.put_many(items)
    bucket, key = _key(url, victim[0])
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=other[1])   # wrong bytes
    for cache in (None, tmp_path / "cache"):
        with S3NodeStore(url, cache_dir=cache) as store:
            with pytest.raises(CorruptNodeError) as err:
                store.get(victim[0])
            assert err.value.address == victim[0]
            with pytest.raises(CorruptNodeError):
                store.get_many([a for a, _ in items])
            assert store.get(other[0]) == other[1]
            assert [p.address for p in store.check()] == [victim[0]]
            if cache is not None:                      # the damage was not cached
                assert not (cache / victim[0].hex()[:2] / victim[0].hex()).exists()
    # a truncated object too
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=victim[1][:-1])
    with S3NodeStore(url) as store:
        with pytest.raises(CorruptNodeError):
            store.get(victim[0])
        store.put(*victim)                             # rewriting repairs it
        assert store.get(victim[0]) == victim[1]


def test_read_cache_serves_nodes_and_repairs_damaged_cache_files(s3_server, url, tmp_path):
    cache = tmp_path / "cache"
    items = nodes(30)
    with S3NodeStore(url, cache_dir=cache) as store:
        store.put_many(items)                          # written nodes are cached
    victim = items[7]
    cached = cache / victim[0].hex()[:2] / victim[0].hex()
    assert cached.read_bytes() == victim[1]
    # a cached node is served without asking the server: delete the object behind it
    bucket, key = _key(url, items[8][0])
    s3_server.client().delete_object(Bucket=bucket, Key=key)
    with S3NodeStore(url, cache_dir=cache) as store:
        assert store.get(items[8][0]) == items[8][1]
        # a damaged cache file is dropped and the node fetched again
        cached.write_bytes(b"garbage")
        assert store.get(victim[0]) == victim[1]
        assert cached.read_bytes() == victim[1]
    with S3NodeStore(url) as store:                    # without the cache: really gone
        assert store.get(items[8][0]) is None
        assert store.get(victim[0]) == victim[1]
    # the cache directory can also come from the environment
    os.environ["PROLLYTREE_S3_CACHE_DIR"] = str(tmp_path / "envcache")
    try:
        with S3NodeStore(url) as store:
            assert store.cache_dir == str(tmp_path / "envcache")
            assert store.get(victim[0]) == victim[1]
    finally:
        del os.environ["PROLLYTREE_S3_CACHE_DIR"]
    assert (tmp_path / "envcache" / victim[0].hex()[:2] / victim[0].hex()).exists()


def test_has_many_and_remove(url):
    items = nodes(50)
    with S3NodeStore(url, max_workers=4) as store:
        store.put_many(items[:30])
        assert store.has_many(a for a, _ in items) == {a for a, _ in items[:30]}
        assert store.remove([a for a, _ in items[:10]] + [items[40][0]]) == 10
        assert store.has_many(a for a, _ in items) == {a for a, _ in items[10:30]}


def test_ref_names_that_look_like_paths_stay_distinct(url):
    names = ["a", "a/b", "a//b", "a/", "/a", "..", ".", "a/../b", "a%2Fb", "ü/ß", "x y"]
    with S3NodeStore(url) as store:
        for i, n in enumerate(names):
            assert store.set_ref(n, b"%d" % i, expected=None)
        assert dict(store.refs()) == {n: b"%d" % i for i, n in enumerate(names)}


def test_bad_arguments(s3_server):
    with pytest.raises(TypeError):
        S3NodeStore(42)
    for bad in ("http://bucket/x", "s3://", "s3://Bad_Bucket/x", "s3://b/x",
                "s3://bucket/a//b", "s3://bucket/a/../b"):
        with pytest.raises(ValueError):
            S3NodeStore(bad)
    url = s3_server.prefix_url()
    with pytest.raises(TypeError):
        S3NodeStore(url, read_only="no")
    with pytest.raises(TypeError):
        S3NodeStore(url, max_workers=1.5)
    with pytest.raises(ValueError):
        S3NodeStore(url, max_workers=0)
    with pytest.raises(TypeError):
        S3NodeStore(url, cache_dir=3)
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    store = S3NodeStore(url)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get(node(b"x")[0])
    with pytest.raises(StoreError, match="closed"):
        store.set_ref("r", b"x")


CAS_WORKER = """
import json, sys, hashlib
from prollytree.storage.s3 import S3NodeStore
url, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = S3NodeStore(url, max_workers=2)
print("READY", flush=True)
sys.stdin.readline()                    # start together
for i in range(n):
    data = f"{me}:{i}".encode()
    store.put(hashlib.sha256(data).digest(), data)
    while True:
        cur = store.get_ref("log")
        entries = json.loads(cur) + [[me, i]]
        if store.set_ref("log", json.dumps(entries).encode(), expected=cur):
            break
store.close()
print("DONE", flush=True)
"""


def test_four_processes_cas_on_one_ref_lose_nothing(url):
    """Four processes append to one ref by compare-and-swap at once: every append of
    every process is there exactly once, in each process's order."""
    import subprocess
    import sys

    with S3NodeStore(url) as store:
        assert store.set_ref("log", b"[]", expected=None)
    n = 15
    procs = [subprocess.Popen([sys.executable, "-c", CAS_WORKER, url, str(p), str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for p in range(4)]
    for p in procs:
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert out.strip() == "DONE"
    with S3NodeStore(url) as store:
        entries = json.loads(store.get_ref("log"))
        assert sorted(map(tuple, entries)) == sorted((str(p), i) for p in range(4)
                                                     for i in range(n))
        for p in range(4):
            assert [i for who, i in entries if who == str(p)] == list(range(n))
        written = [f"{p}:{i}".encode() for p in range(4) for i in range(n)]
        assert store.get_many(hashlib.sha256(d).digest() for d in written) == {
            hashlib.sha256(d).digest(): d for d in written}


def test_prolly_tree_on_s3_matches_a_dict(url):
    rng = random.Random(7)
    model: dict[bytes, bytes] = {}
    tree = ProllyTree("s3", url)
    for step in range(6):
        for _ in range(300):
            k = b"k%05d" % rng.randrange(2000)
            if rng.random() < 0.2:
                tree.delete(k)
                model.pop(k, None)
            else:
                v = b"v%d" % rng.randrange(10 ** 9)
                tree.insert(k, v)
                model[k] = v
        tree.flush()
        if step % 2:
            tree.close()
            tree = ProllyTree("s3", url)             # reopen from the bucket
        assert dict(tree.items()) == model
        for k in rng.sample(sorted(model), 20):
            assert tree.find(k) == model[k]
    root = tree.get_root_hash()
    tree.close()
    mem = ProllyTree()
    for k, v in model.items():
        mem.insert(k, v)
    assert mem.get_root_hash() == root               # same content, same root
    ro = ProllyTree("s3", url, read_only=True)
    assert dict(ro.items()) == model
    ro.close()


def test_store_matches_dict_model():
    from .test_model import machine_for

    run_state_machine_as_test(
        machine_for("s3"),
        settings=settings(max_examples=3, stateful_step_count=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))


def test_concurrent_creates_have_exactly_one_winner(url):
    """set_ref(expected=None) is If-None-Match: *: among racing creators of one ref,
    exactly one succeeds and the ref holds its value."""
    import threading

    stores = [S3NodeStore(url, max_workers=1) for _ in range(6)]
    try:
        for r in range(8):
            wins: list[int] = []
            barrier = threading.Barrier(len(stores))

            def create(i: int) -> None:
                barrier.wait()
                if stores[i].set_ref(f"race/{r}", b"%d" % i, expected=None):
                    wins.append(i)

            threads = [threading.Thread(target=create, args=(i,)) for i in range(len(stores))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(wins) == 1
            assert stores[0].get_ref(f"race/{r}") == b"%d" % wins[0]
    finally:
        for s in stores:
            s.close()


class TimedStore(S3NodeStore):
    """The real S3 store, recording when each node PUT starts and ends, with random
    delays so that writes overlap and finish out of order."""

    def __init__(self, *a, **kw) -> None:
        self.times: dict[bytes, list[float]] = {}
        super().__init__(*a, **kw)

    def _put_one(self, item):
        import time

        start = time.monotonic()
        time.sleep(random.random() * 0.02)
        super()._put_one(item)
        self.times[item[0]] = [start, time.monotonic()]


def test_write_behind_writes_a_record_only_after_what_it_names(url):
    """put_many returns before the PUTs end; a node naming a node still being written
    (its child) is started only after that write ended; flush waits for all."""
    store = TimedStore(url, max_workers=8)
    children = nodes(40, size=64, seed=5)
    for pair in children:                                  # one call each, like the tree
        store.put_many([pair])
    parent = node(b"parent:" + b"".join(a for a, _ in children[::3]))
    grand = node(b"grand:" + parent[0])
    unrelated = node(b"unrelated")
    store.put_many([parent, unrelated])
    store.put_many([grand])
    assert store.get(grand[0]) == grand[1]                 # readable while pending
    assert store.has(parent[0])
    store.set_ref("root", grand[0])                        # waits for every write
    t = store.times
    assert len(t) == 43
    for a, _ in children[::3]:
        assert t[parent[0]][0] >= t[a][1]
    assert t[grand[0]][0] >= t[parent[0]][1]
    store.close()
    with S3NodeStore(url) as again:
        assert again.get_many(a for a, _ in children + [parent, grand]) == dict(
            children + [parent, grand])


KILL_WRITER = """
import random, sys
from prollytree import ProllyTree
tree = ProllyTree("s3", sys.argv[1])
rng = random.Random(sys.argv[2])
tree.insert_batch((b"k%07d" % i, b"v" * 40) for i in range(6000))
tree.flush()
print("GO", flush=True)
while True:                     # small commits: each writes leaves and their parents
    tree.insert_batch((b"k%07d" % rng.randrange(12000), b"w" * 40) for _ in range(150))
    tree.flush()
"""


def test_kill_9_while_writing_a_tree_leaves_only_complete_subtrees(s3_server):
    """The property replication relies on: after a crash mid-write, every internal node
    that reached the bucket has all its children there."""
    import signal
    import subprocess
    import sys
    import time

    from prollytree.tree.codec import decode

    internal = 0
    for delay in (0.3, 1.0):
        url = s3_server.prefix_url("kill")
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, url, str(delay)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "GO", proc.stderr.read()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with S3NodeStore(url, read_only=True) as store:
            root = store.get_ref("root")
            assert dict(ProllyTree.from_root(root, store).items())   # the ref is whole
            present = set(store.addresses())
            for a, data in store.get_many(present).items():
                n = decode(data, a)
                if n.level > 0:
                    internal += 1
                    assert set(n.vals) <= present
    assert internal > 0                                    # some parents made it
