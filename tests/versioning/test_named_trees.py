"""Root sets: many named trees per commit, on every backend, against a dict model."""

import os
import random
import shutil
import tarfile

import pytest

from prollytree import ProllyTree
from prollytree.tree import EMPTY_ROOT, TreeConfig
from prollytree.versioning import ConflictResolution, StorageBackend, VersionedKvStore
from prollytree.versioning.roots import RootSet, TreeEntry

from .conftest import git

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def tree_dict(store, name, ref=None):
    if ref is None:
        return dict(store.tree(name).items())
    return dict(store.iter_items_at(ref, tree=name))


def check_model(store, model, ref=None):
    """Every tree of ``model`` ({name: {k: v}}) equals the store's, and no other tree
    exists (the default tree "" is always listed)."""
    names = store.list_trees() if ref is None else store.list_trees_at(ref)
    assert set(names) == set(model) | {""}, (names, sorted(model))
    for name, pairs in model.items():
        assert tree_dict(store, name, ref) == pairs, name
        t = store.tree_at(ref or "HEAD", name) if ref else None
        if t is not None:
            assert dict(t.items()) == pairs
            # the same pairs in a fresh tree give the same root: history independence
            fresh = ProllyTree()
            if pairs:
                fresh.insert_batch(sorted(pairs.items()))
            assert store.tree_root(name, ref) == fresh.get_root_hash()


def random_edits(rng, model, names, n):
    for _ in range(n):
        name = rng.choice(names)
        tree = model.setdefault(name, {})
        k = b"k%03d" % rng.randrange(60)
        if rng.random() < 0.25 and tree:
            k = rng.choice(sorted(tree))
            yield name, k, None
            del tree[k]
        else:
            v = b"%s=%d" % (name.encode(), rng.randrange(10**6))
            yield name, k, v
            tree[k] = v


def apply(store, edits):
    for name, k, v in edits:
        if v is None:
            assert store.tree(name).delete(k)
        else:
            store.tree(name).insert(k, v)


def test_many_trees_branch_merge_against_model(make_store, backend, tmp_path):
    rng = random.Random(7)
    s = make_store()
    names = ["", "ns/a", "ns/b", "sql/t/users", "memory/semantic", "ünï/cøde"]
    model: dict = {"": {}}
    apply(s, list(random_edits(rng, model, names, 400)))
    base = s.commit("base")
    check_model(s, model)
    check_model(s, model, base)
    s.create_branch("side")
    side_model = {n: dict(t) for n, t in model.items()}
    # the side edits only ns/a and sql/t/users; main edits ns/b and the default tree
    apply(s, list(random_edits(rng, side_model, ["ns/a", "sql/t/users"], 150)))
    side = s.commit("side work")
    s.checkout("main")
    apply(s, list(random_edits(rng, model, ["", "ns/b"], 150)))
    main = s.commit("main work")
    # one commit rewrote only what changed: the other trees keep their roots
    before, after = s.trees_at(base), s.trees_at(main)
    for name in ("ns/a", "sql/t/users", "memory/semantic"):
        assert before[name].root == after[name].root
    m = s.merge("side")
    assert s.log(limit=1)[0]["parents"] == [main, side]
    merged = dict(model)
    merged["ns/a"] = side_model["ns/a"]
    merged["sql/t/users"] = side_model["sql/t/users"]
    check_model(s, merged)
    check_model(s, merged, m)
    check_model(s, model, main)
    check_model(s, side_model, side)
    diffs = s.diff_trees(main, m)
    assert set(diffs) <= {"ns/a", "sql/t/users"}
    for name, changes in diffs.items():
        expect_keys = {k for k in set(model[name]) | set(merged[name])
                       if model[name].get(k) != merged[name].get(k)}
        assert {d.key for d in changes} == expect_keys
    if backend is StorageBackend.Git:
        r = git(tmp_path / "ds", "fsck", "--strict", "--no-dangling")
        assert r.stdout.strip() == "", r.stdout
        # every node of every named tree travels with a clone
        clone = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(tmp_path / "ds"), str(clone))
        c = VersionedKvStore.open(str(clone))
        try:
            check_model(c, merged, "HEAD")
        finally:
            c.close()
        s.close()
        git(tmp_path / "ds", "gc", "-q", "--prune=now")
        s = VersionedKvStore.open(str(tmp_path / "ds"))
        try:
            check_model(s, merged, m)
        finally:
            s.close()


def test_drop_create_and_status(make_store):
    s = make_store()
    t = s.tree("ns/x")
    assert not t.exists() and t.get(b"a") is None and s.list_trees() == [""]
    assert s.list_trees() == [""]          # a read does not create the tree
    t.insert(b"a", b"1")
    assert s.list_trees() == ["", "ns/x"]
    assert s.tree_status() == [("ns/x", None, "created"), ("ns/x", b"a", "added")]
    s.create_tree("ns/empty")
    with pytest.raises(ValueError):
        s.create_tree("ns/empty")
    c1 = s.commit("two trees")
    assert s.list_trees_at(c1) == ["", "ns/empty", "ns/x"]
    assert s.tree_root("ns/empty", c1) == EMPTY_ROOT
    assert s.tree_root("nope", c1) is None
    assert s.drop_tree("ns/x") is True and s.drop_tree("ns/missing") is False
    assert s.tree("ns/x").get(b"a") is None
    assert s.tree_status() == [("ns/x", None, "dropped")]
    c2 = s.commit("drop")
    assert s.list_trees() == ["", "ns/empty"]
    assert s.get_at(c1, b"a", tree="ns/x") == b"1" and s.get_at(c2, b"a", tree="ns/x") is None
    # drop then write: a new, empty tree with only the new key
    s.tree("ns/empty").insert(b"z", b"9")
    s.commit("fill")
    s.drop_tree("ns/empty")
    s.tree("ns/empty").insert(b"y", b"8")
    s.commit("recreate")
    assert dict(s.tree("ns/empty").items()) == {b"y": b"8"}
    with pytest.raises(ValueError):
        s.drop_tree("")
    for bad in ("", "a\x00b", "x" * 201):
        with pytest.raises(ValueError):
            s.create_tree(bad)
    with pytest.raises(TypeError):
        s.tree(b"bytes")
    assert s.list_trees() == ["", "ns/empty"]      # failed calls changed nothing
    # revert of the drop brings the tree back
    s.revert(c2)
    assert s.tree("ns/x").get(b"a") == b"1"


def test_handle_scans_overlay_staged(make_store):
    s = make_store()
    t = s.tree("t")
    t.insert_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4")])
    s.commit("c")
    t.insert(b"bb", b"x")
    t.delete(b"c")
    assert list(t.keys()) == [b"a", b"b", b"bb", b"d"]
    assert list(t.keys(reverse=True)) == [b"d", b"bb", b"b", b"a"]
    assert list(t.items(b"b", b"d")) == [(b"b", b"2"), (b"bb", b"x")]
    assert list(t.prefix(b"b")) == [(b"b", b"2"), (b"bb", b"x")]
    assert t.delete_batch([b"a", b"zz"]) == 1
    assert s.get(b"a") is None and s.list_keys() == []     # the default tree is apart


def test_conflicts_carry_the_tree_name(make_store):
    s = make_store()
    s.tree("ns/a").insert(b"k", b"base")
    s.insert(b"k", b"base")
    s.commit("base")
    s.create_branch("other")
    s.tree("ns/a").insert(b"k", b"other")
    s.commit("o")
    s.checkout("main")
    s.tree("ns/a").insert(b"k", b"mine")
    s.insert(b"k", b"mine-default")
    s.commit("m")
    ok, conflicts = s.try_merge("other")
    assert not ok and [(c.tree, c.key) for c in conflicts] == [("ns/a", b"k")]
    assert s.tree("ns/a").get(b"k") == b"mine"                # nothing changed
    s.merge("other", ConflictResolution.TakeSource)
    assert s.tree("ns/a").get(b"k") == b"other" and s.get(b"k") == b"mine-default"


def test_drop_against_edit_merges_three_way(make_store):
    s = make_store()
    s.tree("gone").insert_batch([(b"a", b"1"), (b"b", b"2")])
    s.tree("kept").insert(b"a", b"1")
    s.commit("base")
    s.create_branch("dropper")
    s.drop_tree("gone")
    s.drop_tree("kept")
    s.commit("drop both")
    s.checkout("main")
    s.tree("kept").insert(b"a", b"changed")
    s.commit("edit kept")
    ok, conflicts = s.try_merge("dropper")
    assert not ok and [(c.tree, c.key, c.source_value) for c in conflicts] == [
        ("kept", b"a", None)]
    s.merge("dropper")                       # keep ours: kept stays, gone is dropped
    assert s.list_trees() == ["", "kept"]
    assert dict(s.tree("kept").items()) == {b"a": b"changed"}


def test_root_set_golden_and_canonical():
    cfg = TreeConfig()
    rs = RootSet({"b": TreeEntry(b"\x01" * 32, cfg), "a": TreeEntry(b"\x02" * 32, cfg)})
    again = RootSet({"a": TreeEntry(b"\x02" * 32, cfg), "b": TreeEntry(b"\x01" * 32, cfg)})
    assert rs.encode() == again.encode() and list(rs) == ["", "a", "b"]
    assert RootSet.decode(rs.encode()) == rs
    # pinned: changing the encoding is a deliberate format change (docs/format.md)
    empty = EMPTY_ROOT.hex()
    cfg_hex = "95044001cd100000"
    assert rs.encode().hex() == (
        "93c41270726f6c6c79747265652d726f6f7473657401" "93"
        + "93a0c420" + empty + "c408" + cfg_hex
        + "93a161c420" + "02" * 32 + "c408" + cfg_hex
        + "93a162c420" + "01" * 32 + "c408" + cfg_hex)
    assert rs.address().hex() == (
        "7d0b52d95a29a7d4dd226900898cc1ec2bfb9cb7fe3aed63a21fa345853e7c30")
    with pytest.raises(ValueError):
        RootSet.decode(b"\x93\x01\x02\x03")


def test_same_trees_same_root_set_whatever_the_order(tmp_path):
    a = VersionedKvStore(str(tmp_path / "a"), StorageBackend.InMemory)
    b = VersionedKvStore(str(tmp_path / "b"), StorageBackend.InMemory)
    a.tree("x").insert(b"1", b"1")
    a.tree("y").insert(b"2", b"2")
    a.commit("one")
    b.tree("y").insert(b"2", b"2")
    b.commit("one")
    b.tree("x").insert(b"0", b"0")
    b.tree("x").insert(b"1", b"1")
    b.commit("two")
    b.tree("x").delete(b"0")
    b.commit("three")
    assert a.trees_at("HEAD").address() == b.trees_at("HEAD").address()


@pytest.mark.parametrize("kind", ["gitds", "fileds"])
def test_datasets_written_before_root_sets_open_and_upgrade(tmp_path, kind):
    with tarfile.open(os.path.join(FIXTURES, "v1-datasets.tar.gz")) as tf:
        tf.extractall(tmp_path, filter="data")
    path = str(tmp_path / kind)
    s = VersionedKvStore.open(path)
    try:
        assert s.list_branches() == ["main", "side"]
        expect = {b"k%04d" % i: b"v%d" % i for i in range(300)}
        assert dict(s.get_keys_at_ref("side~1")) == expect
        assert s.get_at("side", b"side") == b"s"
        assert s.staged() == [(b"k0001", None), (b"staged", b"yes")]   # the journal too
        assert s.list_trees_at("main") == [""]
        s.tree("ns/new").insert(b"n", b"1")
        c = s.commit("upgrade")
        expect.pop(b"k0001")
        expect[b"staged"] = b"yes"
        assert dict(s.get_keys_at_ref(c)) == expect
        assert s.list_trees_at(c) == ["", "ns/new"]
        assert len(s.log()) == 3
        s.merge("side")
        assert s.get(b"side") == b"s" and s.tree("ns/new").get(b"n") == b"1"
    finally:
        s.close()
    if kind == "gitds":
        assert git(path, "cat-file", "-p", "main:.prolly/ROOT").stdout.startswith(
            "prollytree-dataset 2")
        assert git(path, "cat-file", "-p", "side:.prolly/ROOT").stdout.startswith(
            "prollytree-dataset 1")
        assert git(path, "fsck", "--strict").returncode == 0
    shutil.rmtree(tmp_path / kind)


def test_bad_input_on_the_new_calls_changes_nothing(make_store):
    s = make_store()
    s.tree("t").insert(b"k", b"v")
    c = s.commit("one")
    before = (s.list_trees(), s.staged(), s.current_commit())
    bad_types = [lambda: s.tree(5), lambda: s.get(b"k", tree=5), lambda: s.insert(b"k", b"v", tree=5),
                 lambda: s.tree_root(5), lambda: s.tree_at("HEAD", 5), lambda: s.diff(c, c, tree=5),
                 lambda: s.iter_items(reverse="yes"), lambda: s.create_tree("x", config="cfg"),
                 lambda: s.delete_branch("main", force="yes"), lambda: s.merge("main", message=3),
                 lambda: s.tree("t").insert("k", b"v"), lambda: s.insert_batch([(b"a", 1)], tree="t")]
    for call in bad_types:
        with pytest.raises(TypeError):
            call()
    bad_values = [lambda: s.get(b"k", tree="a\x01"), lambda: s.create_tree("t"),
                  lambda: s.drop_tree(""), lambda: s.tree_root("t", "no-such-ref"),
                  lambda: s.diff_trees(c, "nope"), lambda: s.merge("main", message=" "),
                  lambda: s.get_commits_for_key(b"k", tree="x" * 201)]
    for call in bad_values:
        with pytest.raises(ValueError):
            call()
    assert (s.list_trees(), s.staged(), s.current_commit()) == before
