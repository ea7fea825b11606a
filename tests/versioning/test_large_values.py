"""Large values in versioned stores on every backend, and with real Git (issue 14)."""

import io
import os
import random

import pytest

from prollytree.versioning import StorageBackend, VersionedKvStore

from .conftest import git


def data(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def test_stage_commit_read_diff_on_every_backend(make_store, backend):
    s = make_store()
    v = data(1_500_000, 1)
    s.insert(b"plain", v)                        # chunked at commit
    n = s.insert_stream(b"stream", io.BytesIO(v[::-1]))
    assert n == len(v)
    assert s.get(b"stream") == v[::-1]           # staged envelope reads
    with s.open_value(b"stream") as f:
        f.seek(1000)
        assert f.read(10) == v[::-1][1000:1010]
    c1 = s.commit("one")
    v2 = v[:700_000] + b"EDIT" + v[700_001:]
    s.insert(b"plain", v2)
    c2 = s.commit("two")
    assert s.get(b"plain") == v2 and s.get_at(c1, b"plain") == v
    assert dict(s.iter_items_at(c1)) == {b"plain": v, b"stream": v[::-1]}
    d = s.diff(c1, c2)
    assert [(x.key, x.old_value, x.new_value) for x in d] == [(b"plain", v, v2)]
    assert s.open_value(b"absent") is None
    t = s.tree("docs")
    t.insert(b"x", v)
    s.commit("named")
    assert s.tree("docs").get(b"x") == v
    rep = s.fsck()
    assert rep["ok"], rep["problems"][:3]


def test_gc_keeps_staged_and_committed_chunks_and_drops_dead_ones(tmp_path):
    for backend in (StorageBackend.File, StorageBackend.LMDB):
        path = str(tmp_path / backend.name)
        s = VersionedKvStore(path, backend)
        v = data(1_000_000, 2)
        s.insert(b"keep", v)
        s.commit("keep")
        s.insert_stream(b"staged", io.BytesIO(v[::-1]))   # chunks in the store, not committed
        r = s.gc()
        assert r["removed"] == 0
        assert s.get(b"staged") == v[::-1]
        s.commit("staged")
        assert s.get(b"staged") == v[::-1] and s.get(b"keep") == v
        # a branch-only value becomes garbage once the branch is deleted
        s.create_branch("side")
        s.insert(b"doomed", data(800_000, 3))
        s.commit("side")
        s.checkout("main")
        s.delete_branch("side", force=True)
        r = s.gc()
        assert r["removed"] >= 4, r                       # its chunks went
        assert s.fsck()["ok"] and s.get(b"keep") == v and s.get(b"staged") == v[::-1]
        s.close()
        s = VersionedKvStore(path, backend)
        assert s.get(b"staged") == v[::-1]
        s.close()


def test_staging_journal_holds_the_envelope_not_the_value(tmp_path):
    s = VersionedKvStore(str(tmp_path / "ds"), StorageBackend.File)
    s.insert_stream(b"big", io.BytesIO(data(3_000_000, 4)))
    journals = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs
                if f == "staging.journal"]
    assert journals and all(os.path.getsize(j) < 4096 for j in journals)
    s.close()
    s = VersionedKvStore(str(tmp_path / "ds"), StorageBackend.File)  # reopened: still staged
    assert s.get(b"big") == data(3_000_000, 4)
    s.commit("c")
    assert s.get(b"big") == data(3_000_000, 4)
    s.close()


def _fsck_clean(repo):
    r = git(repo, "fsck", "--strict", "--no-dangling", check=False)
    assert r.returncode == 0 and "missing" not in r.stderr, r.stdout + r.stderr


def test_real_git_fsck_gc_clone_keep_chunks(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    s = VersionedKvStore(str(repo / "data"))
    v = data(2_000_000, 5)
    s.insert_stream(b"big", io.BytesIO(v))
    s.insert(b"small", b"s")
    s.commit("one")
    v2 = v[:10] + b"!" + v[11:]
    s.insert(b"big", v2)
    s.insert(b"other", data(300_000, 6))
    s.commit("two")
    s.close()
    assert git(repo, "status", "--porcelain").stdout == ""   # the index matches the commit
    _fsck_clean(repo)
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "--prune=now", "-q")
    _fsck_clean(repo)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-local", str(repo), str(clone))
    c = VersionedKvStore(str(clone / "data"))
    assert c.get(b"big") == v2 and c.get_at("HEAD~1", b"big") == v
    assert c.get(b"other") == data(300_000, 6)
    assert c.fsck()["ok"]
    c.insert(b"big", v)          # back to v: chunks from history, reused
    c.commit("three")
    c.close()
    _fsck_clean(clone)


def test_git_streamed_value_is_one_pack_and_survives_gc_and_clone(tmp_path):
    """A value crossing many write batches lands in ONE new pack (no pack per batch),
    reads back equal to the model, dedups repeated chunks across batches, and Git's own
    tools keep it."""
    from prollytree.storage.git import SPILL_BYTES

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"small", b"s")
    s.commit("one")
    pack_dir = repo / ".git" / "objects" / "pack"
    before = {n for n in os.listdir(pack_dir) if n.endswith(".pack")}
    a = data(2 * SPILL_BYTES, 21)
    v = a + data(SPILL_BYTES // 2, 22) + a + data(SPILL_BYTES, 23)   # ~5.5 batches
    assert s.insert_stream(b"big", io.BytesIO(v)) == len(v)
    new = {n for n in os.listdir(pack_dir) if n.endswith(".pack")} - before
    assert len(new) == 1
    (pack,) = new
    # the repeated part is stored once: the pack is about the distinct bytes
    assert os.path.getsize(pack_dir / pack) < len(v) - len(a) + (1 << 20)
    git(repo, "verify-pack", str(pack_dir / pack.replace(".pack", ".idx")))
    with s.open_value(b"big") as f:
        f.seek(len(a) + 5)
        assert f.read(100) == v[len(a) + 5:len(a) + 105]
    s.commit("two")
    s.close()
    s = VersionedKvStore(str(repo / "data"))
    assert s.get(b"big") == v
    s.close()
    _fsck_clean(repo)
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "--prune=now", "-q")
    _fsck_clean(repo)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-local", str(repo), str(clone))
    c = VersionedKvStore(str(clone / "data"))
    assert c.get(b"big") == v and c.get(b"small") == b"s"
    c.close()


def test_git_consolidation_merges_small_packs_not_the_value_pack(tmp_path, monkeypatch):
    from prollytree.versioning import git_backend
    monkeypatch.setattr(git_backend, "AUTO_PACK_LIMIT", 4)
    path = tmp_path / "ds"
    s = VersionedKvStore(str(path))
    v = data(3_000_000, 31)
    s.insert_stream(b"big", io.BytesIO(v))
    pack_dir = path / ".git" / "objects" / "pack"
    big = max((n for n in os.listdir(pack_dir) if n.endswith(".pack")),
              key=lambda n: os.path.getsize(pack_dir / n))
    assert os.path.getsize(pack_dir / big) > len(v)    # the value's own pack
    ino = os.stat(pack_dir / big).st_ino
    for i in range(12):
        s.insert(b"k%d" % i, b"v%d" % i)
        s.commit(f"c{i}")
    names = [n for n in os.listdir(pack_dir) if n.endswith(".pack")]
    assert len(names) <= 5 and big in names            # merged, the big one kept as is
    assert os.stat(pack_dir / big).st_ino == ino
    assert not [n for n in os.listdir(pack_dir) if ".tmp" in n]
    s.close()
    s = VersionedKvStore(str(path))
    assert s.get(b"big") == v and s.get(b"k3") == b"v3"
    s.close()
    _fsck_clean(path)


def _store_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _dedup(tmp_path, size, versions, backend):
    path = tmp_path / backend.name
    s = VersionedKvStore(str(path), backend)
    v = bytearray(data(size, 7))
    s.insert_stream(b"v", io.BytesIO(bytes(v)))
    s.commit("v0")
    start = _store_bytes(path)
    rnd = random.Random(8)
    for i in range(1, versions):
        pos = rnd.randrange(len(v))
        v[pos:pos + 1] = b"edit %d" % i
        s.insert_stream(b"v", io.BytesIO(bytes(v)))
        s.commit(f"v{i}")
    grown = (_store_bytes(path) - start) / (versions - 1)
    assert s.get(b"v") == bytes(v)
    s.close()
    return grown


@pytest.mark.parametrize("backend", [StorageBackend.File, StorageBackend.Git], ids=str)
def test_dedup_small_edits_grow_storage_little(tmp_path, backend):
    if backend is StorageBackend.Git:
        git(tmp_path, "init", "-q", str(tmp_path / "Git"))
    size = 5_000_000
    grown = _dedup(tmp_path, size, 5, backend)
    # a 5 MB value: a chunk or two (<= 512 KiB) plus leaf and commit per version
    assert grown < 0.15 * size, grown


@pytest.mark.slow
@pytest.mark.parametrize("backend", [StorageBackend.File, StorageBackend.Git], ids=str)
def test_dedup_100mb_20_versions(tmp_path, backend):
    if backend is StorageBackend.Git:
        git(tmp_path, "init", "-q", str(tmp_path / "Git"))
    size = 100_000_000
    grown = _dedup(tmp_path, size, 20, backend)
    print(f"{backend.name}: {grown / size:.3%} of the value per version")
    assert grown < 0.02 * size, grown


def test_merge_of_large_values_conflicts_show_bytes(make_store):
    s = make_store()
    base = data(900_000, 20)
    s.insert(b"doc", base)
    s.insert(b"other", base)
    s.commit("base")
    s.create_branch("feature")
    ours, theirs = base[:5] + b"OURS" + base[9:], base[:-5] + b"THEIRS"
    s.insert(b"doc", theirs)
    s.insert(b"other", base[::-1])               # only the feature changes it
    s.commit("feature")
    s.checkout("main")
    s.insert(b"doc", ours)
    s.commit("main")
    seen = []

    def pick(conflict):
        seen.append(conflict)
        return conflict.source_value

    s.merge("feature", pick)
    assert len(seen) == 1
    c = seen[0]
    assert (c.key, c.base_value, c.source_value, c.destination_value) == (
        b"doc", base, theirs, ours)
    assert s.get(b"doc") == theirs and s.get(b"other") == base[::-1]
    assert s.fsck()["ok"]


def test_replication_carries_chunks(tmp_path):
    from prollytree.sync import open_dataset_store, replicate

    src_path, dst_path = str(tmp_path / "src"), str(tmp_path / "dst")
    s = VersionedKvStore(src_path, StorageBackend.File)
    v = data(1_200_000, 30)
    s.insert_stream(b"big", io.BytesIO(v))
    s.commit("big")
    s.close()
    with open_dataset_store(src_path) as src, open_dataset_store(dst_path, "file") as dst:
        replicate(src, dst, "main")
    s = VersionedKvStore(src_path, StorageBackend.File)
    s.insert(b"big", v[:100] + b"!" + v[101:])
    s.commit("edit")
    s.close()
    with open_dataset_store(src_path) as src, open_dataset_store(dst_path) as dst:
        st = replicate(src, dst, "main")
        assert st.bytes < 600_000                   # only the changed chunks travel
    d = VersionedKvStore(dst_path, StorageBackend.File)
    assert d.get(b"big") == v[:100] + b"!" + v[101:] and d.get_at("HEAD~1", b"big") == v
    assert d.fsck()["ok"]
    d.close()
