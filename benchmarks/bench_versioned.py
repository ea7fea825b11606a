"""Benchmarks of VersionedKvStore: commit, checkout, diff and merge at several sizes.

    python benchmarks/bench_versioned.py --sizes 10000,100000,1000000 [--backend Git]
                                         [--wheel /tmp/wheelenv/bin/python]

Each size runs in a fresh subprocess (a "worker") on a fresh store in a temporary
directory (a new Git repository for the Git backend):

* setup: N keys (``key%010d`` -> 32-byte values) staged with ``insert`` and committed once
* commit: 100 staged updates, then ``commit`` (median of 5)
* checkout: switching between two branches that differ by 100 keys (median of 10)
* diff: ``diff`` of two commits 100 keys apart (median of 5), warm (the store that made
  the commits) and cold (``diff_cold``: a new store object on the same path, so no node
  is cached in the process; the OS page cache stays warm)
* merge: 100 changes committed on each of two branches (disjoint keys), then ``merge``
  (median of 3, each on fresh branches)

With ``--wheel PYTHON`` the same worker runs under that interpreter, where ``import
prollytree`` is the published wheel (run from /tmp so that this checkout is not on the
path), with a time limit per size (``--wheel-timeout``); sizes it does not finish are
reported as such. Figures are milliseconds per operation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

OPS = ["setup_s", "commit_100_ms", "checkout_ms", "diff_100_ms", "diff_cold_ms",
       "merge_100x2_ms"]


def worker(n: int, backend: str) -> dict:
    import prollytree
    from prollytree import VersionedKvStore

    tmp = tempfile.mkdtemp(prefix="bench_versioned_")
    try:
        path = os.path.join(tmp, "data")
        os.makedirs(path)
        if backend == "Git":
            env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@x",
                       GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@x")
            os.environ.update(env)
            subprocess.run(["git", "init", "-q", "-b", "main", tmp], check=True)
            s = VersionedKvStore(path)
        else:
            s = VersionedKvStore(path, getattr(prollytree.StorageBackend, backend))
        out: dict = {"n": n}
        key = b"key%010d"
        val = b"v" * 22 + b"%010d"
        t = time.perf_counter()
        for i in range(n):
            s.insert(key % i, val % i)
        s.commit("load")
        out["setup_s"] = time.perf_counter() - t

        step = max(1, n // 100)
        times = []
        for r in range(5):
            for i in range(100):
                s.insert(key % ((i * step + r) % n), b"commit-%d" % r)
            t = time.perf_counter()
            s.commit(f"commit {r}")
            times.append(time.perf_counter() - t)
        out["commit_100_ms"] = statistics.median(times) * 1e3

        times = []
        for r in range(5):
            a = s.current_commit()
            for i in range(100):
                s.insert(key % ((i * step + 7 + r) % n), b"diff-%d" % r)
            b = s.commit(f"diff {r}")
            t = time.perf_counter()
            d = s.diff(a, b)
            times.append(time.perf_counter() - t)
            assert len(d) == 100, len(d)
        out["diff_100_ms"] = statistics.median(times) * 1e3

        times = []
        for r in range(5):
            a = s.current_commit()
            for i in range(100):
                s.insert(key % ((i * step + 5 + r) % n), b"cold-%d" % r)
            b = s.commit(f"cold {r}")
            try:   # other backends may hold a process-wide lock on their store
                fresh = VersionedKvStore(path) if backend == "Git" else None
            except Exception:
                fresh = None
            if fresh is None:
                break
            t = time.perf_counter()
            d = fresh.diff(a, b)
            times.append(time.perf_counter() - t)
            assert len(d) == 100, len(d)
            if hasattr(fresh, "close"):
                fresh.close()
        if times:
            out["diff_cold_ms"] = statistics.median(times) * 1e3

        s.create_branch("other")
        for i in range(100):
            s.insert(key % ((i * step + 11) % n), b"other")
        s.commit("other")
        times = []
        for r in range(10):
            t = time.perf_counter()
            s.checkout("main" if r % 2 == 0 else "other")
            times.append(time.perf_counter() - t)
        s.checkout("main")
        out["checkout_ms"] = statistics.median(times) * 1e3

        times = []
        for r in range(3):
            s.create_branch(f"src{r}")
            for i in range(100):
                s.insert(key % ((i * step + 20 + 2 * r) % n), b"src-%d" % r)
            s.commit(f"src {r}")
            s.checkout("main")
            for i in range(100):
                s.insert(key % ((i * step + 21 + 2 * r) % n), b"dst-%d" % r)
            s.commit(f"dst {r}")
            t = time.perf_counter()
            s.merge(f"src{r}")
            times.append(time.perf_counter() - t)
            assert s.get(key % ((20 + 2 * r) % n)) == b"src-%d" % r
        out["merge_100x2_ms"] = statistics.median(times) * 1e3
        if hasattr(s, "close"):
            s.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_worker(python: str, n: int, backend: str, timeout: float, cwd: str | None) -> dict:
    cmd = [python, os.path.abspath(__file__), "--worker", str(n), "--backend", backend]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"n": n, "error": f"did not finish in {timeout:g} s"}
    if r.returncode:
        return {"n": n, "error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def fmt(v) -> str:
    return "-" if v is None else f"{v:,.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--backend", default="Git", choices=["Git", "File", "RocksDB", "InMemory"])
    ap.add_argument("--wheel", nargs="?", const="/tmp/wheelenv/bin/python", default=None,
                    help="python of an environment with the published wheel")
    ap.add_argument("--wheel-timeout", type=float, default=600.0)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.backend)))
        return
    sizes = [int(x) for x in args.sizes.split(",") if x]
    print(f"VersionedKvStore benchmarks, backend {args.backend} (ms per operation; "
          f"setup in s)")
    header = f"{'keys':>9} {'impl':>6} " + " ".join(f"{op:>15}" for op in OPS)
    print(header)
    for n in sizes:
        ours = run_worker(sys.executable, n, args.backend, 3600, None)
        rows = [("ours", ours)]
        if args.wheel:
            rows.append(("wheel", run_worker(args.wheel, n, args.backend, args.wheel_timeout,
                                             tempfile.gettempdir())))
        for name, res in rows:
            if "error" in res:
                print(f"{n:>9} {name:>6} {res['error']}")
            else:
                print(f"{n:>9} {name:>6} " + " ".join(f"{fmt(res.get(op)):>15}" for op in OPS))
        if args.wheel and "error" not in ours and "error" not in rows[1][1]:
            w = rows[1][1]
            print(f"{n:>9} {'x':>6} " + " ".join(
                f"{w[op] / ours[op]:>14.1f}x" if ours.get(op) else f"{'-':>15}" for op in OPS)
                + "   (wheel time / our time)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
