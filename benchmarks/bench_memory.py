"""Agent memory and search benchmarks (issue 13's targets).

    python benchmarks/bench_memory.py            # 100k memories (hash embedder), 10k wordllama
    python benchmarks/bench_memory.py --n 20000 --wordllama 0    # quicker

Measures, with medians of repeats:
  * storing N memories (facts with ~10-word texts) and the first checkpoint;
  * building the derived indexes (first text / semantic query);
  * text (BM25) and semantic (top-10) query latency over N memories (targets 2 ms / 5 ms);
  * checkpoint and rollback at N memories after 100 changes (target 50 ms);
  * index update after 100 changes, text and vector (target 50 ms);
  * with --wordllama M: storing and querying M memories embedded by WordLlama.

The published wheel (prollytree 0.4.1) has no agent memory, so there is no side-by-side
column here. The dataset uses the Git backend (the default) in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, median  # noqa: E402

from prollytree.memory import AgentMemorySystem, MemoryQuery  # noqa: E402
from prollytree.search import HashEmbedder, TextIndex, VectorIndex  # noqa: E402
from prollytree.versioning import StorageBackend, VersionedKvStore  # noqa: E402

TARGETS = {"text": 2.0, "text (rare words)": 2.0, "semantic": 5.0, "checkpoint": 50.0, "rollback": 50.0,
           "text index update": 50.0, "vector index update": 50.0}


def vocabulary(rnd: random.Random, n: int = 5000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rnd.choice(letters) for _ in range(rnd.randint(3, 9))) for _ in range(n)]


def sentence(rnd: random.Random, vocab: list[str], words: int = 10) -> str:
    # Zipf-like: low ranks are frequent, as in real text
    return " ".join(vocab[min(int(rnd.paretovariate(1.1)) - 1, len(vocab) - 1)]
                    if rnd.random() < 0.5 else rnd.choice(vocab) for _ in range(words))


def timed(fn, repeats: int) -> tuple[float, list]:
    """Median milliseconds of ``repeats`` calls, and the results."""
    times, results = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        results.append(fn())
        times.append((time.perf_counter() - t) * 1000)
    return median(times), results


def row(name: str, ms: float, note: str = "") -> None:
    target = TARGETS.get(name)
    verdict = "" if target is None else (" ok" if ms <= target else " over")
    tgt = "" if target is None else f"<= {target:g} ms{verdict}"
    print(f"| {name} | {ms:,.3f} | {tgt} | {note} |", flush=True)


def bench_memory(n: int, path: str, embedder, label: str, queries: int = 50) -> None:
    rnd = random.Random(13)
    vocab = vocabulary(rnd)
    mem = AgentMemorySystem(path, "bench", embedder)
    texts = [sentence(rnd, vocab) for _ in range(n)]
    t = time.perf_counter()
    ids = [mem.semantic.store_fact("topic", f"e{i % 1000}", {"note": texts[i]}, 0.8, "bench")
           for i in range(n)]
    store_s = time.perf_counter() - t
    print(f"\n### {label}: {n:,} memories\n")
    print("| operation | median ms | target | note |\n|---|---:|---|---|")
    row("store one memory", store_s * 1000 / n, f"{n:,} stores in {store_s:.1f} s")
    ms, _ = timed(lambda: mem.checkpoint("bulk"), 1)
    row("first checkpoint", ms, f"commits {n:,} memories")
    ms, _ = timed(lambda: mem.query(MemoryQuery(text_query=vocab[0], limit=10)), 1)
    row("build text index (first text query)", ms)
    ms, _ = timed(lambda: mem.query(MemoryQuery(semantic_query=texts[0], limit=10)), 1)
    row("build vector index (first semantic query)", ms)
    qs = [" ".join(rnd.sample(texts[rnd.randrange(n)].split(), 2)) for _ in range(queries)]
    it = iter(qs * 2)
    ms, res = timed(lambda: mem.query(MemoryQuery(text_query=next(it), limit=10)), queries)
    row("text", ms, "BM25 top-10, 2 words drawn from the texts (Zipf: often frequent)")
    tail = vocab[len(vocab) // 2:]  # words outside the Zipf head: each in well under 1%
    rare = [" ".join(rnd.sample(tail, 2)) for _ in range(queries)]
    it = iter(rare * 2)
    ms, res = timed(lambda: mem.query(MemoryQuery(text_query=next(it), limit=10)), queries)
    row("text (rare words)", ms, "BM25 top-10, 2 words from the vocabulary's tail")
    it = iter(qs * 2)
    ms, res = timed(lambda: mem.query(MemoryQuery(semantic_query=next(it), limit=10)), queries)
    row("semantic", ms, "top-10, query embedded each time")
    # checkpoint and rollback with 100 changes
    cps, rbs = [], []
    for r in range(5):
        base = mem.checkpoint(f"base {r}")
        for i in rnd.sample(range(n), 100):
            mem.update(ids[i], tags=[f"r{r}"])
        t = time.perf_counter()
        mem.checkpoint(f"100 changes {r}")
        cps.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        mem.rollback(base)
        rbs.append((time.perf_counter() - t) * 1000)
    row("checkpoint", median(cps), "after 100 updates")
    row("rollback", median(rbs), "to the checkpoint before 100 updates (a new commit)")
    ms, _ = timed(lambda: mem.query(MemoryQuery(text_query=qs[0], limit=10)), 1)
    row("text query after rollback", ms, "includes the index update from the diff")
    stats = mem.get_system_stats()
    assert stats["total"] == n, stats["total"]
    mem.close()


def bench_index_update(n: int, path: str, repeats: int = 5) -> None:
    """The indexes on their own, over one tree: update after 100 changed entries."""
    rnd = random.Random(7)
    vocab = vocabulary(rnd)
    store = VersionedKvStore(path, StorageBackend.File)
    store.insert_batch((b"doc%07d" % i, sentence(rnd, vocab).encode()) for i in range(n))
    store.commit("docs")
    text = TextIndex()
    vec = VectorIndex(embedder=HashEmbedder(256))
    t = time.perf_counter()
    text.sync(store.tree_at())
    build_text = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    vec.sync(store.tree_at())
    vec.search("warm up", 10)  # builds the in-memory ANN
    build_vec = (time.perf_counter() - t) * 1000
    tu, vu = [], []
    for r in range(repeats):
        for i in rnd.sample(range(n), 100):
            store.insert(b"doc%07d" % i, sentence(rnd, vocab).encode())
        store.commit(f"100 changes {r}")
        tree = store.tree_at()
        t = time.perf_counter()
        text.sync(tree)
        tu.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        vec.sync(tree)
        vec.search("warm up", 10)  # the ANN follows the change before answering
        vu.append((time.perf_counter() - t) * 1000)
    print(f"\n### Indexes over one tree of {n:,} documents (prollytree.search)\n")
    print("| operation | median ms | target | note |\n|---|---:|---|---|")
    row("text index build", build_text)
    row("vector index build", build_vec, "hash embedder, dim 256, usearch HNSW")
    row("text index update", median(tu), "100 changed documents, from the tree diff")
    row("vector index update", median(vu), "100 changed documents re-embedded")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="memories for the hash-embedder run")
    ap.add_argument("--wordllama", type=int, default=10_000,
                    help="memories for the WordLlama run (0: skip)")
    args = ap.parse_args()
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
          f"git {info['git']}")
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.invalid")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        bench_index_update(args.n, os.path.join(tmp, "docs"))
        bench_memory(args.n, os.path.join(tmp, "hash"), HashEmbedder(256),
                     "Hash embedder (dim 256)")
        if args.wordllama:
            from prollytree.search import WordLlamaEmbedder
            bench_memory(args.wordllama, os.path.join(tmp, "wl"), WordLlamaEmbedder(),
                         "WordLlama embedder (dim 256, weights from the wheel)")


if __name__ == "__main__":
    main()
