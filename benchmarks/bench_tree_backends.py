#!/usr/bin/env python
"""The core tree workloads of bench_tree.py on every storage backend, with the ratio to
the memory store.

    .venv/bin/python benchmarks/bench_tree_backends.py                 # 10k keys
    .venv/bin/python benchmarks/bench_tree_backends.py --sizes 10k,100k --repeat 5

Same workloads, same seeded data and the same timing code as ``bench_tree.py`` (imported
from it): only the tree factory differs. Persistent trees are created in fresh temporary
directories and closed (flushed) after each run; durable flushes are not in the timed part
except where a workload asks for the root hash, which applies buffered writes but does not
fsync. Memory workloads are left out: they measure the memory store.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_tree  # noqa: E402
from _common import fmt_num, machine_info, median  # noqa: E402

KINDS = ("memory", "file", "lmdb", "rocksdb")
TIMED = ("insert", "insert_batch", "find", "delete", "mixed", "proof", "diff")


class StoreImpl(bench_tree.Impl):
    """Our package, with trees on one storage backend."""

    def __init__(self, kind: str) -> None:
        super().__init__("ours")
        self.kind = kind
        self.dirs: list[str] = []
        self.trees: list = []

    def tree(self):
        if self.kind == "memory":
            return self.module.ProllyTree()
        path = tempfile.mkdtemp(prefix=f"bench-{self.kind}-")
        self.dirs.append(path)
        t = self.module.ProllyTree(self.kind, path)
        self.trees.append(t)
        return t

    def cleanup(self) -> None:
        for t in self.trees:
            t.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.trees, self.dirs = [], []


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10k", help="comma-separated key counts (k/M ok)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--workloads", default=",".join(TIMED))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240521)
    args = ap.parse_args(argv)
    sizes = [bench_tree.parse_size(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    workloads = args.workloads.split(",")
    m = machine_info()
    print(f"# bench_tree_backends (µs/op; diff in ms/diff) - {m['cpu']}, {m['cores']} cores, "
          f"Python {m['python']}\n")
    rows: dict = {}
    for n in sizes:
        d = bench_tree.Data(n, args.seed)
        for kind in kinds:
            impl = StoreImpl(kind)
            for w in workloads:
                times = []
                for _ in range(args.repeat):
                    (el, _cpu), ops, _info = bench_tree.WORKLOADS[w](impl, d)
                    impl.cleanup()
                    gc.collect()
                    times.append(el / ops * (1e3 if w == "diff" else 1e6))
                rows[(w, n, kind)] = median(times)
                print(f"[{kind} n={n}] {w}: {rows[(w, n, kind)]:.3g}", file=sys.stderr)
    head = " | ".join(f"{k}" for k in kinds)
    ratio_kinds = [k for k in kinds if k != "memory"]
    print(f"| workload | keys | {head} | " + " | ".join(f"{k}/memory" for k in ratio_kinds) + " |")
    print("|---|---:|" + "---:|" * (len(kinds) + len(ratio_kinds)))
    for w in workloads:
        for n in sizes:
            vals = [rows[(w, n, k)] for k in kinds]
            ratios = [rows[(w, n, k)] / rows[(w, n, "memory")] for k in ratio_kinds] \
                if "memory" in kinds else []
            print(f"| {w} | {n:,} | " + " | ".join(fmt_num(v) for v in vals) + " | "
                  + " | ".join(f"{r:.2f}×" for r in ratios) + " |")


if __name__ == "__main__":
    main()
