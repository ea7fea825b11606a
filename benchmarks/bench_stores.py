"""Throughput of the node stores through their public API.

For each store: write every node with ``put_many`` in batches and ``flush()`` (timed
together), close, reopen (timed: for the file store this loads the index checkpoint;
``file (log scan)`` reopens without it, from the log alone), then ``get`` nodes in a random
order, one call each (the read path the tree uses, SHA-256 verification included).

Prints a markdown table. Usage::

    python benchmarks/bench_stores.py                 # 100,000 nodes of 2,048 bytes
    python benchmarks/bench_stores.py --quick         # 10,000 nodes, a few seconds
    python benchmarks/bench_stores.py --stores file,lmdb --nodes 1000000 --size 1024
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prollytree.storage import MemoryNodeStore, NodeStore  # noqa: E402
from prollytree.storage.file import INDEX_NAME  # noqa: E402

ALL_STORES = ["memory", "file", "file (log scan)", "rocksdb", "lmdb"]


def make_nodes(n: int, size: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        data = rng.randbytes(size)
        out.append((hashlib.sha256(data).digest(), data))
    return out


def open_kind(kind: str, path: str) -> NodeStore:
    if kind.startswith("file"):
        from prollytree.storage.file import FileNodeStore
        return FileNodeStore(path)
    if kind == "rocksdb":
        from prollytree.storage.rocksdb import RocksDBNodeStore
        return RocksDBNodeStore(path)
    if kind == "lmdb":
        from prollytree.storage.lmdb import LMDBNodeStore
        return LMDBNodeStore(path)
    raise ValueError(f"unknown store {kind!r}")


def disk_usage(path: str) -> int:
    """Bytes actually allocated (sparse files such as LMDB's map count what they use)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            total += st.st_blocks * 512
    return total


def bench(kind: str, items: list[tuple[bytes, bytes]], batch: int, reads: int,
          workdir: str, seed: int) -> dict[str, float]:
    path = os.path.join(workdir, kind.split()[0])
    shutil.rmtree(path, ignore_errors=True)
    total_bytes = sum(len(d) for _, d in items)

    store = MemoryNodeStore() if kind == "memory" else open_kind(kind, path)
    t0 = time.perf_counter()
    for i in range(0, len(items), batch):
        store.put_many(items[i:i + batch])
    t1 = time.perf_counter()
    store.flush()
    write_s = time.perf_counter() - t0
    flush_ms = (time.perf_counter() - t1) * 1e3

    open_ms = float("nan")
    disk = float("nan")
    if kind != "memory":
        store.close()
        disk = disk_usage(path)
        if kind == "file (log scan)":
            os.remove(os.path.join(path, INDEX_NAME))
        t0 = time.perf_counter()
        store = open_kind(kind, path)
        open_ms = (time.perf_counter() - t0) * 1e3

    rng = random.Random(seed + 1)
    order = [items[rng.randrange(len(items))][0] for _ in range(reads)]
    get = store.get
    t0 = time.perf_counter()
    got = 0
    for a in order:
        got += len(get(a))
    read_s = time.perf_counter() - t0
    store.close()
    read_bytes = got
    if kind != "memory":
        shutil.rmtree(path, ignore_errors=True)
    return {
        "write_nps": len(items) / write_s,
        "write_mbs": total_bytes / write_s / 1e6,
        "flush_ms": flush_ms,
        "open_ms": open_ms,
        "read_nps": reads / read_s,
        "read_mbs": read_bytes / read_s / 1e6,
        "disk_mb": disk / 1e6,
    }


def fmt(x: float, digits: int = 0) -> str:
    if x != x:          # NaN: not applicable
        return "-"
    return f"{x:,.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100_000, help="nodes to write (100000)")
    ap.add_argument("--size", type=int, default=2048, help="bytes per node (2048)")
    ap.add_argument("--batch", type=int, default=1000, help="nodes per put_many (1000)")
    ap.add_argument("--reads", type=int, default=None, help="random gets (default: --nodes)")
    ap.add_argument("--stores", default=",".join(ALL_STORES),
                    help=f"comma-separated subset of: {', '.join(ALL_STORES)}")
    ap.add_argument("--dir", default=None,
                    help="directory for the stores (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per store; the best figure of each column is shown (1)")
    ap.add_argument("--quick", action="store_true", help="10,000 nodes: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.nodes = min(args.nodes, 10_000)
    if args.nodes <= 0 or args.size < 0 or args.batch <= 0 or args.repeat <= 0:
        ap.error("--nodes, --batch and --repeat must be positive, --size non-negative")
    reads = args.reads if args.reads is not None else args.nodes
    kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    for k in kinds:
        if k not in ALL_STORES:
            ap.error(f"unknown store {k!r}; choose from {', '.join(ALL_STORES)}")

    items = make_nodes(args.nodes, args.size, args.seed)
    workdir = args.dir or tempfile.mkdtemp(prefix="bench_stores_")
    os.makedirs(workdir, exist_ok=True)
    try:
        print(f"{args.nodes:,} nodes x {args.size:,} B, put_many batches of {args.batch:,}, "
              f"{reads:,} random gets, best of {args.repeat}; "
              f"Python {platform.python_version()} on {platform.machine()}, "
              f"{os.cpu_count()} CPUs, stores in {workdir}")
        print()
        print("| store | write nodes/s | write MB/s | of which flush ms | reopen ms "
              "| read nodes/s | read MB/s | disk MB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind in kinds:
            runs = [bench(kind, items, args.batch, reads, workdir, args.seed)
                    for _ in range(args.repeat)]
            # Best of the repeats for each figure: the least disturbed by other load.
            r = {"write_nps": max(x["write_nps"] for x in runs),
                 "write_mbs": max(x["write_mbs"] for x in runs),
                 "flush_ms": min(x["flush_ms"] for x in runs),
                 "open_ms": min(x["open_ms"] for x in runs),
                 "read_nps": max(x["read_nps"] for x in runs),
                 "read_mbs": max(x["read_mbs"] for x in runs),
                 "disk_mb": runs[-1]["disk_mb"]}
            print(f"| {kind} | {fmt(r['write_nps'])} | {fmt(r['write_mbs'], 1)} "
                  f"| {fmt(r['flush_ms'], 1)} | {fmt(r['open_ms'], 1)} | {fmt(r['read_nps'])} "
                  f"| {fmt(r['read_mbs'], 1)} | {fmt(r['disk_mb'], 1)} |", flush=True)
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
