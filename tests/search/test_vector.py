"""VectorIndex: exact search against brute force, approximate recall@10 against exact,
incremental updates equal to a fresh index, embedder identity checks."""

from __future__ import annotations

import functools
import hashlib
import random

import numpy as np
import pytest

from prollytree import ProllyTree, VersionedKvStore
from prollytree.search import (
    CallableEmbedder, HashEmbedder, IndexMismatchError, VectorIndex,
)

DIM = 32


@functools.lru_cache(maxsize=None)
def seeded_vector(t: str) -> np.ndarray:
    cluster, seed = t.split()
    c = np.random.default_rng(int(cluster[1:])).standard_normal(DIM)
    noise = np.random.default_rng(int(hashlib.sha1(seed.encode()).hexdigest()[:8], 16))
    return (c + 1.5 * noise.standard_normal(DIM)).astype(np.float32)


def seeded_vectors(texts):
    """Each text names its vector: 'c<cluster> <noise seed>' -> a point near a centroid."""
    return np.array([seeded_vector(t) for t in texts], dtype=np.float32).reshape(-1, DIM)


EMB = CallableEmbedder("test-clusters", "1", DIM, seeded_vectors)


def brute(docs: dict[bytes, str], q: np.ndarray, k: int) -> list[bytes]:
    keys = sorted(docs)
    m = seeded_vectors([docs[x] for x in keys])
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    s = m @ (q / np.linalg.norm(q))
    order = sorted(range(len(keys)), key=lambda i: -s[i])
    return [keys[i] for i in order[:k]]


def make_tree(n: int, rnd: random.Random) -> tuple[ProllyTree, dict[bytes, str]]:
    docs = {b"v%06d" % i: f"c{rnd.randrange(50)} s{i}" for i in range(n)}
    tree = ProllyTree()
    tree.insert_batch((k, v.encode()) for k, v in docs.items())
    return tree, docs


def test_exact_search_matches_brute_force():
    rnd = random.Random(1)
    tree, docs = make_tree(600, rnd)
    index = VectorIndex(embedder=EMB)
    index.sync(tree)
    for i in range(10):
        q = seeded_vectors([f"c{i} q{i}"])[0]
        got = index.search(q, 10)
        assert [k for _, k, _ in got] == brute(docs, q, 10)
        assert [s for *_, s in got] == sorted([s for *_, s in got], reverse=True)


def test_approximate_recall_at_10():
    rnd = random.Random(2)
    tree, docs = make_tree(6000, rnd)
    index = VectorIndex(embedder=EMB, exact_limit=1000)  # forces usearch
    index.sync(tree)
    hits = total = 0
    for i in range(60):
        q = seeded_vectors([f"c{i % 50} query{i}"])[0]
        approx = {k for _, k, _ in index.search(q, 10)}
        exact = {k for _, k, _ in index.search(q, 10, exact=True)}
        hits += len(approx & exact)
        total += 10
    assert index._ann is not None
    assert hits / total >= 0.95, hits / total


def test_incremental_updates_equal_fresh_index_across_versions(tmp_path):
    rnd = random.Random(3)
    store = VersionedKvStore(tmp_path / "ds")
    versions = []
    for v in range(4):
        for _ in range(300):
            store.insert(b"v%05d" % rnd.randrange(3000), f"c{rnd.randrange(20)} r{rnd.random()}".encode())
        for _ in range(30):
            store.delete(b"v%05d" % rnd.randrange(3000))
        versions.append(store.commit(f"v{v}"))
    index = VectorIndex(tmp_path / "vec.db", embedder=EMB, exact_limit=200)
    for v in [3, 0, 2, 1, 3, 0]:
        tree = store.tree_at(versions[v])
        index.sync(tree)
        fresh = VectorIndex(embedder=EMB)
        fresh.sync(tree)
        for i in range(5):
            q = seeded_vectors([f"c{i} x{i}"])[0]
            assert index.search(q, 10, exact=True) == fresh.search(q, 10)
        assert len(index) == len(fresh) == sum(1 for _ in tree.items())
        # the in-memory mirror followed the change incrementally and agrees with the file
        assert index._n == len(fresh)


def test_two_handles_on_one_file_see_each_others_syncs(tmp_path):
    rnd = random.Random(4)
    tree, docs = make_tree(300, rnd)
    a = VectorIndex(tmp_path / "v.db", embedder=EMB)
    b = VectorIndex(tmp_path / "v.db", embedder=EMB)
    a.sync(tree)
    q = seeded_vectors(["c1 q"])[0]
    assert b.search(q, 5) == a.search(q, 5)
    tree.delete(a.search(q, 1)[0][1])
    b.sync(tree)
    fresh = VectorIndex(embedder=EMB)
    fresh.sync(tree)
    assert a.search(q, 5) == fresh.search(q, 5)


def test_unchanged_text_is_not_embedded_again():
    calls = []

    def fn(texts):
        calls.append(len(texts))
        return seeded_vectors(texts)

    emb = CallableEmbedder("counting", "1", DIM, fn)
    tree = ProllyTree()
    tree.insert_batch([(b"a", b"c1 a"), (b"b", b"c2 b")])
    index = VectorIndex(embedder=emb)
    index.sync(tree)
    assert sum(calls) == 2
    tree.insert(b"a", b"c1 a")  # same value, same root
    tree.insert(b"c", b"c3 c")
    index.sync(tree)
    assert sum(calls) == 3


def test_embedder_identity_is_enforced(tmp_path):
    tree = ProllyTree()
    tree.insert(b"a", b"tokyo rain")
    VectorIndex(tmp_path / "v.db", embedder=HashEmbedder(16)).sync(tree)
    with pytest.raises(IndexMismatchError, match="embedder_id"):
        VectorIndex(tmp_path / "v.db", embedder=HashEmbedder(16, seed=1))
    with pytest.raises(IndexMismatchError, match="dim"):
        VectorIndex(tmp_path / "v.db", embedder=CallableEmbedder("hash-16-0", "1", 8, seeded_vectors))
    with pytest.raises(IndexMismatchError, match="embedder_version"):
        VectorIndex(tmp_path / "v.db", embedder=CallableEmbedder("hash-16-0", "2", 16, seeded_vectors))
    ok = VectorIndex(tmp_path / "v.db", embedder=HashEmbedder(16))
    assert ok.search("tokyo", 1)[0][1] == b"a"


def test_bad_embedder_output_and_queries():
    bad = CallableEmbedder("bad", "1", 4, lambda texts: [[1.0, 2.0]] * len(texts))
    tree = ProllyTree()
    tree.insert(b"a", b"x")
    index = VectorIndex(embedder=bad)
    with pytest.raises(ValueError, match="shape"):
        index.sync(tree)
    assert index.root() is None and len(index) == 0  # the failed sync changed nothing
    good = VectorIndex(embedder=HashEmbedder(8))
    good.sync(tree)
    with pytest.raises(ValueError, match="dimensions"):
        good.search([1.0, 2.0])
    with pytest.raises(TypeError):
        good.search(b"x")
    with pytest.raises(TypeError):
        good.search("x", k="3")
    with pytest.raises(TypeError):
        VectorIndex(embedder=object())
    with pytest.raises(TypeError):
        HashEmbedder("8")
    with pytest.raises(ValueError):
        HashEmbedder(0)


def test_where_filter_with_ann_falls_back_to_exact():
    rnd = random.Random(5)
    tree, docs = make_tree(3000, rnd)
    index = VectorIndex(embedder=EMB, exact_limit=100)
    index.sync(tree)
    q = seeded_vectors(["c3 q"])[0]
    # a filter that rejects nearly everything: the answer must still be the exact one
    keep = {b"v000007", b"v002999", b"v001500"}
    got = index.search(q, 10, where=lambda n, k: k in keep)
    assert {k for _, k, _ in got} == keep
    assert [k for _, k, _ in got] == [k for k in brute(docs, q, 3000) if k in keep]


def test_hash_embedder_is_deterministic_and_normalised():
    a, b = HashEmbedder(64, seed=3), HashEmbedder(64, seed=3)
    va, vb = a.embed(["Tokyo weather today", ""]), b.embed(["Tokyo weather today", ""])
    assert np.array_equal(va, vb)
    assert np.linalg.norm(va[0]) == pytest.approx(1.0, abs=1e-6)
    assert not va[1].any()
    sim = a.embed(["weather in tokyo"])[0] @ va[0]
    other = a.embed(["python code review"])[0] @ va[0]
    assert sim > other
    with pytest.raises(TypeError):
        a.embed("a single string")


def test_ann_follows_updates_through_fresh_set_and_folds(monkeypatch):
    import prollytree.search.vector as V
    monkeypatch.setattr(V, "FOLD_MIN", 100)
    rnd = random.Random(6)
    tree, docs = make_tree(3000, rnd)
    index = VectorIndex(embedder=EMB, exact_limit=500)
    index.sync(tree)
    index.search(seeded_vectors(["c0 warm"])[0], 1)  # builds the graph
    folded = False
    for round_ in range(6):
        for _ in range(60):
            k = b"v%06d" % rnd.randrange(3000)
            if rnd.random() < 0.3 and k in docs:
                tree.delete(k)
                del docs[k]
            else:
                docs[k] = f"c{rnd.randrange(50)} u{round_}-{rnd.random()}"
                tree.insert(k, docs[k].encode())
        index.sync(tree)
        hits = total = 0
        for i in range(20):
            q = seeded_vectors([f"c{(i * 7) % 50} q{round_}-{i}"])[0]
            got = index.search(q, 10)
            exact = brute(docs, q, 10)
            # nothing outdated or deleted comes back, and scores are exact
            for _, key, score in got:
                assert key in docs
                v = seeded_vectors([docs[key]])[0]
                assert score == pytest.approx(float(v @ q / np.linalg.norm(v) / np.linalg.norm(q)),
                                              abs=1e-5)
            hits += len({k for _, k, _ in got} & set(exact))
            total += 10
        assert hits / total >= 0.95, (round_, hits / total)
        folded |= not index._fresh and not index._stale
    assert folded  # the changes were folded into the graph at least once
