"""Disk used by a file-store tree given many random keys in batches, with and without the
file store's automatic compaction (issue 9: 2M keys in 10 batches).

    python benchmarks/file_compaction.py [keys=2000000] [batches=10] [auto|off|both]

Prints, per mode: final log size, live node bytes, peak log size, compactions, seconds.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time

import prollytree.storage.file_compaction as file_store
from prollytree import ProllyTree


def run(keys: int, batches: int, auto: bool) -> dict:
    saved = file_store.AUTO_COMPACT_MIN_BYTES
    if not auto:
        file_store.AUTO_COMPACT_MIN_BYTES = 1 << 62       # never reached: never compacts
    try:
        rng = random.Random(9)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t")
            t0 = time.monotonic()
            peak = 0
            with ProllyTree("file", path) as t:
                for _ in range(batches):
                    t.insert_batch([(rng.randbytes(8).hex().encode(),
                                     rng.randbytes(16).hex().encode())
                                    for _ in range(keys // batches)])
                    t.flush()
                    peak = max(peak, t.store.stats()["log_bytes"])
                while t.store._compactor is not None:     # let a running compaction end
                    time.sleep(0.1)
                st = t.store.stats()
                tree_stats = t.stats()
            size = os.path.getsize(os.path.join(path, "nodes.log"))
            return {"mode": "auto" if auto else "off", "final_MB": round(size / 1e6),
                    "live_MB": round(tree_stats["total_node_bytes"] / 1e6),
                    "reclaimable_MB": round(tree_stats["reclaimable_bytes"] / 1e6),
                    "peak_MB": round(peak / 1e6), "compactions": st["compactions"],
                    "seconds": round(time.monotonic() - t0)}
    finally:
        file_store.AUTO_COMPACT_MIN_BYTES = saved


def main() -> None:
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    mode = sys.argv[3] if len(sys.argv) > 3 else "both"
    modes = {"auto": [True], "off": [False], "both": [False, True]}[mode]
    results = [run(keys, batches, auto) for auto in modes]
    for r in results:
        print(r, flush=True)
    if len(results) == 2:
        print(f"final size with automatic compaction: "
              f"{results[1]['final_MB'] / max(results[0]['final_MB'], 1):.2f}x of without")


if __name__ == "__main__":
    main()
