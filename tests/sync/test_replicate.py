"""Replication between node stores and between datasets, checked against brute force:
the set of nodes reachable from a root (walked independently here), the destination's
contents after the transfer, and a dict model of each dataset's keys."""

from __future__ import annotations

import os
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from prollytree import ProllyTree
from prollytree.errors import CorruptNodeError, MissingNodeError, UnknownRefError
from prollytree.storage import MemoryNodeStore, NodeStore, open_store
from prollytree.sync import (
    NonFastForwardError, open_dataset_store, replicate, replicate_nodes,
)
from prollytree.tree import EMPTY_ROOT
from prollytree.tree.codec import decode
from prollytree.versioning import StorageBackend, VersionedKvStore

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def reachable(store: NodeStore, root: bytes) -> set[bytes]:
    """Every node address under ``root`` (brute-force walk)."""
    out, stack = set(), [root]
    while stack:
        a = stack.pop()
        if a in out:
            continue
        out.add(a)
        data = store.get(a)
        if data is None and a == EMPTY_ROOT:             # implied, not always stored
            continue
        node = decode(data, a)
        if node.level > 0:
            stack.extend(node.vals)
    return out


def build(store: NodeStore, model: dict[bytes, bytes]) -> bytes:
    tree = ProllyTree.from_root(ProllyTree().get_root_hash(), store)
    tree.insert_batch(sorted(model.items()))
    root = tree.get_root_hash()
    store.flush()
    return root


def open_kind(kind: str, tmp_path: Path, name: str, s3_url=None) -> NodeStore:
    if kind == "memory":
        return MemoryNodeStore()
    if kind == "s3":
        return open_store("s3", s3_url())
    return open_store(kind, str(tmp_path / name))


PAIRS = [("memory", "memory"), ("memory", "file"), ("file", "rocksdb"), ("lmdb", "memory"),
         ("memory", "s3"), ("s3", "lmdb")]


@pytest.mark.parametrize("src_kind,dst_kind", PAIRS)
def test_replicate_nodes_sends_exactly_what_differs(request, tmp_path, src_kind, dst_kind):
    s3_url = None
    if "s3" in (src_kind, dst_kind):
        s3_url = request.getfixturevalue("s3_server").prefix_url
    src = open_kind(src_kind, tmp_path, "src", s3_url)
    dst = open_kind(dst_kind, tmp_path, "dst", s3_url)
    rng = random.Random(1)
    model = {b"key%06d" % i: b"value-%d" % rng.randrange(10 ** 9) for i in range(6000)}
    root1 = build(src, model)
    all1 = reachable(src, root1)
    st = replicate_nodes(src, dst, [root1])
    assert st.nodes == len(all1) and st.skipped == 0
    assert st.bytes == sum(len(src.get(a)) for a in all1)
    assert set(dst.addresses()) == all1
    assert dict(ProllyTree.from_root(root1, dst).items()) == model
    # again: nothing to send, the root prunes everything
    again = replicate_nodes(src, dst, [root1])
    assert (again.nodes, again.bytes, again.skipped) == (0, 0, 1)
    # change 20 keys: exactly the new nodes travel
    for k in rng.sample(sorted(model), 20):
        model[k] = b"changed"
    root2 = build(src, model)
    new = reachable(src, root2) - all1
    st2 = replicate_nodes(src, dst, [root2])
    assert st2.nodes == len(new)
    assert set(dst.addresses()) == all1 | new
    assert dict(ProllyTree.from_root(root2, dst).items()) == model
    for s in (src, dst):
        s.close()


def test_empty_root_and_bad_arguments():
    src, dst = MemoryNodeStore(), MemoryNodeStore()
    empty = ProllyTree().get_root_hash()
    st = replicate_nodes(src, dst, [empty])            # implied, written if absent
    assert st.nodes == 1 and dst.has(empty)
    with pytest.raises(TypeError):
        replicate_nodes(src, {}, [empty])
    with pytest.raises(TypeError):
        replicate_nodes(src, dst, ["x" * 32])
    with pytest.raises(ValueError):
        replicate_nodes(src, dst, [b"short"])
    with pytest.raises(MissingNodeError):
        replicate_nodes(src, dst, [b"\x01" * 32])


def test_damaged_source_node_never_reaches_the_destination(tmp_path):
    src, dst = MemoryNodeStore(), MemoryNodeStore()
    model = {b"k%05d" % i: b"v" * 50 for i in range(3000)}
    root = build(src, model)
    victim = sorted(reachable(src, root) - {root})[0]
    other = next(a for a in src.addresses() if a != victim)
    src.put(victim, src.get(other))                    # wrong bytes under the address
    with pytest.raises(CorruptNodeError) as err:
        replicate_nodes(src, dst, [root])
    assert err.value.address == victim
    assert not dst.has(victim)
    assert not dst.has(root)                           # the parents were not written


class FailingStore(MemoryNodeStore):
    """A memory store that dies (raises) once ``budget`` more nodes were written: an
    interrupted transfer, deterministic."""

    def __init__(self) -> None:
        super().__init__()
        self.budget: int | None = None

    def _put_many(self, items):
        if self.budget is not None:
            if len(items) > self.budget:
                super()._put_many(items[:self.budget])
                self.budget = 0
                raise ConnectionError("link dropped")
            self.budget -= len(items)
        super()._put_many(items)


@pytest.mark.parametrize("where", [0.0, 0.3, 0.9, 1.0])
def test_interrupted_transfer_resumes_without_resending(where):
    src, dst = MemoryNodeStore(), FailingStore()
    model = {b"k%06d" % i: b"%d" % i * 3 for i in range(20000)}
    root = build(src, model)
    total = reachable(src, root)
    # 0.0: the first leaf; 1.0: among the internal nodes, written last
    cut = max(1, min(int(len(total) * where), len(total) - 2))
    dst.budget = cut
    with pytest.raises(ConnectionError):
        replicate_nodes(src, dst, [root])
    arrived = set(dst.addresses())
    assert len(arrived) == cut and root not in arrived
    # every node that arrived has its whole subtree there (what makes pruning sound)
    for a in arrived:
        assert reachable(dst, a) <= arrived
    dst.budget = None
    st = replicate_nodes(src, dst, [root])
    assert st.nodes == len(total) - cut                # nothing sent twice
    assert set(dst.addresses()) == total
    assert dict(ProllyTree.from_root(root, dst).items()) == model


# -- datasets ------------------------------------------------------------------------------


def dataset_contents(path: str, backend=StorageBackend.File) -> dict:
    """Everything observable of a dataset: per branch, its log and every tree's items."""
    s = VersionedKvStore(path, backend)
    try:
        out = {}
        for b in s.list_branches():
            out[b] = {
                "log": [(c["id"], c["message"]) for c in s.log(b)],
                "trees": {t: dict(s.iter_items_at(b, tree=t)) for t in s.list_trees_at(b)},
            }
        return out
    finally:
        s.close()


def make_source(path: str) -> dict:
    s = VersionedKvStore(path, StorageBackend.File)
    model: dict[str, dict[bytes, bytes]] = {"": {}, "ns/a": {}}
    for i in range(3):
        for j in range(200):
            k, v = b"k%04d" % (i * 100 + j), b"v%d-%d" % (i, j)
            s.insert(k, v)
            model[""][k] = v
        s.tree("ns/a").insert(b"a%d" % i, b"x")
        model["ns/a"][b"a%d" % i] = b"x"
        s.commit(f"commit {i}")
    s.close()
    return model


def test_replicate_dataset_file_to_file_then_incrementally(tmp_path):
    src_path, dst_path = str(tmp_path / "src"), str(tmp_path / "dst")
    model = make_source(src_path)
    with open_dataset_store(src_path) as src, open_dataset_store(dst_path, "file") as dst:
        st = replicate(src, dst, "main")
        assert st.commits == 4 and st.ref_moved          # 3 + the initial commit
        assert st.root_sets >= 3
    got = dataset_contents(dst_path)
    assert got == dataset_contents(src_path)
    assert got["main"]["trees"] == model
    # more commits at the source, then an incremental transfer
    s = VersionedKvStore(src_path, StorageBackend.File)
    s.insert(b"k0005", b"new")
    s.tree("ns/b").insert(b"b", b"1")
    s.commit("more")
    s.create_branch("side")
    s.close()
    with open_dataset_store(src_path) as src, open_dataset_store(dst_path) as dst:
        st = replicate(src, dst, "main")
        assert st.commits == 1 and st.root_sets == 1
        assert st.nodes < 20                              # a path per changed tree + records
        assert replicate(src, dst, "main").nodes == 0     # up to date
        side = replicate(src, dst, "side")                 # same commit: only a ref
        assert side.nodes == 0 and side.ref_moved
    assert dataset_contents(dst_path) == dataset_contents(src_path)
    # the destination is a working dataset
    d = VersionedKvStore(dst_path, StorageBackend.File)
    assert d.get(b"k0005") == b"new" and d.tree("ns/b").get(b"b") == b"1"
    d.insert(b"on-dest", b"1")
    d.commit("written at the destination")
    d.close()


def test_non_fast_forward_is_refused_unless_forced(tmp_path):
    src_path, dst_path = str(tmp_path / "src"), str(tmp_path / "dst")
    make_source(src_path)
    with open_dataset_store(src_path) as src, open_dataset_store(dst_path, "file") as dst:
        replicate(src, dst, "main")
    d = VersionedKvStore(dst_path, StorageBackend.File)
    d.insert(b"diverged", b"1")
    d.commit("only at the destination")
    d.close()
    s = VersionedKvStore(src_path, StorageBackend.File)
    s.insert(b"other", b"2")
    s.commit("only at the source")
    s.close()
    before = dataset_contents(dst_path)
    with open_dataset_store(src_path) as src, open_dataset_store(dst_path) as dst:
        with pytest.raises(NonFastForwardError):
            replicate(src, dst, "main")
        with pytest.raises(ValueError):                   # a ValueError subclass
            replicate(src, dst, "main")
    assert dataset_contents(dst_path) == before          # nothing moved
    with open_dataset_store(src_path) as src, open_dataset_store(dst_path) as dst:
        with pytest.raises(UnknownRefError):
            replicate(src, dst, "no-such-branch")
        with pytest.raises(TypeError):
            replicate(src, dst, "main", force=1)
        with pytest.raises(ValueError):
            replicate(src, dst, "../x")
        st = replicate(src, dst, "main", force=True)
        assert st.ref_moved and st.commits == 1
    assert dataset_contents(dst_path)["main"] == dataset_contents(src_path)["main"]


def test_interrupted_dataset_transfer_moves_no_ref_and_resumes(tmp_path):
    src_path = str(tmp_path / "src")
    make_source(src_path)
    dst = FailingStore()
    with open_dataset_store(src_path) as src:
        dst.budget = 15
        with pytest.raises(ConnectionError):
            replicate(src, dst, "main")
        assert dst.get_ref("refs/heads/main") is None     # the ref moves last
        sent_before = len(list(dst.addresses()))
        dst.budget = None
        st = replicate(src, dst, "main")
        total = len(list(dst.addresses()))
        assert st.nodes == total - sent_before
        assert dst.get_ref("refs/heads/main") == src.get_ref("refs/heads/main")


def test_version_1_datasets_replicate(tmp_path):
    with tarfile.open(os.path.join(FIXTURES, "v1-datasets.tar.gz")) as tf:
        tf.extractall(tmp_path, filter="data")
    src_path, dst_path = str(tmp_path / "fileds"), str(tmp_path / "copy")
    os.remove(os.path.join(src_path, "staging.journal"))   # staged changes are not sent
    shutil.copy(os.path.join(FIXTURES, "v1-datasets.tar.gz"), tmp_path / "keep.tgz")
    with open_dataset_store(src_path, "file") as src, \
            open_dataset_store(dst_path, "file") as dst:
        assert replicate(src, dst, "main").commits >= 1
        st = replicate(src, dst, "side")
        assert st.root_sets == 0                          # v1 commits have none
    got = dataset_contents(dst_path)
    assert got == dataset_contents(src_path)
    assert dict(got["side"]["trees"][""])[b"side"] == b"s"


def test_replicate_dataset_to_and_from_s3(s3_server, tmp_path):
    src_path = str(tmp_path / "src")
    model = make_source(src_path)
    url = s3_server.prefix_url("ds")
    with open_dataset_store(src_path) as src, open_dataset_store(url) as remote:
        st = replicate(src, remote, "main")
        assert st.commits == 4
    back = str(tmp_path / "back")
    with open_dataset_store(url, read_only=True) as remote, \
            open_dataset_store(back, "rocksdb") as dst:
        replicate(remote, dst, "main")
    got = dataset_contents(back, StorageBackend.RocksDB)
    assert got["main"]["trees"] == model
    assert got["main"]["log"] == dataset_contents(src_path)["main"]["log"]


KILL_WORKER = """
import sys
from prollytree.sync import open_dataset_store, replicate
src, dst = sys.argv[1], sys.argv[2]
with open_dataset_store(src, read_only=True) as s, open_dataset_store(dst, "file") as d:
    print("GO", flush=True)
    replicate(s, d, "main")
print("DONE", flush=True)
"""


def test_kill_9_mid_transfer_then_resume(tmp_path):
    """A real crash: the replicating process is killed at several moments. Whatever
    arrived is complete subtrees only, the ref never points at missing data, and the
    next run sends exactly what is missing."""
    import signal
    import subprocess
    import sys
    import time

    src_path = str(tmp_path / "src")
    s = VersionedKvStore(src_path, StorageBackend.File)
    rng = random.Random(3)
    s.insert_batch((b"key%07d" % i, b"%d" % rng.randrange(10 ** 18)) for i in range(150000))
    s.commit("big")
    s.close()
    with open_dataset_store(src_path, read_only=True) as src:
        tip = src.get_ref("refs/heads/main")
        # the initial commit's empty tree is implied at the source, written at the copy
        everything = set(src.addresses()) | {EMPTY_ROOT}
    partial: list[bool] = []
    def written(path: str) -> int:
        total = 0
        for root, _, files in os.walk(os.path.join(path, "nodes")):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return total

    # fixed delays, and one kill as soon as data has started arriving (on a fast, idle
    # machine the whole transfer can end before a fixed delay does)
    for n, delay in enumerate([0.0, 0.01, 0.03, 0.06, 0.12, "arriving"]):
        dst_path = str(tmp_path / f"dst{n}")
        proc = subprocess.Popen([sys.executable, "-c", KILL_WORKER, src_path, dst_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "GO", proc.stderr.read()
        if delay == "arriving":
            start = written(dst_path)
            deadline = time.monotonic() + 60
            while written(dst_path) <= start + 4096 and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.001)
        else:
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with open_dataset_store(src_path, read_only=True) as src, \
                open_dataset_store(dst_path, "file") as dst:
            arrived = set(dst.addresses())
            assert arrived <= everything
            ref = dst.get_ref("refs/heads/main")
            assert ref in (None, tip)
            partial.append(0 < len(arrived) < len(everything))
            tree_nodes = {a for a in arrived if a != tip and a in everything}
            for a in tree_nodes:                         # complete subtrees only
                data = dst.get(a)
                try:
                    node = decode(data, a)
                except CorruptNodeError:
                    continue                             # a commit or root-set record
                if node.level > 0:
                    assert set(node.vals) <= arrived
            st = replicate(src, dst, "main")
            assert st.nodes == len(everything) - len(arrived)
            assert set(dst.addresses()) == everything
            assert dst.get_ref("refs/heads/main") == tip
    assert any(partial)                                  # at least one kill mid-transfer


class RecordingStore(MemoryNodeStore):
    """A memory store that records each put_many call and flush, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list = []

    def _put_many(self, items):
        self.events.append(("put", [a for a, _ in items]))
        super()._put_many(items)

    def flush(self) -> None:
        self.events.append(("flush", None))


def test_every_record_is_written_after_what_it_refers_to_is_flushed(tmp_path):
    """Stores may write one put_many's items in any order (S3 does, in parallel): so a
    commit must be in a later call than its parents and its root set, a node in a later
    call than its children, with a flush in between. Checked on a history with branches
    and merges."""
    import msgpack

    src_path = str(tmp_path / "src")
    s = VersionedKvStore(src_path, StorageBackend.File)
    rng = random.Random(5)
    for i in range(4):
        s.insert_batch((b"k%05d" % rng.randrange(20000), b"%d" % i) for _ in range(3000))
        s.commit(f"main {i}")
        s.create_branch(f"b{i}")
        s.tree(f"ns/{i}").insert(b"x", b"%d" % i)
        s.insert(b"only-b%d" % i, b"1")
        s.commit(f"branch {i}")
        s.checkout("main")
        s.insert(b"only-main%d" % i, b"1")
        s.commit(f"main again {i}")
        s.merge(f"b{i}")                           # a two-parent merge commit
    s.close()
    dst = RecordingStore()
    with open_dataset_store(src_path, read_only=True) as src:
        st = replicate(src, dst, "main")
    assert st.commits == 1 + 4 * 4
    durable_before: dict[bytes, int] = {}       # address -> index of the flush after it
    pending: list[bytes] = []
    call_of: dict[bytes, int] = {}
    for n, (kind, addrs) in enumerate(dst.events):
        if kind == "put":
            for a in addrs:
                call_of.setdefault(a, n)
            pending.extend(addrs)
        else:
            for a in pending:
                durable_before.setdefault(a, n)
            pending = []
    for a, n in call_of.items():
        data = dst.get(a)
        try:
            refs = [] if decode(data, a).level == 0 else decode(data, a).vals
        except CorruptNodeError:
            rec = msgpack.unpackb(data, raw=False)
            if rec[0] == b"prollytree-commit":
                refs = list(rec[3]) + [rec[2]]
            else:                                   # a root set: its trees' roots
                refs = [e[1] for e in rec[2]]
        for r in refs:
            if r in call_of:
                assert durable_before[r] < n, "written before what it refers to was flushed"
    assert dataset_contents(str(tmp_path / "src"))["main"]["log"]  # source still fine


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(st.lists(st.dictionaries(st.binary(min_size=1, max_size=6), st.binary(max_size=40),
                                max_size=400), min_size=1, max_size=4),
       st.lists(st.integers(0, 3), max_size=4))
def test_any_sequence_of_trees_replicates_exactly_the_missing_nodes(models, resend):
    """Trees built one after another at the source, each replicated (some twice, some
    not at all): every transfer sends exactly the reachable nodes the destination lacks,
    and the destination ends with exactly the union of what was replicated."""
    src, dst = MemoryNodeStore(), MemoryNodeStore()
    have: set[bytes] = set()
    roots = [build(src, m) for m in models]
    order = list(range(len(models))) + [i for i in resend if i < len(models)]
    done: list[bytes] = []
    for n, i in enumerate(order):
        want = reachable(src, roots[i])
        # every other transfer compares with the trees already sent (a valid base)
        base = done if n % 2 else []
        stats = replicate_nodes(src, dst, [roots[i]], base_roots=base + [b"\x07" * 32])
        done.append(roots[i])
        assert stats.nodes == len(want - have)
        have |= want
        assert set(dst.addresses()) == have
        assert dict(ProllyTree.from_root(roots[i], dst).items()) == models[i]


def test_open_dataset_store_arguments(tmp_path):
    with pytest.raises(TypeError):
        open_dataset_store(5)
    with pytest.raises(TypeError):
        open_dataset_store(str(tmp_path), kind=3)
    with pytest.raises(ValueError, match="not a dataset"):
        open_dataset_store(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="not a dataset"):
        open_dataset_store(str(tmp_path / "nothing"), "file", read_only=True)
    with pytest.raises(ValueError, match="kind must be"):
        open_dataset_store(str(tmp_path / "nothing"), "sqlite")
    with pytest.raises(ValueError, match="S3 location"):
        open_dataset_store("s3://bucket/x", "file")
    assert not (tmp_path / "nothing").exists()           # failed calls create nothing
    make_source(str(tmp_path / "ds"))
    with pytest.raises(ValueError, match="holds a file dataset"):
        open_dataset_store(str(tmp_path / "ds"), "rocksdb")
    with open_dataset_store(str(tmp_path / "ds"), read_only=True) as st_:
        assert st_.read_only and st_.get_ref("refs/heads/main") is not None


class CountingStore(MemoryNodeStore):
    """A memory store that counts existence checks (the remote requests on S3)."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def _has(self, address):
        self.checks += 1
        return super()._has(address)


def test_a_base_tree_spares_the_destination_checks_of_shared_subtrees():
    src, dst = MemoryNodeStore(), CountingStore()
    rng = random.Random(11)
    model = {b"k%06d" % i: b"v%d" % i for i in range(50000)}
    old = build(src, model)
    replicate_nodes(src, dst, [old])
    for k in rng.sample(sorted(model), 50):
        model[k] = b"changed"
    new = build(src, model)
    missing = reachable(src, new) - reachable(src, old)
    dst.checks = 0
    blind = replicate_nodes(src, copy := CountingStore(), [old])   # noqa: F841
    copy.checks = 0
    without = replicate_nodes(src, copy, [new])
    checks_without = copy.checks
    with_base = replicate_nodes(src, dst, [new], base_roots=[old])
    assert with_base.nodes == without.nodes == len(missing)
    assert dst.checks <= len(missing)                  # only the differing nodes
    assert checks_without > 5 * dst.checks, (checks_without, dst.checks)
    assert dict(ProllyTree.from_root(new, dst).items()) == model


def test_trees_replicate_to_and_from_git_node_stores(tmp_path):
    """replicate_nodes between a Git repository's node store and the others: the trees
    arrive whole (dict model), and an incremental copy sends exactly the nodes of the
    new tree the old one lacks (brute force); dataset-level replicate refuses a Git
    store, nothing written."""
    import subprocess

    from prollytree.storage.git import GitNodeStore

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "r")], check=True)
    s = VersionedKvStore(tmp_path / "r" / "data")
    model = {b"k%05d" % i: b"v%d" % i for i in range(6000)}
    s.insert_batch(sorted(model.items()))
    s.commit("load")
    old_root = s.root_hash()
    mem = MemoryNodeStore()
    st = replicate_nodes(s.backend.store, mem, [old_root])
    assert st.nodes == len(reachable(mem, old_root))
    assert dict(ProllyTree.from_root(old_root, mem).items()) == model
    for i in range(0, 6000, 600):
        s.insert(b"k%05d" % i, b"changed")
        model[b"k%05d" % i] = b"changed"
    s.commit("ten changes")
    new_root = s.root_hash()
    st = replicate_nodes(s.backend.store, mem, [new_root], base_roots=[old_root])
    assert st.nodes == len(reachable(s.backend.store, new_root)
                           - reachable(s.backend.store, old_root))
    assert dict(ProllyTree.from_root(new_root, mem).items()) == model
    s.close()
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "r2")], check=True)
    with GitNodeStore(str(tmp_path / "r2")) as g:
        st = replicate_nodes(mem, g, [new_root])
        assert st.nodes == len(reachable(mem, new_root))
        assert replicate_nodes(mem, g, [new_root]).nodes == 0
    with GitNodeStore(str(tmp_path / "r2"), read_only=True) as g:
        assert dict(ProllyTree.from_root(new_root, g).items()) == model
        dst = MemoryNodeStore()
        with pytest.raises(ValueError, match="Git remotes"):
            replicate(g, dst, "main")
        assert not list(dst.addresses()) and not dict(dst.refs())
