"""Response times of every web UI page over a large dataset, through real HTTP.

    python benchmarks/bench_web.py [--keys 1000000] [--repeats 7] [--backend File]

Builds a dataset in a temporary directory: N keys (``key%010d`` -> 32-byte values) in
one commit, a named tree ``ns/docs`` of 10,000 keys, a tag, a ``rewrite`` branch that
changed every key (a diff of N changes, paged), 40 small commits on main
(10 keys each), a ``feature`` branch with 100 changes (10 of them conflicting with main),
a merge commit and (with the sql extra) a table of 10,000 rows in two commits. Then starts the app with ``python -m prollytree.web`` (uvicorn on
127.0.0.1) and times each page: one warm-up request, then the median (and max) of
``--repeats`` requests on one keep-alive connection, and the median CPU time the server
spent (its Server-Timing header: it does not grow with other load on a shared machine,
wall-clock time does). The target is <= 200 ms per page.

The published wheel (0.4.1) has no web server (it writes one static HTML page), so
there is nothing to compare side by side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 200.0
SQL_ROWS = 10_000


def build(path: str, n: int, backend: str) -> dict:
    from prollytree import StorageBackend, VersionedKvStore
    t0 = time.perf_counter()
    s = VersionedKvStore(path, StorageBackend[backend])
    batch = 100_000
    for lo in range(0, n, batch):
        s.insert_batch((b"key%010d" % i, b"v%031d" % i) for i in range(lo, min(n, lo + batch)))
    s.insert(b"doc:json", json.dumps({"name": "example", "items": list(range(50))}).encode())
    s.insert(b"doc:big", b"x" * 5_000_000)
    docs = s.tree("ns/docs")
    docs.insert_batch((b"doc%06d" % i, b"body %d" % i) for i in range(10_000))
    ids = {"initial": s.commit(f"{n} keys")}
    s.tag("v1")
    s.branch("feature")
    # a branch that rewrote every key: a diff of N changes, paged
    s.branch("rewrite")
    s.checkout("rewrite")
    for lo in range(0, n, batch):
        s.insert_batch((b"key%010d" % i, b"r%031d" % i) for i in range(lo, min(n, lo + batch)))
    ids["rewrite"] = s.commit(f"rewrite {n} keys")
    s.checkout("main")
    for c in range(40):
        for j in range(10):
            i = (c * 7919 + j * 104729) % n
            s.insert(b"key%010d" % i, b"main %d %d" % (c, j))
        ids["small"] = s.commit(f"main change {c}")
    s.checkout("feature")
    for j in range(100):
        i = (j * 104729) % n if j < 10 else (j * 15485863) % n
        s.insert(b"key%010d" % i, b"feature %d" % j)
    s.tree("ns/docs").insert(b"doc000001", b"changed on feature")
    ids["feature"] = s.commit("feature: 100 changes")
    s.checkout("main")
    s.insert(b"key%010d" % (n - 1), b"last")
    ids["before_merge"] = s.commit("main: one more")
    s.branch("side")
    s.checkout("side")
    s.insert(b"side", b"s")
    s.commit("side work")
    s.checkout("main")
    s.insert(b"main2", b"m")
    s.commit("main again")
    ids["merge"] = s.merge("side")
    s.close()
    try:
        from prollytree.sql import ProllySQLStore
    except ImportError:
        return ids
    with ProllySQLStore.open(path) as sql:
        sql.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        for lo in range(0, SQL_ROWS, 1000):
            sql.execute("INSERT INTO items VALUES " + ",".join(
                f"({i}, 'item {i}', {i * 0.5})" for i in range(lo, lo + 1000)))
        sql.commit(f"{SQL_ROWS} items")
        sql.execute("UPDATE items SET price = price * 2 WHERE id < 100")
        ids["sql"] = sql.commit("reprice 100 items")
    ids["build_s"] = time.perf_counter() - t0
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pages(ids: dict, n: int) -> list[tuple[str, str]]:
    mid = b"key%010d" % (n // 2)
    k = quote(mid.decode())
    return [
        ("history (graph of 100 commits)", "/"),
        ("history JSON", "/api/graph"),
        ("commit page: 10 keys changed", f"/commit/{ids['small']}"),
        ("commit page: the 1M-key commit", f"/commit/{ids['initial']}"),
        ("commit page: the 1M-key commit, a page in the middle",
         f"/commit/{ids['initial']}?after={k}"),
        ("commit page: merge commit", f"/commit/{ids['merge']}"),
        ("commit page: 1M keys rewritten (counts deferred)", f"/commit/{ids['rewrite']}"),
        ("commit page: 1M keys rewritten, a page in the middle",
         f"/commit/{ids['rewrite']}?after={k}"),
        ("browse: first page", "/browse"),
        ("browse: page in the middle (after=)", f"/browse?after={k}"),
        ("browse: page before the end (before=)", "/browse?before=zzz"),
        ("browse: prefix search", f"/browse?prefix={quote(mid.decode()[:9])}"),
        ("browse: named tree", "/browse?tree=ns/docs&prefix=doc0050"),
        ("browse JSON: 1000 keys", f"/api/keys?after={k}&limit=1000"),
        ("value: text", f"/value?key={k}"),
        ("value: JSON pretty", "/value?key=doc:json"),
        ("value: 5 MB (truncated view)", "/value?key=doc:big"),
        ("raw download: 5 MB value", "/raw?key=doc:big"),
        ("key history (45 commits walked)", f"/key-history?key={quote('key%010d' % 0)}"),
        ("key history from another branch (ref=feature)",
         f"/key-history?ref=feature&key={quote('key%010d' % 0)}"),
        ("diff main..feature (page of 100)", "/diff?from=main&to=feature"),
        ("diff v1..main (page of 100)", "/diff?from=v1&to=main"),
        ("diff named tree", "/diff?from=main&to=feature&tree=ns/docs"),
        ("diff v1..rewrite (1M changes): a page in the middle",
         f"/diff?from=v1&to=rewrite&after={k}"),
        ("diff v1..rewrite (1M changes): the last page",
         f"/diff?from=v1&to=rewrite&after={quote('key%010d' % (n - 50))}"),
        ("merge preview feature -> main", "/merge?source=feature&dest=main"),
        ("proof page", f"/proof?key={k}"),
        ("status", "/status"),
        ("SQL: page of 100 rows at HEAD~1", "/sql?ref=HEAD~1&q="
         + quote("SELECT * FROM items WHERE price > 10 ORDER BY id")),
        ("SQL: count(*) of 10,000 rows", "/sql?q=" + quote("SELECT count(*) FROM items")),
        ("SQL: prolly_log system table", "/sql?system=prolly_log"),
        ("live state JSON", "/api/state"),
    ]


def time_page(conn: http.client.HTTPConnection, url: str, repeats: int) -> tuple:
    """(median ms, max ms, median server CPU ms, status, bytes) of ``repeats`` requests
    after one warm-up. The server's CPU time comes from its Server-Timing header."""
    times, cpus = [], []
    status = size = 0
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        conn.request("GET", url)
        r = conn.getresponse()
        body = r.read()
        dt = (time.perf_counter() - t0) * 1000
        status, size = r.status, len(body)
        if i:
            times.append(dt)
            timing = r.getheader("server-timing") or ""
            cpu = [p.split("dur=")[1] for p in timing.split(",") if "cpu;dur=" in p]
            cpus.append(float(cpu[0]) if cpu else float("nan"))
    return statistics.median(times), max(times), statistics.median(cpus), status, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--backend", default="File", choices=["File", "Git", "RocksDB"])
    ap.add_argument("--keep", action="store_true", help="keep the dataset directory")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_web_")
    path = os.path.join(tmp, "ds")
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@x",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@x")
    os.environ.update(env)
    proc = None
    try:
        if args.backend == "Git":
            subprocess.run(["git", "init", "-q", "-b", "main", tmp], check=True)
        print(json.dumps(machine_info()))
        print(f"building {args.keys:,} keys ({args.backend} backend)...", flush=True)
        ids = build(path, args.keys, args.backend)
        print(f"built in {ids['build_s']:.1f} s", flush=True)
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "prollytree.web", path, "--port",
                                 str(port)], stdout=subprocess.PIPE, env=env, cwd=REPO)
        proc.stdout.readline()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(100):
            try:
                conn.request("GET", "/api/state")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        print(f"\n{'page':52} {'median ms':>10} {'max ms':>8} {'cpu ms':>7} {'status':>6} "
              f"{'bytes':>9}")
        worst = 0.0
        for name, url in pages(ids, args.keys):
            med, mx, cpu, status, size = time_page(conn, url, args.repeats)
            worst = max(worst, med)
            flag = "" if med <= TARGET_MS else "  over target"
            print(f"{name:52} {med:10.1f} {mx:8.1f} {cpu:7.1f} {status:6} {size:9}{flag}",
                  flush=True)
        print(f"\nslowest page median: {worst:.1f} ms (target <= {TARGET_MS:.0f} ms); load "
              f"average during the run: {os.getloadavg()[0]:.1f}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"dataset kept in {path}")


if __name__ == "__main__":
    main()
