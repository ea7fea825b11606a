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


def bm25(docs: dict[bytes, str], query: str, k1=1.2, b=0.75, tiers=None) -> dict[bytes, float]:
    """Okapi BM25 as SQLite FTS5 defines it (idf floored at 1e-6), by brute force; with
    the index's rule for terms in half of the documents or more: when the query has
    rarer terms (present in the index), those terms do not score, and documents having
    only them are ranked after the others (``tiers`` receives key -> 0 or 1)."""
    toks = {k: re.findall(r"[^\W_]+", v.lower()) for k, v in docs.items()}
    n = len(docs)
    avgdl = sum(len(t) for t in toks.values()) / n if n else 0
    df = {t: sum(1 for x in toks.values() if t in x) for t in query_terms(query)}
    rare = [t for t in df if df[t] and 2 * df[t] < n]
    common = [t for t in df if df[t] and 2 * df[t] >= n]
    if rare and common:
        first = bm25(docs, " ".join(rare), k1, b)
        rest = {k: s for k, s in _scores(toks, common, n, avgdl, k1, b).items()
                if k not in first}
        if tiers is not None:
            tiers.update({k: 0 for k in first})
            tiers.update({k: 1 for k in rest})
        return {**first, **rest}
    out = _scores(toks, list(df), n, avgdl, k1, b)
    if tiers is not None:
        tiers.update({k: 0 for k in out})
    return out


def _scores(toks, terms, n, avgdl, k1, b) -> dict[bytes, float]:
    scores: dict[bytes, float] = {}
    for term in terms:
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
    tiers: dict[bytes, int] = {}
    want = bm25(docs, query, tiers=tiers)
    hits = list(index.iter_search(query))
    got = {key: score for _, key, score in hits}
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9)
    # ranked best first within each tier, the first tier first, ties by key
    order = [(tiers[k], -s, k) for _, k, s in hits]
    assert order == sorted(order)
    assert index.search(query, limit=len(docs) + 1) == hits


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


def test_threads_share_an_index():
    import threading
    index = TextIndex()
    vec = VectorIndex(embedder=HashEmbedder(16))
    errors = []

    def worker(n: int) -> None:
        try:
            tree = ProllyTree()
            for i in range(20):
                tree.insert(b"k%02d" % i, f"tokyo w{n} item{i}".encode())
                index.sync(tree, name=f"t{n}")
                vec.sync(tree, name=f"t{n}")
                index.search("tokyo", 5)
                vec.search("tokyo", 5)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == len(vec) == 80
    assert {n for n, _, _ in index.search("tokyo", 100)} == {"t0", "t1", "t2", "t3"}


def test_queries_mixing_common_and_rare_terms():
    # "the" and "a" are in more than half of the documents (IDF <= 0): with rarer terms
    # in the query they do not score and their documents come last
    rnd = random.Random(11)
    tree = ProllyTree()
    model = {}
    for i in range(600):
        words = [w for w, p in (("the", 0.85), ("a", 0.6)) if rnd.random() < p]
        words += [rnd.choice(WORDS) for _ in range(rnd.randint(0, 3))]
        rnd.shuffle(words)
        model[b"d%04d" % i] = " ".join(words) or "empty"
        tree.insert(b"d%04d" % i, model[b"d%04d" % i].encode())
    index = TextIndex()
    index.sync(tree)
    for q in ("the tokyo", "a the rain", "the", "the a prolly tree", "the zzz", "a beta"):
        check_against_model(index, model, q)
        got = list(index.iter_search(q))
        for lim in (1, 5, 17, 100):
            assert index.search(q, lim) == got[:lim]
    tiers: dict[bytes, int] = {}
    bm25(model, "the tokyo", tiers=tiers)
    assert set(tiers.values()) == {0, 1}  # both tiers were exercised


def test_old_root_from_another_store_means_rebuild():
    a, b = ProllyTree(), ProllyTree()
    a.insert_batch([(b"x", b"tokyo rain"), (b"y", b"sun")])
    b.insert_batch([(b"z", b"tokyo sun"), (b"w", b"cloud")])
    index = TextIndex()
    index.sync(a)
    a.insert(b"q", b"tokyo")
    index.sync(a)           # a diff, through the kept node cache
    index.sync(b)           # b's store has none of a's nodes: rebuilt from b
    fresh = TextIndex()
    fresh.sync(b)
    assert index.search("tokyo sun cloud", 10) == fresh.search("tokyo sun cloud", 10)
    assert len(index) == 2
