"""Damage is reported, never crashes, never serves wrong data: targeted cases per backend
and the random byte-flip fuzz (tests/reliability/damage.py)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest

from prollytree import ProllyTree
from prollytree.errors import CorruptNodeError, ProllyError, StoreError, StoreLockedError
from prollytree.storage.git import GitNodeStore
from prollytree.tree.codec import EMPTY_ROOT

from . import damage

pytest.importorskip("rocksdict")
pytest.importorskip("lmdb")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flip(path, offset, bit=1):
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ bit]))


def git_tree(path, n=600):
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    store = GitNodeStore(str(path))
    tree = ProllyTree.from_root(EMPTY_ROOT, store)
    model = {b"k%05d" % i: b"v%d" % i for i in range(n)}
    tree.insert_batch(sorted(model.items()))
    tree.flush()
    store.flush()
    root = tree.get_root_hash()
    store.close()
    return model, root


# -- Git node store -------------------------------------------------------------------------


def test_git_node_map_damage_is_rebuilt_by_itself(tmp_path):
    model, root = git_tree(tmp_path / "r")
    nodemap = tmp_path / "r" / ".git" / "prollytree" / "nodemap"
    size = nodemap.stat().st_size
    rng = random.Random(5)
    for trial in range(8):
        backup = nodemap.read_bytes()
        flip(nodemap, rng.randrange(size), 1 << rng.randrange(8))
        store = GitNodeStore(str(tmp_path / "r"))
        assert store.map_damage is not None and "rebuilt" in store.map_damage
        tree = ProllyTree.from_root(root, store)
        assert dict(tree.items()) == model              # the data is intact, and found
        assert tree.verify()["ok"]
        store.close()
        assert nodemap.read_bytes() != backup or trial  # rewritten in the new format
        again = GitNodeStore(str(tmp_path / "r"))
        assert again.map_damage is None                 # the rebuilt map is healthy
        again.close()


def test_git_old_format_node_map_is_rebuilt(tmp_path):
    model, root = git_tree(tmp_path / "r")
    nodemap = tmp_path / "r" / ".git" / "prollytree" / "nodemap"
    data = nodemap.read_bytes()[8:]
    old = b"".join(data[i:i + 53] for i in range(0, len(data), 57))   # 53-byte records
    nodemap.write_bytes(old)
    store = GitNodeStore(str(tmp_path / "r"))
    assert store.map_damage is not None
    assert dict(ProllyTree.from_root(root, store).items()) == model
    store.close()


def test_git_damaged_pack_and_index_give_documented_errors(tmp_path):
    model, root = git_tree(tmp_path / "t")
    pack_dir = tmp_path / "t" / ".git" / "objects" / "pack"
    rng = random.Random(11)
    for suffix in (".pack", ".idx"):
        for trial in range(12):
            work = tmp_path / f"w{suffix}{trial}"
            shutil.copytree(tmp_path / "t", work)
            f = next((work / ".git" / "objects" / "pack").glob("*" + suffix))
            for _ in range(3):
                flip(f, rng.randrange(f.stat().st_size), 1 << rng.randrange(8))
            try:
                store = GitNodeStore(str(work))
                tree = ProllyTree.from_root(root, store)
            except ProllyError:
                continue
            for k, v in model.items():
                try:
                    assert tree.find(k) == v
                except ProllyError:
                    pass
            report = tree.verify()                       # returns, never raises
            assert set(report) >= {"ok", "missing", "damaged"}
            store.close()
    assert pack_dir.exists()


def test_git_damaged_config_and_ref_are_store_errors(tmp_path):
    model, root = git_tree(tmp_path / "r")
    store = GitNodeStore(str(tmp_path / "r"))
    store.set_ref("root", root)
    store.close()
    ref = tmp_path / "r" / ".git" / "refs" / "prollytree" / "store" / "root"
    ref.write_bytes(b"\xff\xfe not a sha\n")
    store = GitNodeStore(str(tmp_path / "r"))
    with pytest.raises(StoreError, match="refs/prollytree/store/root"):
        store.get_ref("root")
    store.close()
    (tmp_path / "r" / ".git" / "config").write_bytes(b"[c\xefre]\n\tx = = y\n")
    with pytest.raises(StoreError, match="damaged"):
        GitNodeStore(str(tmp_path / "r"))


# -- RocksDB ------------------------------------------------------------------------------


def test_rocksdb_corruption_is_corrupt_node_error_with_rocksdb_message(tmp_path):
    from prollytree.storage.rocksdb import RocksDBNodeStore

    with ProllyTree("rocksdb", str(tmp_path / "db")) as t:
        t.insert_batch([(b"k%05d" % i, b"v" * 50) for i in range(3000)])
    sst = sorted((tmp_path / "db").glob("*.sst"))
    assert sst
    size = sst[0].stat().st_size
    for off in range(size // 8, size // 2, size // 10):    # data blocks, not the footer
        flip(sst[0], off)
    errors = []
    report = None
    try:
        store = RocksDBNodeStore(str(tmp_path / "db"))
    except StoreError as e:                  # RocksDB may check blocks while opening
        errors.append(e)
    else:
        tree = ProllyTree.from_root(store.get_ref("root"), store)
        try:
            for _ in tree.items():
                pass
        except StoreError as e:
            errors.append(e)
        report = tree.verify()
        store.close()
        assert report["damaged"] or report["missing"]
    assert errors
    for e in errors:
        assert not isinstance(e, StoreLockedError)
        assert "Corruption" in str(e)                  # RocksDB's own message
    if report is not None:
        assert any(isinstance(e, CorruptNodeError) for e in errors)


def test_rocksdb_lost_manifest_tail_is_reported_not_served_empty(tmp_path):
    with ProllyTree("rocksdb", str(tmp_path / "db")) as t:
        t.insert_batch([(b"k%05d" % i, b"v") for i in range(500)])
    manifest = next((tmp_path / "db").glob("MANIFEST-*"))
    os.truncate(manifest, manifest.stat().st_size // 2)
    with pytest.raises(StoreError, match="sequence number"):
        ProllyTree("rocksdb", str(tmp_path / "db"))


# -- LMDB ---------------------------------------------------------------------------------


def test_lmdb_truncated_file_is_store_error_not_sigbus(tmp_path):
    with ProllyTree("lmdb", str(tmp_path / "db")) as t:
        t.insert_batch([(b"k%05d" % i, b"v" * 40) for i in range(3000)])
    data = tmp_path / "db" / "data.mdb"
    os.truncate(data, data.stat().st_size // 3)
    code = (f"from prollytree import ProllyTree\nfrom prollytree.errors import StoreError\n"
            f"try:\n    ProllyTree('lmdb', {str(tmp_path / 'db')!r})\n"
            f"except StoreError as e:\n    print('REPORTED', e)\n")
    r = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr                  # not killed by SIGBUS
    assert r.stdout.startswith("REPORTED") and "truncated" in r.stdout


# -- the fuzz --------------------------------------------------------------------------------

DEFAULT_TRIALS = 20       # per backend in the default run
SLOW_TRIALS = 500         # per backend behind the slow marker


@pytest.mark.parametrize("kind", damage.KINDS)
def test_damage_fuzz(tmp_path, kind):
    tally, failures = damage.campaign(kind, str(tmp_path), DEFAULT_TRIALS, seed=20261130)
    assert tally["trials"] == DEFAULT_TRIALS
    assert not failures, failures[:3]


@pytest.mark.slow
@pytest.mark.parametrize("kind", damage.KINDS)
def test_damage_fuzz_slow(tmp_path, kind):
    tally, failures = damage.campaign(kind, str(tmp_path), SLOW_TRIALS, seed=1)
    print(kind, dict(tally))
    assert tally["trials"] == SLOW_TRIALS
    assert not failures, failures[:5]
    assert tally["damage reported"] > 0
