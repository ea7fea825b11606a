"""NamespacedKvStore: the seed's API, V1/V2 formats, agreement with VersionedKvStore,
merges and diffs per namespace, bad input."""

import pytest

from prollytree import NamespacedKvStore, ProllyTree, VersionedKvStore
from prollytree.errors import ReadOnlyError
from prollytree.versioning import ConflictResolution, StorageBackend

from .conftest import git


@pytest.fixture
def ns(tmp_path):
    s = NamespacedKvStore(str(tmp_path / "data"))
    yield s
    s.close()


def test_seed_api_roundtrip(ns):
    assert ns.list_namespaces() == ["default"]
    ns.ns_insert("users", b"alice", b"A")
    ns.ns_insert("users", b"bob", b"B")
    ns.insert(b"cfg", b"1")
    assert ns.ns_get("users", b"alice") == b"A" and ns.get(b"cfg") == b"1"
    assert ns.ns_get("users", b"zed") is None
    c1 = ns.commit("first")
    assert len(c1) == 40 and ns.log()[0]["message"] == "first"
    assert ns.list_namespaces() == ["default", "users"]
    assert ns.ns_list_keys("users") == [b"alice", b"bob"] and ns.list_keys() == [b"cfg"]
    assert ns.ns_delete("users", b"bob") is True and ns.ns_delete("users", b"bob") is False
    assert ns.delete(b"cfg") is True and ns.delete(b"cfg") is False
    c2 = ns.commit()
    assert ns.log()[0]["message"] == "Update namespaces: default, users"
    assert ns.namespace_changed("users", c1, c2) and ns.namespace_changed("default", c1, c2)
    assert ns.namespace_changed("users", "HEAD~1", "HEAD")
    assert not ns.namespace_changed("users", c2, "HEAD")
    assert ns.current_branch == "main"
    ns.branch("dev")
    assert ns.current_branch == "dev" and ns.list_branches() == ["dev", "main"]
    ns.ns_insert("other", b"x", b"y")
    c3 = ns.commit("dev work")
    assert not ns.namespace_changed("users", c2, c3)
    assert ns.namespace_changed("other", c2, c3)   # absent, then present
    ns.checkout("main")
    assert ns.ns_get("other", b"x") is None and "other" not in ns.list_namespaces()
    ns.checkout(c1)
    assert ns.current_branch is None and ns.ns_get("users", b"bob") == b"B"
    with pytest.raises(ReadOnlyError):
        ns.ns_insert("users", b"k", b"v")


def test_reads_do_not_create_namespaces(ns):
    assert ns.ns_get("ghost", b"k") is None
    assert ns.ns_list_keys("ghost") == []
    assert ns.ns_delete("ghost", b"k") is False
    assert ns.get_namespace_root_hash("ghost") is None
    assert not ns.namespace_exists("ghost")
    ns.commit("nothing")
    assert ns.list_namespaces() == ["default"]
    assert "ns/ghost" not in ns.store.list_trees()


def test_root_hash_matches_a_prolly_tree(ns):
    pairs = {b"k%03d" % i: b"v%d" % i for i in range(300)}
    for k, v in pairs.items():
        ns.ns_insert("big", k, v)
    assert ns.get_namespace_root_hash("big") is None    # staged only: not committed yet
    ns.commit("big")
    t = ProllyTree()
    for k, v in pairs.items():
        t.insert(k, v)
    assert ns.get_namespace_root_hash("big") == t.get_root_hash()
    assert ns.get_namespace_root_hash("default") == ProllyTree().get_root_hash()


def test_delete_namespace_is_gone_after_commit(ns):
    ns.ns_insert("tmp", b"a", b"1")
    ns.commit("tmp")
    with pytest.raises(ValueError, match="default"):
        ns.delete_namespace("default")
    assert ns.delete_namespace("tmp") is True
    assert ns.list_namespaces() == ["default"] and ns.ns_get("tmp", b"a") is None
    assert ns.delete_namespace("tmp") is False
    ns.commit("drop tmp")
    reopened = NamespacedKvStore.open(ns.path)
    try:
        assert reopened.list_namespaces() == ["default"]
        assert reopened.get_namespace_root_hash("tmp") is None
        # a later write starts the namespace afresh, empty
        reopened.ns_insert("tmp", b"b", b"2")
        reopened.commit("again")
        assert reopened.ns_list_keys("tmp") == [b"b"]
    finally:
        reopened.close()


def test_empty_namespace_persists(ns):
    ns.create_namespace("empty")
    with pytest.raises(ValueError):
        ns.create_namespace("empty")
    ns.commit("create")
    assert "empty" in ns.list_namespaces() and ns.ns_list_keys("empty") == []
    assert ns.get_namespace_root_hash("empty") == ProllyTree().get_root_hash()


def test_v1_dataset_is_read_not_hidden_and_migrates(tmp_path):
    path = str(tmp_path / "data")
    v = VersionedKvStore(path)
    for i in range(50):
        v.insert(b"k%02d" % i, b"v")
    v.commit("v1 data")
    v.close()
    s = NamespacedKvStore.open(path)
    try:
        assert s.format_version == 1
        assert s.list_keys() == [b"k%02d" % i for i in range(50)]
        assert s.ns_list_keys("default") == s.list_keys()
        before = len(s.log())
        s.insert(b"staged", b"x")
        with pytest.raises(ValueError, match="staged"):
            s.migrate_v1_to_v2()
        s.delete(b"staged")
        r = s.migrate_v1_to_v2()
        assert r["migrated"] and r["default_keys"] == 50 and r["namespaces"] == 1
        assert len(s.log()) == before + 1 and s.log()[0]["id"] == r["commit"]
        assert s.format_version == 2 and s.list_keys()[:1] == [b"k00"]
        again = s.migrate_v1_to_v2()
        assert not again["migrated"] and again["commit"] is None
        assert len(s.log()) == before + 1
    finally:
        s.close()


def test_constructor_on_v1_and_versioned_store_agree(tmp_path):
    path = str(tmp_path / "data")
    v = VersionedKvStore(path)
    v.insert(b"flat", b"1")
    v.commit("flat")
    s = NamespacedKvStore(path)
    assert s.get(b"flat") == b"1"          # nothing hidden
    s.ns_insert("users", b"u", b"2")
    s.insert(b"flat2", b"3")
    cid = s.commit("both")
    assert s.format_version == 2
    # the VersionedKvStore on the same dataset sees the same commit
    assert v.current_commit() == cid
    assert v.get(b"flat2") == b"3" and v.list_keys() == [b"flat", b"flat2"]
    assert v.tree("ns/users").get(b"u") == b"2"
    assert v.tree_root("ns/users") == s.get_namespace_root_hash("users")
    v.tree("ns/users").insert(b"w", b"4")
    v.commit("through the flat store")
    assert s.ns_list_keys("users") == [b"u", b"w"]
    s.close()
    v.close()


def test_open_missing_dataset(tmp_path):
    with pytest.raises(ValueError, match="not a dataset"):
        NamespacedKvStore.open(str(tmp_path / "nothing"))


def test_namespace_names_are_validated(ns):
    for bad in ["", ".meta", "/x", "x/", "a//b", "a/.b", "sp ace", "é", "x" * 129, "ta\tb"]:
        with pytest.raises(ValueError, match="namespace"):
            ns.ns_insert(bad, b"k", b"v")
        with pytest.raises(ValueError):
            ns.ns_get(bad, b"k")
    for bad in [None, 3, b"users"]:
        with pytest.raises(TypeError):
            ns.ns_get(bad, b"k")
    with pytest.raises(TypeError):
        ns.ns_insert("users", "key", b"v")
    with pytest.raises(TypeError):
        ns.commit(5)
    ns.ns_insert("a-b_c.d/e-1", b"k", b"v")
    assert "a-b_c.d/e-1" in ns.list_namespaces()
    assert ns.store.tree_status() == [("ns/a-b_c.d/e-1", None, "created"),
                                      ("ns/a-b_c.d/e-1", b"k", "added")]


def test_merge_three_way_per_namespace(ns):
    ns.ns_insert("users", b"alice", b"A")
    ns.ns_insert("docs", b"d1", b"x")
    ns.commit("base")
    ns.branch("feature")
    ns.ns_insert("users", b"bob", b"B")      # feature adds to users
    ns.delete_namespace("docs")              # ... and drops docs
    ns.commit("feature")
    ns.checkout("main")
    ns.ns_insert("users", b"carol", b"C")    # main adds to users too
    ns.ns_insert("notes", b"n", b"1")        # and a new namespace
    ns.commit("main")
    assert ns.diff("main", "feature", "users") == ns.store.diff("main", "feature",
                                                                "ns/users")
    d = ns.diff("main", "feature")
    assert sorted(d) == ["docs", "notes", "users"]
    assert [x.key for x in d["users"]] == [b"bob", b"carol"]
    merged = ns.merge("feature")
    assert ns.log()[0]["parents"][1] == ns.store.resolve_ref("feature")
    assert ns.current_commit() == merged
    assert ns.ns_list_keys("users") == [b"alice", b"bob", b"carol"]
    assert ns.list_namespaces() == ["default", "notes", "users"]   # docs dropped


def test_merge_conflicts(ns):
    ns.ns_insert("users", b"k", b"base")
    ns.commit("base")
    ns.branch("other")
    ns.ns_insert("users", b"k", b"theirs")
    ns.commit("theirs")
    ns.checkout("main")
    ns.ns_insert("users", b"k", b"ours")
    ns.commit("ours")
    head = ns.current_commit()
    ok, conflicts = ns.try_merge("other")
    assert not ok and ns.current_commit() == head
    assert [(c.tree, c.key, c.source_value, c.destination_value) for c in conflicts] == \
        [("ns/users", b"k", b"theirs", b"ours")]
    ns.merge("other", ConflictResolution.TakeSource)
    assert ns.ns_get("users", b"k") == b"theirs"


def test_other_backends(tmp_path):
    for kind in (StorageBackend.File, StorageBackend.InMemory):
        s = NamespacedKvStore(str(tmp_path / kind.name), kind)
        s.ns_insert("a", b"1", b"x")
        c = s.commit("one")
        assert s.ns_get("a", b"1") == b"x" and s.namespace_changed("a", "HEAD", c) is False
        assert s.storage_backend is kind
        s.close()


def test_git_stays_clean(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    s = NamespacedKvStore(str(tmp_path / "data"))
    s.ns_insert("users", b"a", b"1")
    s.commit("ns commit")
    s.delete_namespace("users")
    s.commit("drop")
    s.close()
    assert git(tmp_path, "status", "--porcelain").stdout == ""
    assert git(tmp_path, "fsck", "--strict").returncode == 0
    assert git(tmp_path, "log", "--format=%s").stdout.split("\n")[:2] == ["drop", "ns commit"]


def test_merge_refuses_staged_namespace_writes(ns):
    """Staged writes only in a namespace (not the default tree) still block a merge:
    they are neither committed under the merge nor silently dropped."""
    ns.ns_insert("users", b"k", b"base")
    ns.commit("base")
    ns.branch("other")
    ns.ns_insert("users", b"o", b"1")
    ns.commit("other")
    ns.checkout("main")
    ns.ns_insert("users", b"m", b"1")
    ns.commit("main")
    ns.merge("other")
    head = ns.current_commit()
    ns.ns_insert("users", b"pending", b"x")          # staged in a namespace only
    ns.create_namespace("fresh")
    staged = ns.store.tree_status()
    for call in (lambda: ns.merge("other"), lambda: ns.try_merge("other"),
                 lambda: ns.merge("HEAD~1"), lambda: ns.store.revert("HEAD")):
        with pytest.raises(ValueError, match="staged"):
            call()
        assert ns.current_commit() == head and ns.store.tree_status() == staged
    assert ns.ns_get("users", b"pending") == b"x" and "fresh" in ns.list_namespaces()
    ns.commit("pending")
    assert ns.ns_list_keys("users") == [b"k", b"m", b"o", b"pending"]


def test_namespace_changed_with_any_ref(ns):
    ns.ns_insert("users", b"a", b"1")
    c1 = ns.commit("one")
    git(ns.path, "tag", "v1")                       # a Git tag on the dataset's repository
    ns.ns_insert("other", b"x", b"y")
    c2 = ns.commit("two")
    ns.ns_insert("users", b"b", b"2")
    ns.commit("three")
    # (namespace, a, b) -> changed, each side by a branch, a tag, a short id or HEAD~N
    cases = {("users", "v1", "HEAD"): True, ("users", c1[:8], "HEAD~1"): False,
             ("other", "v1", c2[:10]): True, ("other", "HEAD~1", "main"): False,
             ("default", "v1", "main"): False, ("users", "HEAD~2", "v1"): False,
             ("ghost", "v1", "HEAD"): False}
    for (name, a, b), changed in cases.items():
        assert ns.namespace_changed(name, a, b) is changed, (name, a, b)
    with pytest.raises(ValueError):
        ns.namespace_changed("users", "no-such-ref", "HEAD")
    with pytest.raises(TypeError):
        ns.namespace_changed("users", 1, "HEAD")
