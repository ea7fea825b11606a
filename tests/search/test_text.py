"""TextIndex against a brute-force BM25 over the same documents, across root changes."""

from __future__ import annotations

import math
import re
import random

import pytest
from hypothesis import given, settings, strategies as st

from prollytree import ProllyTree, VersionedKvStore
from prollytree.search import IndexMismatchError, TextIndex, VectorIndex, HashEmbedder
from prollytree.search.text import query_terms

WORDS = ["tokyo", "weather", "rain", "sun", "cloud", "japan", "python", "code", "memory",
         "agent", "tree", "prolly", "merge", "branch", "alpha", "beta", "gamma", "delta"]


def bm25(docs: dict[bytes, str], query: str, k1=1.2, b=0.75) -> dict[bytes, float]:
    """Okapi BM25 as SQLite FTS5 defines it (idf floored at 1e-6), by brute force."""
    toks = {k: re.findall(r"[^\W_]+", v.lower()) for k, v in docs.items()}
    n = len(docs)
    avgdl = sum(len(t) for t in toks.values()) / n if n else 0
    scores: dict[bytes, float] = {}
    for term in query_terms(query):
        df = sum(1 for t in toks.values() if term in t)
        if not df:
            continue
        idf = math.log((n - df + 0.5) / (df + 0.5))
        if idf <= 0:
            idf = 1e-6
        for k, t in toks.items():
            f = t.count(term)
            if f:
                scores[k] = scores.get(k, 0.0) + idf * f * (k1 + 1) / (
                    f + k1 * (1 - b + b * len(t) / avgdl))
    return scores


def check_against_model(index: TextIndex, docs: dict[bytes, str], query: str) -> None:
    want = bm25(docs, query)
    got = index.iter_search(query)
    got = {key: score for _, key, score in got}
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9)
    # ranked best first
    ranked = [s for _, _, s in index.search(query, limit=len(docs) + 1)]
    assert ranked == sorted(ranked, reverse=True)


def random_doc(rnd: random.Random) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 12)))


def test_bm25_matches_brute_force_across_root_changes():
    rnd = random.Random(7)
    tree = ProllyTree()
    model: dict[bytes, str] = {}
    index = TextIndex()
    for step in range(8):
        for _ in range(rnd.randint(20, 200)):
            k = b"doc%04d" % rnd.randrange(400)
            if rnd.random() < 0.2 and k in model:
                tree.delete(k)
                del model[k]
            else:
                model[k] = random_doc(rnd)
                tree.insert(k, model[k].encode())
        index.sync(tree)
        assert index.root() == tree.get_root_hash()
        assert len(index) == len(model)
        for q in ("tokyo", "rain sun", "prolly tree merge", "nothing-here", random_doc(rnd)):
            check_against_model(index, model, q)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.one_of(st.none(), st.lists(
    st.sampled_from(WORDS), min_size=1, max_size=6))), min_size=1, max_size=40),
       st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
def test_hypothesis_sync_equals_fresh_index(ops, qwords):
    tree = ProllyTree()
    index = TextIndex()
    model: dict[bytes, str] = {}
    for i, (k, words) in enumerate(ops):
        key = b"k%02d" % k
        if words is None:
            tree.delete(key)
            model.pop(key, None)
        else:
            model[key] = " ".join(words)
            tree.insert(key, model[key].encode())
        if i % 5 == 4:
            index.sync(tree)
    index.sync(tree)
    fresh = TextIndex()
    fresh.sync(tree)
    q = " ".join(qwords)
    assert index.search(q, 100) == fresh.search(q, 100)
    if model:
        check_against_model(index, model, q)


def test_checkout_older_version_answers_exactly(tmp_path):
    store = VersionedKvStore(tmp_path / "ds")
    rnd = random.Random(3)
    versions = []
    for v in range(5):
        for _ in range(50):
            store.insert(b"d%03d" % rnd.randrange(150), random_doc(rnd).encode())
        for _ in range(5):
            store.delete(b"d%03d" % rnd.randrange(150))
        versions.append(store.commit(f"v{v}"))
    index = TextIndex(tmp_path / "cache" / "text.db")
    order = [4, 0, 3, 1, 2, 4, 0]
    for v in order:
        tree = store.tree_at(versions[v])
        index.sync(tree)
        fresh = TextIndex()
        fresh.sync(tree)
        docs = {k: val.decode() for k, val in tree.items()}
        for q in ("tokyo rain", "alpha", "merge branch tree"):
            assert index.search(q, 50) == fresh.search(q, 50)
            check_against_model(index, docs, q)
    # the cache survives reopening and stays keyed by the root it reflects
    index.close()
    again = TextIndex(tmp_path / "cache" / "text.db")
    assert again.root() == store.tree_at(versions[0]).get_root_hash()
    # deleting the cache loses nothing: a rebuild answers the same
    again.close()
    (tmp_path / "cache" / "text.db").unlink()
    rebuilt = TextIndex(tmp_path / "cache" / "text.db")
    tree = store.tree_at(versions[0])
    rebuilt.sync(tree)
    assert rebuilt.search("tokyo rain", 50) == fresh.search("tokyo rain", 50)


def test_staged_overlay_is_undone_on_next_sync():
    tree = ProllyTree()
    tree.insert_batch([(b"a", b"tokyo rain"), (b"b", b"sun cloud"), (b"c", b"tokyo sun")])
    index = TextIndex()
    index.sync(tree, staged={b"a": None, b"d": b"tokyo tokyo", b"b": b"tokyo"})
    assert {k for _, k, _ in index.search("tokyo", 10)} == {b"b", b"c", b"d"}
    index.sync(tree)  # staged writes dropped: back to the committed tree
    fresh = TextIndex()
    fresh.sync(tree)
    assert index.search("tokyo", 10) == fresh.search("tokyo", 10)
    assert {k for _, k, _ in index.search("tokyo", 10)} == {b"a", b"c"}


def test_several_trees_in_one_index_and_document_function():
    a, b = ProllyTree(), ProllyTree()
    a.insert(b"x", b'{"text": "tokyo weather"}')
    b.insert(b"x", b'{"text": "rain in tokyo"}')
    b.insert(b"skip", b"\xff\xfe")  # not UTF-8: not indexed
    index = TextIndex(document=lambda k, v: v.decode()[10:-2] if v.startswith(b"{") else None)
    index.sync(a, name="one")
    index.sync(b, name="two")
    assert sorted(index.names()) == ["one", "two"]
    assert {(n, k) for n, k, _ in index.search("tokyo")} == {("one", b"x"), ("two", b"x")}
    assert [n for n, _, _ in index.search("tokyo", name="two")] == ["two"]
    index.forget("one")
    assert [n for n, _, _ in index.search("tokyo")] == ["two"]


def test_bad_input_and_mismatch(tmp_path):
    index = TextIndex(tmp_path / "t.db")
    with pytest.raises(TypeError):
        index.sync({"a": 1})
    with pytest.raises(TypeError):
        index.search(b"tokyo")
    with pytest.raises(ValueError):
        index.search("tokyo", -1)
    with pytest.raises(TypeError):
        index.sync(ProllyTree(), staged={"a": b"x"})
    assert index.search("!!! ...") == []
    index.close()
    # a text index file is not a vector index
    with pytest.raises(IndexMismatchError, match="kind"):
        VectorIndex(tmp_path / "t.db", embedder=HashEmbedder(8))


def test_overlay_added_incrementally_then_dropped_when_root_moves():
    tree = ProllyTree()
    tree.insert_batch([(b"a", b"tokyo rain"), (b"b", b"sun cloud")])
    index = TextIndex()
    index.sync(tree)
    index.sync(tree, staged={b"c": b"tokyo"}, replace=False)
    index.sync(tree, staged={b"a": None}, replace=False)
    assert index.overlay_keys() == [b"a", b"c"]
    assert [k for _, k, _ in index.search("tokyo")] == [b"c"]
    # same root, replace: only the new overlay stays
    index.sync(tree, staged={b"b": b"tokyo sun"})
    assert index.overlay_keys() == [b"b"]
    assert sorted(k for _, k, _ in index.search("tokyo")) == [b"a", b"b"]
    # the root moves (the staged writes were committed): the overlay is undone
    tree.insert(b"c", b"tokyo")
    index.sync(tree, staged={}, replace=False)
    assert index.overlay_keys() == []
    fresh = TextIndex()
    fresh.sync(tree)
    assert index.search("tokyo sun", 10) == fresh.search("tokyo sun", 10)
