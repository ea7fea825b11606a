"""ProllyStore (LangGraph BaseStore): against a dict model, filters, namespaces, semantic
search with a LangGraph-style embed function and with a prollytree embedder, persistence."""

from __future__ import annotations

import asyncio
import random

import pytest

pytest.importorskip("langgraph")


from prollytree.integrations.langgraph import ProllyStore  # noqa: E402
from prollytree.search import HashEmbedder  # noqa: E402
from prollytree.versioning import StorageBackend  # noqa: E402

WORDS = ["tokyo", "rain", "python", "coffee", "tea", "mountain", "river", "jazz"]


def test_against_a_dict_model(tmp_path):
    store = ProllyStore(tmp_path / "s", StorageBackend.File)
    rnd = random.Random(1)
    model: dict[tuple, dict] = {}
    nss = [("users", "ann"), ("users", "bob"), ("users", "bob", "notes"), ("docs",)]
    for step in range(300):
        ns, key = rnd.choice(nss), f"k{rnd.randrange(15)}"
        if rnd.random() < 0.2:
            store.delete(ns, key)
            model.pop((ns, key), None)
        else:
            value = {"n": rnd.randrange(10), "w": rnd.choice(WORDS)}
            store.put(ns, key, value)
            model[(ns, key)] = value
        if step % 50 == 49:
            for (n, k), v in model.items():
                assert store.get(n, k).value == v
            for prefix in [("users",), ("users", "bob"), ("docs",), ()]:
                got = {(i.namespace, i.key): i.value
                       for i in store.search(prefix, limit=1000)}
                assert got == {(n, k): v for (n, k), v in model.items()
                               if n[:len(prefix)] == prefix}
                got = {(i.namespace, i.key) for i in store.search(prefix, filter={"n": {"$gte": 5}, "w": "tea"}, limit=1000)}
                assert got == {(n, k) for (n, k), v in model.items()
                               if n[:len(prefix)] == prefix and v["n"] >= 5 and v["w"] == "tea"}
    assert store.list_namespaces() == sorted({n for n, _ in model})
    assert store.list_namespaces(prefix=("users",), max_depth=2) == \
        sorted({n[:2] for n, _ in model if n[0] == "users"})
    assert store.list_namespaces(suffix=("notes",)) == [("users", "bob", "notes")] \
        if any(n == ("users", "bob", "notes") for n, _ in model) else True
    page = store.search(("users",), limit=3, offset=2)
    everything = store.search(("users",), limit=1000)
    assert [(i.namespace, i.key) for i in page] == [(i.namespace, i.key) for i in everything[2:5]]
    store.close()
    # persisted: a new store object finds everything; each batch was a commit
    again = ProllyStore(tmp_path / "s", StorageBackend.File)
    for (n, k), v in model.items():
        assert again.get(n, k).value == v
    assert len(again.storage.log()) > 100
    again.close()


def fake_embed(texts):
    """A LangGraph-style embed function (list[str] -> list[list[float]])."""
    return HashEmbedder(32, seed=5).embed(texts).tolist()


@pytest.mark.parametrize("embed", ["function", "prollytree"])
def test_semantic_search(tmp_path, embed):
    index = ({"dims": 32, "embed": fake_embed, "fields": ["text"]} if embed == "function"
             else {"embed": HashEmbedder(32, seed=5), "fields": ["text"]})
    store = ProllyStore(tmp_path / "s", StorageBackend.File, index=index)
    docs = {
        "a": "rain in tokyo tonight", "b": "python packaging guide", "c": "tea and coffee",
        "d": "mountain river walk", "e": "tokyo jazz bars",
    }
    for k, t in docs.items():
        store.put(("mem", "u1"), k, {"text": t, "n": len(t)})
    store.put(("mem", "u2"), "z", {"text": "tokyo rain again", "n": 0})
    store.put(("mem", "u1"), "skip", {"text": "tokyo rain"}, index=False)
    hits = store.search(("mem", "u1"), query="tokyo rain", limit=3)
    assert hits[0].key == "a" and all(h.score is not None for h in hits)
    assert "skip" not in {h.key for h in hits} and "z" not in {h.key for h in hits}
    # exact ranking: brute-force cosine over the indexed items of the namespace
    e = HashEmbedder(32, seed=5)
    q = e.embed(["tokyo rain"])[0]
    want = sorted(docs, key=lambda k: -float(e.embed([docs[k]])[0] @ q))[:3]
    assert [h.key for h in hits] == want
    # filters combine with the query
    hits = store.search(("mem",), query="tokyo", filter={"n": {"$lt": 17}}, limit=10)
    assert {h.key for h in hits} == {k for k, t in docs.items() if len(t) < 17} | {"z"}
    # updates and deletes are seen by the (derived) index
    store.delete(("mem", "u1"), "a")
    store.put(("mem", "u1"), "b", {"text": "rain in tokyo", "n": 1})
    assert store.search(("mem", "u1"), query="tokyo rain", limit=1)[0].key == "b"
    # async API
    got = asyncio.run(store.asearch(("mem", "u1"), query="jazz", limit=1))
    assert got[0].key == "e"
    assert asyncio.run(store.aget(("mem", "u1"), "e")).value["text"] == "tokyo jazz bars"
    store.close()


def test_bad_values(tmp_path):
    store = ProllyStore(tmp_path / "s", StorageBackend.File)
    with pytest.raises(TypeError):
        store.put(("a",), "k", ["not", "a", "dict"])
    with pytest.raises(ValueError):
        ProllyStore(tmp_path / "t", StorageBackend.File, index={"embed": fake_embed})
    store.close()
