"""SQL benchmark: ProllySQLStore side by side with the published wheel (GlueSQL), doltlite
(SQLite over a prolly tree) and plain SQLite (the floor), in one run.

    .venv/bin/python benchmarks/bench_sql.py [--rows 100000] [--diff-rows 200000]
        [--commits 1000] [--repeats 3] [--wheel /tmp/wheelenv/bin/python]
        [--doltlite /tmp/doltenv/bin/python]

The wheel and doltlite run in their own interpreters (this script re-runs itself there with
``--engine``); an engine whose interpreter is missing is skipped. Medians of ``--repeats`` runs
of each read workload; ratios are ours / theirs (below 1: we are faster).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


class Ours:
    def __init__(self, d):
        from prollytree.sql import ProllySQLStore
        self.s = ProllySQLStore(os.path.join(d, "db"), "file")

    def ddl(self, sql):
        self.s.execute(sql)

    def bulk(self, table, rows):
        self.s.insert(table, rows)

    def q(self, sql, params=()):
        # the apsw connection directly: what execute() adds is result formatting
        return self.s.connection.execute(sql, params).fetchall()

    def commit(self, m):
        return self.s.commit(m)

    def diff(self, a, b, table):
        return self.s.diff(a, b, table=table)

    def history(self, table, key):
        return list(self.s.history(table, key=(key,)))


class Sqlite(Ours):
    def q(self, sql, params=()):
        return self.c.execute(sql, params).fetchall()

    def __init__(self, d):
        import apsw
        self.c = apsw.Connection(os.path.join(d, "plain.db"))

    def ddl(self, sql):
        self.c.execute(sql)

    def bulk(self, table, rows):
        with self.c:
            self.c.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})",
                               rows)

    def commit(self, m):
        return None


class Doltlite(Sqlite):
    def __init__(self, d):
        import doltlite  # noqa: F401  (bootstraps the library under sqlite3)
        import sqlite3
        self.c = sqlite3.connect(os.path.join(d, "dolt.db"), isolation_level=None)

    def ddl(self, sql):
        self.c.execute(sql)

    def bulk(self, table, rows):
        self.c.execute("BEGIN")
        self.c.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})",
                           rows)
        self.c.execute("COMMIT")

    def commit(self, m):
        return self.c.execute("SELECT dolt_commit('-A', '--allow-empty', '-m', ?)",
                              (m,)).fetchall()[0][0]

    def diff(self, a, b, table):
        return self.c.execute(f"SELECT * FROM dolt_diff_{table} WHERE from_commit = ? AND "
                              f"to_commit = ?", (a, b)).fetchall()

    def history(self, table, key):
        return self.c.execute(f"SELECT * FROM dolt_history_{table} WHERE id = ?",
                              (key,)).fetchall()


class Wheel(Sqlite):
    def __init__(self, d):
        subprocess.run(["git", "init", "-q", d], check=True)
        import prollytree
        self.s = prollytree.ProllySQLStore(os.path.join(d, "db"))

    def ddl(self, sql):
        self.s.execute(sql.replace("CREATE INDEX", "-- no index: ").split("--")[0] or "SELECT 1")

    def bulk(self, table, rows):
        for i in range(0, len(rows), 1000):
            vals = ",".join("(" + ",".join(repr(v) for v in r) + ")" for r in rows[i:i + 1000])
            self.s.execute(f"INSERT INTO {table} VALUES {vals}")

    def q(self, sql, params=()):
        for p in params:
            sql = sql.replace("?", repr(p), 1)
        return self.s.execute(sql)

    def commit(self, m):
        self.s.commit(m)
        return None

    diff = history = None


ENGINES = {"ours": Ours, "sqlite": Sqlite, "doltlite": Doltlite, "wheel": Wheel}


def run(engine: str, args) -> dict:
    rng = random.Random(7)
    res = {}
    with tempfile.TemporaryDirectory() as d:
        e = ENGINES[engine](d)
        n = args.rows
        e.ddl("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
        rows = [(i, f"value-{i}", i % 1000) for i in range(n)]
        t = time.perf_counter()
        e.bulk("t", rows)
        res["bulk insert (us/row)"] = (time.perf_counter() - t) / n * 1e6
        e.commit("bulk")
        keys = [rng.randrange(n) for _ in range(500)]
        res["point select (us)"] = timed(
            lambda: [e.q("SELECT * FROM t WHERE id = ?", (k,)) for k in keys],
            args.repeats) / len(keys) * 1e6
        lo = n // 2
        res["range scan 1k rows (ms)"] = timed(
            lambda: e.q("SELECT * FROM t WHERE id >= ? AND id < ?", (lo, lo + 1000)),
            args.repeats) * 1e3
        e.ddl("CREATE INDEX t_n ON t (n)")
        e.commit("index")
        # the wheel has no indexes: each lookup is a full scan, so it gets fewer of them
        vals = [rng.randrange(1000) for _ in range(5 if engine == "wheel" else 50)]
        res["select via index (us)"] = timed(
            lambda: [e.q("SELECT id FROM t WHERE n = ?", (v,)) for v in vals],
            args.repeats) / len(vals) * 1e6
        e.ddl("CREATE TABLE a (id INTEGER PRIMARY KEY, x INTEGER)")
        e.ddl("CREATE TABLE b (id INTEGER PRIMARY KEY, y INTEGER)")
        e.bulk("a", [(i, i * 2) for i in range(10000)])
        e.bulk("b", [(i, i * 3) for i in range(10000)])
        e.commit("join tables")
        res["join 10k x 10k (ms)"] = timed(
            lambda: e.q("SELECT count(*) FROM a JOIN b ON a.id = b.id"), args.repeats) * 1e3
        if e.diff is not None and args.diff_rows:
            e.ddl("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
            e.bulk("big", [(i, f"v{i}") for i in range(args.diff_rows)])
            c1 = e.commit("big")
            for k in rng.sample(range(args.diff_rows), 100):
                e.q("UPDATE big SET v = 'changed' WHERE id = ?", (k,))
            c2 = e.commit("100 changes")
            if c1 is not None:
                res[f"diff 100 changes at {args.diff_rows} rows (ms)"] = timed(
                    lambda: e.diff(c1, c2, "big"), args.repeats) * 1e3
        if e.history is not None and args.commits:
            e.ddl("CREATE TABLE h (id INTEGER PRIMARY KEY, v INTEGER)")
            e.bulk("h", [(i, 0) for i in range(100)])
            for i in range(args.commits):
                e.q("UPDATE h SET v = ? WHERE id = ?", (i, i % 100))
                e.commit(f"c{i}")
            if e.commit("x") is not None:
                res[f"history of one row over {args.commits} commits (ms)"] = timed(
                    lambda: e.history("h", 7), args.repeats) * 1e3
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--diff-rows", type=int, default=200_000)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--wheel-rows", type=int, default=20_000,
                    help="rows for the wheel (its inserts run at milliseconds per row; the "
                         "per-row and per-lookup figures compare across sizes)")
    ap.add_argument("--wheel", default="/tmp/wheelenv/bin/python")
    ap.add_argument("--doltlite", default="/tmp/doltenv/bin/python")
    ap.add_argument("--engines", default="ours,sqlite,wheel,doltlite",
                    help="comma-separated subset of ours,sqlite,wheel,doltlite")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:
        print(json.dumps(run(args.engine, args)))
        return
    passthrough = ["--rows", str(args.rows), "--diff-rows", str(args.diff_rows),
                   "--commits", str(args.commits), "--repeats", str(args.repeats)]
    results = {}
    engines = args.engines.split(",")
    for name in ("ours", "sqlite"):
        if name not in engines:
            continue
        print(f"running {name} ...", file=sys.stderr)
        results[name] = run(name, args)
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    for name, py in (("wheel", args.wheel), ("doltlite", args.doltlite)):
        if name not in engines:
            continue
        if not os.path.exists(py):
            print(f"skipping {name}: no {py}", file=sys.stderr)
            continue
        print(f"running {name} ...", file=sys.stderr)
        extra = passthrough
        if name == "wheel":
            extra = passthrough + ["--rows", str(min(args.rows, args.wheel_rows))]
        p = subprocess.run([py, HERE, "--engine", name] + extra, capture_output=True,
                           text=True, cwd=tempfile.gettempdir())
        if p.returncode:
            print(f"{name} failed: {p.stderr[-500:]}", file=sys.stderr)
            continue
        results[name] = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    if "ours" not in results:
        return
    others = [n for n in ("wheel", "doltlite", "sqlite") if n in results]
    head = f"{'workload':48} {'ours':>10}" + "".join(f" {n:>10}" for n in others) + \
        "".join(f" {'/' + n:>10}" for n in others)
    if "wheel" in results and args.wheel_rows < args.rows:
        print(f"(the wheel ran with {min(args.rows, args.wheel_rows)} rows in t, the others "
              f"with {args.rows})")
    print(head)
    for w, v in results["ours"].items():
        line = f"{w:48} {v:10.2f}"
        for n in others:
            x = results[n].get(w)
            line += f" {x:10.2f}" if x is not None else f" {'n/a':>10}"
        for n in others:
            x = results[n].get(w)
            line += f" {v / x:10.2f}" if x else f" {'n/a':>10}"
        print(line)


if __name__ == "__main__":
    main()
