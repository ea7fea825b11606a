"""The streaming pack writer (prollytree.git.packstream) and the Git node store's write
sessions, checked with the real ``git`` binary."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import zlib

import pytest

from prollytree.git.objects import git_raw_id
from prollytree.git.pack import PackReader, merge_small_packs, write_pack
from prollytree.git.packstream import PackStream, remove_stale, stored_zlib
from prollytree.storage.git import SPILL_BYTES, GitNodeStore


def git(cwd, *args, check=True, input=None):
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, input=input)
    if check and r.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {r.stderr.decode()}")
    return r


def packs(pack_dir) -> set:
    return {n for n in os.listdir(pack_dir) if n.endswith((".pack", ".idx"))}


def cat_file(repo, shas) -> dict:
    """{sha hex: (type, body)} as ``git cat-file --batch`` reads them."""
    out = git(repo, "cat-file", "--batch",
              input=b"".join(s.encode() + b"\n" for s in shas)).stdout
    got, pos = {}, 0
    for s in shas:
        nl = out.index(b"\n", pos)
        sha, kind, size = out[pos:nl].split()
        size = int(size)
        got[sha.decode()] = (kind, out[nl + 1:nl + 1 + size])
        pos = nl + 1 + size + 1
    return got


@pytest.mark.parametrize("n", [0, 1, 65534, 65535, 65536, 131071, 200_000])
def test_stored_zlib_is_a_zlib_stream(n):
    body = random.Random(n).randbytes(n)
    z = b"".join(bytes(p) for p in stored_zlib(body))
    d = zlib.decompressobj()
    assert d.decompress(z) == body and d.eof and not d.unused_data


def _objects(seed: int, count: int) -> list:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        if i % 3 == 0:
            body = rnd.randbytes(rnd.choice([0, 10, 70_000, 140_000, 300_000]))
        elif i % 3 == 1:
            body = (b"text %d " % i) * rnd.randrange(1, 5000)    # compressible: level 1
        else:
            body = rnd.randbytes(rnd.randrange(1, 300))
        out.append((b"blob", git_raw_id(b"blob", body), body))
    return out


def test_pack_stream_output_is_read_by_git(tmp_path):
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    pack_dir = repo / ".git" / "objects" / "pack"
    tmp_dir = repo / ".git" / "prollytree"
    objs = _objects(1, 120)
    before = packs(pack_dir)
    s = PackStream(str(pack_dir), str(tmp_dir))
    for i, (kind, sha, body) in enumerate(objs):
        # half with ids computed by the writer thread, remembered under a key
        s.add(kind, None if i % 2 else sha, body, key=i)
        if i == 60:
            assert packs(pack_dir) == before           # nothing visible while open
            assert s.read(objs[10][1]) == (3, objs[10][2])   # readable meanwhile
    s.add(*objs[5])                                    # a duplicate: written once
    assert s.keys() == {i: sha for i, (_, sha, _) in enumerate(objs)}
    base = s.finish()
    assert base is not None and os.listdir(tmp_dir) == []
    assert packs(pack_dir) - before == {os.path.basename(base) + ".pack",
                                        os.path.basename(base) + ".idx"}
    distinct = {sha for _, sha, _ in objs}
    v = git(repo, "verify-pack", "-v", base + ".idx").stdout.decode()
    assert f"non delta: {len(distinct)} objects" in v
    got = cat_file(repo, [sha.hex() for sha in distinct])
    for kind, sha, body in objs:
        assert got[sha.hex()] == (b"blob", body)
    git(repo, "fsck", "--strict", "--no-dangling")
    reader = PackReader(str(pack_dir))
    for _, sha, body in objs:
        assert reader.get(sha) == (3, body)


def test_empty_or_aborted_stream_leaves_nothing(tmp_path):
    pack_dir, tmp_dir = tmp_path / "pack", tmp_path / "tmp"
    s = PackStream(str(pack_dir), str(tmp_dir))
    assert s.finish() is None
    s = PackStream(str(pack_dir), str(tmp_dir))
    for o in _objects(2, 30):
        s.add(*o)
    s.abort()
    assert os.listdir(pack_dir) == [] and os.listdir(tmp_dir) == []
    with pytest.raises(ValueError):
        s.add(*_objects(3, 1)[0])


def test_same_objects_twice_make_one_pack(tmp_path):
    pack_dir = tmp_path / "pack"
    objs = _objects(4, 20)
    bases = set()
    for _ in range(2):
        with PackStream(str(pack_dir)) as s:
            for o in objs:
                s.add(*o)
        bases.add(tuple(sorted(os.listdir(pack_dir))))
    assert len(bases) == 1 and len(os.listdir(pack_dir)) == 2


_KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    from prollytree.git.packstream import PackStream
    s = PackStream(sys.argv[1], sys.argv[2])
    for i in range(40):
        s.add(b"blob", None, os.urandom(100_000))
    len(s)                        # waits until the writer thread wrote everything
    print(s.path, flush=True)
    time.sleep(60)
""")


def test_remove_stale_deletes_only_dead_writers_files(tmp_path):
    pack_dir, tmp_dir = tmp_path / "pack", tmp_path / "tmp"
    live = PackStream(str(pack_dir), str(tmp_dir))
    live.add(*_objects(5, 1)[0])
    p = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(pack_dir), str(tmp_dir)],
                         stdout=subprocess.PIPE, text=True)
    dead = p.stdout.readline().strip()
    assert os.path.getsize(dead) > 1_000_000
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert remove_stale(str(tmp_dir), str(pack_dir)) == 1
    assert not os.path.exists(dead) and os.path.exists(live.path)
    assert live.finish() is not None
    assert os.listdir(tmp_dir) == []


def test_crash_between_link_and_index_is_cleaned(tmp_path):
    """A writer killed after linking the finished pack, before its index: the next
    cleaner removes the unindexed pack (invisible meanwhile) and the temporary file."""
    pack_dir, tmp_dir = tmp_path / "pack", tmp_path / "tmp"
    s = PackStream(str(pack_dir), str(tmp_dir))
    for o in _objects(6, 10):
        s.add(*o)
    len(s)                                  # everything written; then finish's steps
    fd = s._fd                              # by hand, up to the link
    os.pwrite(fd, len(s._objects).to_bytes(4, "big"), 8)
    end = s._written
    body = os.pread(fd, end, 0)
    sha = hashlib.sha1(body).digest()
    os.pwrite(fd, sha, end)
    os.link(s.path, str(pack_dir / f"pack-{sha.hex()}.pack"))
    # the process dies here: its flock goes with its descriptor
    os.close(fd)
    s._fd = None
    s._pool.shutdown()
    assert PackReader(str(pack_dir)).get(_objects(6, 10)[0][1]) is None   # invisible
    assert remove_stale(str(tmp_dir), str(pack_dir)) == 1
    assert os.listdir(pack_dir) == [] and os.listdir(tmp_dir) == []


def test_node_store_session_one_pack_reads_meanwhile(tmp_path):
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    store = GitNodeStore(str(repo))
    pack_dir = store.pack_dir
    rnd = random.Random(7)
    model = {}
    before = packs(pack_dir) if os.path.isdir(pack_dir) else set()
    with store.write_session():
        for batch in range(5):
            items = []
            for _ in range(40):
                data = rnd.randbytes(100_000)
                addr = hashlib.sha256(data).digest()
                items.append((addr, data))
                model[addr] = data
            store.put_many(items)
            # past the spill size the nodes are in the open pack, still readable
            for addr, data in items:
                assert store.holds(addr) and store.get(addr) == data
        assert len(model) * 100_000 > 2 * SPILL_BYTES
        assert store._stream is not None and packs(pack_dir) == before
    new = packs(pack_dir) - before
    assert len(new) == 2                                   # one pack and its index
    assert os.listdir(store.state_dir) == ["nodemap"]
    store.close()
    store = GitNodeStore(str(repo))                        # the map names them all
    for addr, data in model.items():
        assert store.get(addr) == data
    store.close()
    (idx,) = [n for n in new if n.endswith(".idx")]
    git(repo, "verify-pack", os.path.join(pack_dir, idx))
    git(repo, "fsck", "--strict", "--no-dangling")


def test_session_error_keeps_what_was_written_consistent(tmp_path):
    store = GitNodeStore(str(tmp_path / "r"))
    rnd = random.Random(8)
    items = [(hashlib.sha256(d).digest(), d) for d in
             (rnd.randbytes(200_000) for _ in range(50))]
    with pytest.raises(RuntimeError):
        with store.write_session():
            store.put_many(items)
            raise RuntimeError("the reader failed")
    # the session flushed what it had: every node put is readable, after a reopen too
    store.close()
    store = GitNodeStore(str(tmp_path / "r"))
    assert all(store.get(a) == d for a, d in items)
    store.discard_pending()
    store.close()


def test_discard_pending_drops_the_open_pack(tmp_path):
    store = GitNodeStore(str(tmp_path / "r"))
    rnd = random.Random(9)
    items = [(hashlib.sha256(d).digest(), d) for d in
             (rnd.randbytes(200_000) for _ in range(50))]
    before = packs(store.pack_dir) if os.path.isdir(store.pack_dir) else set()
    with store.write_session():
        store.put_many(items)
        assert store._stream is not None
        store.discard_pending()
    assert packs(store.pack_dir) == before
    assert os.listdir(store.state_dir) in ([], ["nodemap"])
    assert all(store.get(a) is None for a, _ in items)
    store.close()


def test_merge_small_packs_keeps_a_big_pack(tmp_path):
    """Consolidation rewrites small packs only: the pack of a large value stays as is."""
    pack_dir = tmp_path / "pack"
    rnd = random.Random(10)
    with PackStream(str(pack_dir)) as s:
        for _ in range(40):
            b = rnd.randbytes(100_000)
            s.add(b"blob", git_raw_id(b"blob", b), b)
    (big,) = [n for n in os.listdir(pack_dir) if n.endswith(".pack")]
    ino = os.stat(pack_dir / big).st_ino
    small = {}
    for i in range(12):
        b = b"small %d" % i
        small[git_raw_id(b"blob", b)] = b
        write_pack(str(pack_dir), [(b"blob", git_raw_id(b"blob", b), b)])
    reader = PackReader(str(pack_dir))

    def read_raw(sha):
        got = reader.get(sha)
        if got is None:
            raise KeyError(sha)
        return got
    assert merge_small_packs(str(pack_dir), read_raw, keep_largest=1,
                             max_small_bytes=1 << 20) == 12
    assert os.stat(pack_dir / big).st_ino == ino
    assert len([n for n in os.listdir(pack_dir) if n.endswith(".pack")]) == 2
    reader = PackReader(str(pack_dir))
    assert all(reader.get(sha) == (3, b) for sha, b in small.items())


@pytest.mark.skipif(sys.platform != "linux", reason="timing of a kill")
def test_kill_mid_stream_then_reopen(tmp_path):
    """kill -9 while a value streams into a versioned Git store: nothing half-written
    is visible, the next open removes the temporary pack, commits go on, fsck clean."""
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    script = textwrap.dedent("""
        import os, sys, time
        from prollytree.versioning import VersionedKvStore
        s = VersionedKvStore(sys.argv[1])
        s.insert(b"small", b"1")
        s.commit("one")

        class Slow:
            sent = 0
            def read(self, n):
                if self.sent > 30_000_000:
                    print("streaming", flush=True)
                    time.sleep(60)
                self.sent += n
                return os.urandom(n)
        s.insert_stream(b"big", Slow())
    """)
    p = subprocess.Popen([sys.executable, "-c", script, str(repo / "data")],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "streaming"
    state = repo / ".git" / "prollytree"
    pack_dir = repo / ".git" / "objects" / "pack"
    tmp = [n for n in os.listdir(state) if n.endswith(".pack.tmp")]
    assert len(tmp) == 1 and os.path.getsize(state / tmp[0]) > SPILL_BYTES
    visible = packs(pack_dir)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert packs(pack_dir) == visible
    git(repo, "fsck", "--strict", "--no-dangling")
    from prollytree.versioning import VersionedKvStore
    s = VersionedKvStore(str(repo / "data"))
    assert not any(n.endswith(".tmp") for n in os.listdir(state))
    assert s.get(b"small") == b"1" and s.get(b"big") is None
    v = random.Random(11).randbytes(3 * SPILL_BYTES)
    import io
    s.insert_stream(b"big", io.BytesIO(v))
    s.commit("two")
    s.close()
    s = VersionedKvStore(str(repo / "data"))
    assert s.get(b"big") == v
    s.close()
    git(repo, "fsck", "--strict", "--no-dangling")
    assert git(repo, "status", "--porcelain").stdout == b""


def test_prolly_tree_insert_stream_in_a_session(tmp_path):
    """The tree layer on a Git store: a session around insert_stream streams the chunks
    into one pack; the value reads back equal, after a reopen too."""
    import io

    from prollytree import ProllyTree
    from prollytree.tree import EMPTY_ROOT

    store = GitNodeStore(str(tmp_path / "r"))
    t = ProllyTree.from_root(EMPTY_ROOT, store)
    v = random.Random(12).randbytes(3 * SPILL_BYTES)
    pack_dir = store.pack_dir
    before = packs(pack_dir) if os.path.isdir(pack_dir) else set()
    with store.write_session():
        assert t.insert_stream(b"big", io.BytesIO(v)) == len(v)
        assert t.get(b"big") == v                   # chunks read from the open pack
    assert len(packs(pack_dir) - before) == 2       # one pack + its index
    # without a session of the caller's, insert_stream opens one itself: one more pack
    w = random.Random(13).randbytes(3 * SPILL_BYTES)
    assert t.insert_stream(b"big2", io.BytesIO(w)) == len(w)
    assert len(packs(pack_dir) - before) == 4
    assert t.get(b"big2") == w
    assert t.get(b"big") == v
    t.flush()
    root = t.get_root_hash()
    store.close()
    store = GitNodeStore(str(tmp_path / "r"))
    assert ProllyTree.from_root(root, store).get(b"big") == v
    store.close()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_bodies = st.one_of(
    st.binary(max_size=300),
    st.integers(0, 200_000).map(lambda n: random.Random(n).randbytes(n)),
    st.tuples(st.binary(min_size=1, max_size=8), st.integers(1, 20_000)).map(
        lambda t: t[0] * t[1]),
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(_bodies, st.booleans(), st.booleans()), min_size=1,
                    max_size=25))
def test_pack_stream_model(tmp_path_factory, ops):
    """Any sequence of blobs (duplicates, empty, incompressible, compressible; ids
    given or computed; reads in between) makes a pack Git reads back as the model."""
    kind = b"blob"
    d = tmp_path_factory.mktemp("ps")
    git(d, "init", "-q", "--bare", "r.git")
    pack_dir = d / "r.git" / "objects" / "pack"
    model = {}
    s = PackStream(str(pack_dir), str(d / "tmp"))
    for body, give_id, read_now in ops:
        sha = git_raw_id(kind, body)
        s.add(kind, sha if give_id else None, body, key=sha)
        model[sha] = body
        if read_now:
            assert s.read(sha) == (3, body)
    assert s.keys() == {k: k for k in model}
    base = s.finish()
    assert os.listdir(d / "tmp") == []
    v = git(d / "r.git", "verify-pack", "-v", base + ".idx").stdout.decode()
    assert f"non delta: {len(model)} object" in v
    got = cat_file(d / "r.git", [sha.hex() for sha in model])
    assert {bytes.fromhex(k): b for k, (_, b) in got.items()} == model


def test_a_failed_write_breaks_the_stream_cleanly(tmp_path):
    """An error in the writer thread (here: a body of the wrong type) refuses every
    later call but abort, and abort leaves nothing."""
    pack_dir, tmp_dir = tmp_path / "pack", tmp_path / "tmp"
    s = PackStream(str(pack_dir), str(tmp_dir))
    for o in _objects(13, 5):
        s.add(*o)
    s.add(b"blob", None, [1, 2, 3])        # not bytes: fails on the writer thread
    with pytest.raises(TypeError):
        len(s)
    with pytest.raises(OSError, match="failed earlier"):
        s.add(*_objects(14, 1)[0])
    with pytest.raises(OSError):
        s.finish()
    assert os.listdir(pack_dir) == [] and os.listdir(tmp_dir) == []
