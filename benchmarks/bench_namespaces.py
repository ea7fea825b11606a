"""Benchmarks of NamespacedKvStore (Git backend), ours and optionally the published wheel.

    python benchmarks/bench_namespaces.py [--namespaces 10] [--keys 2000]
                                          [--wheel /tmp/wheelenv/bin/python]

Each implementation runs in a fresh subprocess on a fresh Git repository:

* setup: NAMESPACES x KEYS pairs staged with ``ns_insert`` and committed once (seconds)
* commit_100: 100 updates in one namespace, then ``commit`` (median of 5, ms): the other
  namespaces are not rewritten, so this should not grow with the number of namespaces
* root_hash: ``get_namespace_root_hash`` (median of 200, microseconds)
* changed: ``namespace_changed(ns, <parent id>, <head id>)`` (median of 50, ms)
* ns_get: ``ns_get`` of a committed key (median of 2000, microseconds)

With ``--wheel PYTHON`` the worker also runs under that interpreter (started in /tmp so
that ``import prollytree`` is the wheel). Ratios are wheel / ours (> 1: ours is faster).
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


def worker(namespaces: int, keys: int) -> dict:
    from prollytree import NamespacedKvStore

    tmp = tempfile.mkdtemp(prefix="bench_ns_")
    try:
        os.environ.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@x",
                          GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@x")
        subprocess.run(["git", "init", "-q", "-b", "main", tmp], check=True)
        path = os.path.join(tmp, "data")
        os.makedirs(path)
        s = NamespacedKvStore(path)
        names = [f"ns{i}" for i in range(namespaces)]
        t = time.perf_counter()
        for ns in names:
            for k in range(keys):
                s.ns_insert(ns, b"key%08d" % k, b"v" * 32)
        s.commit("setup")
        setup = time.perf_counter() - t
        commits = []
        for r in range(5):
            t = time.perf_counter()
            for k in range(100):
                s.ns_insert(names[0], b"key%08d" % (k * 7 + r), b"w%d" % r)
            s.commit(f"update {r}")
            commits.append((time.perf_counter() - t) * 1e3)

        def median_of(n, fn):
            out = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
            return statistics.median(out)

        root = median_of(200, lambda: s.get_namespace_root_hash(names[-1])) * 1e6
        # commit ids: the wheel does not resolve HEAD~1 here
        a, b = s.log()[1]["id"], s.log()[0]["id"]
        changed = median_of(50, lambda: s.namespace_changed(names[0], a, b)) * 1e3
        get = median_of(2000, lambda: s.ns_get(names[1], b"key%08d" % (keys // 2))) * 1e6
        return {"setup_s": setup, "commit_100_ms": statistics.median(commits),
                "root_hash_us": root, "changed_ms": changed, "ns_get_us": get}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(python: str, namespaces: int, keys: int, cwd: str | None) -> dict | str:
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import bench_namespaces as b; print(json.dumps(b.worker({namespaces}, {keys})))")
    env = dict(os.environ)
    if cwd is not None:
        env.pop("PYTHONPATH", None)
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=1800)
    if r.returncode:
        return "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--wheel", metavar="PYTHON")
    a = ap.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ours = run(sys.executable, a.namespaces, a.keys, here)
    wheel = run(a.wheel, a.namespaces, a.keys, "/tmp") if a.wheel else None
    print(f"{a.namespaces} namespaces x {a.keys} keys, Git backend")
    print(f"{'operation':<16}{'ours':>12}{'wheel':>12}{'wheel/ours':>12}")
    for op in ["setup_s", "commit_100_ms", "root_hash_us", "changed_ms", "ns_get_us"]:
        o = ours[op] if isinstance(ours, dict) else float("nan")
        w = wheel[op] if isinstance(wheel, dict) else None
        ratio = f"{w / o:.2f}" if w is not None and o else "-"
        wt = f"{w:.3f}" if w is not None else "-"
        print(f"{op:<16}{o:>12.3f}{wt:>12}{ratio:>12}")
    for name, r in (("ours", ours), ("wheel", wheel)):
        if isinstance(r, str):
            print(f"{name}: {r}")


if __name__ == "__main__":
    main()
