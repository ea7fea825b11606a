#!/usr/bin/env python
"""ProllyTree micro-benchmarks, ours side by side with the published Rust wheel.

    .venv/bin/python benchmarks/bench_tree.py --quick                 # ours, 100..10k keys
    .venv/bin/python benchmarks/bench_tree.py --wheel --sizes 100,1k,10k,100k
    .venv/bin/python benchmarks/bench_tree.py --sizes 1M --json out.json

Every workload goes through the public ``ProllyTree`` API with 16-byte random keys and
32-byte random values from a seeded RNG (the same bytes for both implementations: each
worker reports a fingerprint of its data and the parent checks they agree). Each
(implementation, size) runs in a fresh worker process: the script re-invokes itself with
``--impl ours`` (this interpreter) or ``--impl wheel`` (``/tmp/wheelenv/bin/python``, cwd
``/tmp`` so that it cannot import our package), and the worker prints its results as JSON.
Memory is measured in a fresh process per size and method, so that no earlier workload's
freed memory hides the growth.

Workloads (time per operation, median of ``--repeat`` runs; setup is never timed):

* ``insert``           N single inserts into an empty tree, then get_root_hash()
* ``insert_hash_each`` N single inserts into an empty tree, get_root_hash() after each one
                       (the honest unbuffered O(log n) cost of a write); above 50k keys,
                       the last 50k inserts into the tree built from the others
* ``insert_batch``     insert_batch(N pairs) into an empty tree + get_root_hash(), per item
* ``find``             find() of every key of an N-key tree, in random order
* ``delete``           delete N/10 existing keys one at a time, then get_root_hash()
* ``mixed``            N ops on an N-key tree: 60% find (existing keys), 30% insert (new
                       keys), 10% delete (existing keys), shuffled; then get_root_hash()
* ``proof``            generate_proof + verify for 1000 random keys (ours: the module
                       function verify_proof(root_hash, proof, key, value); the wheel:
                       tree.verify_proof(proof, key, value)); every proof must verify
* ``diff``             tree_a.diff(tree_b), two N-key trees 100 keys apart (34 modified,
                       33 removed, 33 added): milliseconds per diff, and the entry count
* ``memory_tracemalloc`` bytes per pair held after insert_batch(N) + get_root_hash(): input
                       generated under tracemalloc and dropped afterwards, so everything
                       the tree keeps alive counts (ours only: tracemalloc cannot see Rust)
* ``memory_rss``       RSS growth (/proc/self/statm) across insert_batch(N) + get_root_hash()
                       per pair, input allocated before and kept alive (both)
* ``memory_read_*``    the same two measures taken after a full read pass (find() of every
                       key in random order) over the built tree: what read caches add

The wheel's single insert, delete and mixed workloads cost O(n) per operation. Before a
wheel workload runs, a short probe on a tree of the right size projects its time; when
that exceeds ``--wheel-budget`` seconds the workload is skipped ("skipped (projected
Xs)"), and otherwise it gets as many repeats as fit in the budget (at least one).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    REPO, WHEEL_ENV, clock, ensure_wheel_env, fmt_num, machine_info, median, random_pairs,
    rss_bytes, settle,
)

TIMED = ["insert", "insert_hash_each", "insert_batch", "find", "delete", "mixed", "proof",
         "diff"]
MEMORY = ["memory_tracemalloc", "memory_rss", "memory_read_tracemalloc", "memory_read_rss"]
ALL = TIMED + MEMORY

LABELS = {
    "insert": "single insert (root hash at end)",
    "insert_hash_each": "single insert, root hash after every insert (last 50k above 50k)",
    "insert_batch": "insert_batch, per item",
    "find": "find (random order)",
    "delete": "delete N/10 (root hash at end)",
    "mixed": "mixed 60/30/10 (root hash at end)",
    "proof": "proof generate + verify",
    "diff": "diff, trees 100 keys apart [ms/diff]",
    "memory_tracemalloc": "memory [B/pair, tracemalloc]",
    "memory_rss": "memory [B/pair, RSS delta]",
    "memory_read_tracemalloc": "memory after reading every key [B/pair, tracemalloc]",
    "memory_read_rss": "memory after reading every key [B/pair, RSS delta]",
}
UNITS = {w: "us/op" for w in TIMED}
UNITS.update(diff="ms", memory_tracemalloc="B/pair", memory_rss="B/pair",
             memory_read_tracemalloc="B/pair", memory_read_rss="B/pair")

PROOF_KEYS = 1000
DIFF_MODIFIED, DIFF_REMOVED, DIFF_ADDED = 34, 33, 33
JSON_MARK = "@@BENCH-JSON@@"

# DESIGN.md "Performance bar" and issue 10's targets: (workload, size, target)
TARGETS = [
    ("insert", 10_000, 1.0), ("insert_hash_each", 10_000, 40), ("find", 10_000, 0.8),
    ("delete", 10_000, 15), ("mixed", 10_000, 8), ("insert_batch", 10_000, 0.55),
    ("proof", 10_000, 15),
    ("insert", 1_000_000, 30), ("insert_hash_each", 1_000_000, 60),
    ("find", 1_000_000, 4.0), ("insert_batch", 1_000_000, 1.4), ("proof", 1_000_000, 30),
    ("diff", 1_000_000, None),
    ("memory_tracemalloc", 10_000, 100), ("memory_tracemalloc", 1_000_000, 65),
    ("memory_read_tracemalloc", 1_000_000, 100), ("memory_read_rss", 1_000_000, 100),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_size(s: str) -> int:
    s = s.strip().lower().replace("_", "")
    mult = 1
    if s.endswith("k"):
        mult, s = 1000, s[:-1]
    elif s.endswith("m"):
        mult, s = 1_000_000, s[:-1]
    return int(float(s) * mult)


# =========================================================================== worker side

class Impl:
    """The implementation under test: our package or the published wheel."""

    def __init__(self, name: str) -> None:
        import prollytree
        self.name = name
        self.module = prollytree
        self.version = getattr(prollytree, "__version__", "?")
        self.path = os.path.dirname(os.path.abspath(prollytree.__file__))
        # Make sure we measure what we think we measure.
        if name == "wheel" and not self.path.startswith(os.path.realpath(WHEEL_ENV)) \
                and not self.path.startswith(WHEEL_ENV):
            raise SystemExit(f"--impl wheel imported prollytree from {self.path}")
        if name == "ours" and not self.path.startswith(REPO):
            raise SystemExit(f"--impl ours imported prollytree from {self.path}")

    def tree(self):
        return self.module.ProllyTree()

    def built(self, items):
        t = self.tree()
        t.insert_batch(items)
        t.get_root_hash()
        return t


class Data:
    """The seeded inputs for one size; derived sets are made on first use."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.keys, self.vals, self.fingerprint = random_pairs(n, seed)
        self.items = list(zip(self.keys, self.vals))
        self._cache: dict = {}

    def _get(self, name, make):
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    @property
    def order(self) -> list[bytes]:
        def make():
            o = self.keys[:]
            random.Random(self.seed + 101).shuffle(o)
            return o
        return self._get("order", make)

    @property
    def value_of(self) -> dict:
        return self._get("value_of", lambda: dict(self.items))

    @property
    def del_keys(self) -> list[bytes]:
        return self._get("del_keys", lambda: random.Random(self.seed + 102).sample(
            self.keys, max(1, self.n // 10)))

    @property
    def mixed_ops(self) -> tuple[list, int, int]:
        def make():
            n = self.n
            rng = random.Random(self.seed + 103)
            n_find, n_ins = n * 6 // 10, n * 3 // 10
            n_del = n - n_find - n_ins
            codes = [0] * n_find + [1] * n_ins + [2] * n_del
            rng.shuffle(codes)
            new_k, new_v, _ = random_pairs(n_ins, self.seed + 1)
            victims = rng.sample(self.keys, n_del)
            keys = self.keys
            ops, ni, di = [], 0, 0
            for c in codes:
                if c == 0:
                    ops.append((0, keys[rng.randrange(n)], None))
                elif c == 1:
                    ops.append((1, new_k[ni], new_v[ni]))
                    ni += 1
                else:
                    ops.append((2, victims[di], None))
                    di += 1
            return ops, n_ins, n_del
        return self._get("mixed_ops", make)

    @property
    def proof_pairs(self) -> list[tuple[bytes, bytes]]:
        def make():
            rng = random.Random(self.seed + 104)
            if self.n >= PROOF_KEYS:
                return rng.sample(self.items, PROOF_KEYS)
            return rng.choices(self.items, k=PROOF_KEYS)
        return self._get("proof_pairs", make)

    @property
    def diff_items(self) -> list[tuple[bytes, bytes]]:
        def make():
            rng = random.Random(self.seed + 105)
            touched = rng.sample(self.keys, DIFF_MODIFIED + DIFF_REMOVED)
            b = dict(self.items)
            for k in touched[:DIFF_MODIFIED]:
                b[k] = rng.randbytes(len(b[k]))
            for k in touched[DIFF_MODIFIED:]:
                del b[k]
            add_k, add_v, _ = random_pairs(DIFF_ADDED, self.seed + 2)
            b.update(zip(add_k, add_v))
            return list(b.items())
        return self._get("diff_items", make)


# -- timed workloads: each returns ((wall s, cpu s), ops, info) ----------------------------

def start() -> tuple[float, float]:
    return clock(), time.process_time()


def stop(t0: tuple[float, float]) -> tuple[float, float]:
    """Elapsed wall-clock and process CPU seconds since ``start()``: the figures are wall
    time; CPU time shows whether other processes were competing for the cores."""
    return clock() - t0[0], time.process_time() - t0[1]

def wl_insert(impl: Impl, d: Data):
    t = impl.tree()
    ins = t.insert
    items = d.items
    settle()
    t0 = start()
    for k, v in items:
        ins(k, v)
    root = t.get_root_hash()
    el = stop(t0)
    assert t.size() == d.n, (t.size(), d.n)
    return el, d.n, {"root": root.hex()}


HASH_EACH_MAX = 50_000


def wl_insert_hash_each(impl: Impl, d: Data):
    # above HASH_EACH_MAX keys the tree is first built from all but the last
    # HASH_EACH_MAX pairs (untimed), and only those are inserted one by one
    m = min(d.n, HASH_EACH_MAX)
    t = impl.built(d.items[:d.n - m]) if m < d.n else impl.tree()
    ins, h = t.insert, t.get_root_hash
    items = d.items[d.n - m:]
    settle()
    t0 = start()
    for k, v in items:
        ins(k, v)
        h()
    el = stop(t0)
    assert t.size() == d.n
    return el, m, {"root": t.get_root_hash().hex()}


def wl_insert_batch(impl: Impl, d: Data):
    t = impl.tree()
    items = d.items
    settle()
    t0 = start()
    t.insert_batch(items)
    root = t.get_root_hash()
    el = stop(t0)
    assert t.size() == d.n
    info = {"root": root.hex()}
    try:
        st = t.stats()
        info["depth"] = t.depth()
        info["nodes"] = st.get("num_nodes")
        info["avg_node_size"] = st.get("avg_node_size")
    except Exception:  # stats are informational
        pass
    return el, d.n, info


def wl_find(impl: Impl, d: Data):
    t = impl.built(d.items)
    f = t.find
    order = d.order
    settle()
    t0 = start()
    for k in order:
        f(k)
    el = stop(t0)
    value_of = d.value_of
    for k in order[:200]:
        assert f(k) == value_of[k]
    return el, d.n, {}


def wl_delete(impl: Impl, d: Data):
    t = impl.built(d.items)
    dl = t.delete
    dk = d.del_keys
    settle()
    t0 = start()
    for k in dk:
        dl(k)
    t.get_root_hash()
    el = stop(t0)
    assert t.size() == d.n - len(dk), (t.size(), d.n - len(dk))
    return el, len(dk), {}


def wl_mixed(impl: Impl, d: Data):
    ops, n_ins, n_del = d.mixed_ops
    t = impl.built(d.items)
    f, ins, dl = t.find, t.insert, t.delete
    settle()
    t0 = start()
    for op, k, v in ops:
        if op == 0:
            f(k)
        elif op == 1:
            ins(k, v)
        else:
            dl(k)
    t.get_root_hash()
    el = stop(t0)
    assert t.size() == d.n + n_ins - n_del, (t.size(), d.n + n_ins - n_del)
    return el, len(ops), {}


def wl_proof(impl: Impl, d: Data):
    pairs = d.proof_pairs
    t = impl.built(d.items)
    gp = t.generate_proof
    ok = 0
    if impl.name == "ours":
        vp = impl.module.verify_proof
        root = t.get_root_hash()
        settle()
        t0 = start()
        for k, v in pairs:
            ok += vp(root, gp(k), k, v)
        el = stop(t0)
    else:
        tv = t.verify_proof
        settle()
        t0 = start()
        for k, v in pairs:
            ok += tv(gp(k), k, v)
        el = stop(t0)
    assert ok == len(pairs), f"{len(pairs) - ok} of {len(pairs)} proofs failed to verify"
    sizes = [len(gp(k)) for k, _ in pairs[:100]]
    return el, len(pairs), {"proof_bytes": sum(sizes) / len(sizes)}


def wl_diff(impl: Impl, d: Data):
    a = impl.built(d.items)
    b = impl.built(d.diff_items)
    settle()
    t0 = start()
    r = a.diff(b)
    el = stop(t0)
    if isinstance(r, dict):
        counts = {k: len(r.get(k) or ()) for k in ("added", "removed", "modified")}
    else:
        counts = {"entries": len(list(r or ()))}
    entries = sum(counts.values())
    info = {"entries": entries, "counts": counts,
            "expected": DIFF_ADDED + DIFF_REMOVED + DIFF_MODIFIED}
    if impl.name == "ours":
        assert counts == {"added": DIFF_ADDED, "removed": DIFF_REMOVED,
                          "modified": DIFF_MODIFIED}, counts
    return el, 1, info


WORKLOADS = {
    "insert": wl_insert, "insert_hash_each": wl_insert_hash_each,
    "insert_batch": wl_insert_batch, "find": wl_find, "delete": wl_delete,
    "mixed": wl_mixed, "proof": wl_proof, "diff": wl_diff,
}


# -- projection (guard against the wheel's O(n)-per-op paths) ------------------------------

def _sample(op, args, max_ops: int = 200, max_time: float = 0.5) -> float:
    """Mean seconds per call of ``op(*a)`` over the first few ``args``."""
    t0 = clock()
    n = 0
    for a in args:
        op(*a)
        n += 1
        if n >= max_ops or (n >= 2 and clock() - t0 > max_time):
            break
    return (clock() - t0) / max(n, 1)


def project(impl: Impl, d: Data, workload: str) -> float | None:
    """Projected seconds of one run of ``workload`` (None: linear and cheap, no probe)."""
    n = d.n
    if workload in ("insert", "insert_hash_each"):
        # the tree grows from 0 to n: the mean insert costs about what one costs at n/2
        half = n // 2
        t = impl.built(d.items[:half])
        if workload == "insert":
            per = _sample(t.insert, d.items[half:])
        else:
            h = t.get_root_hash
            per = _sample(lambda k, v: (t.insert(k, v), h()), d.items[half:])
        t0 = clock()
        t.get_root_hash()
        ops = n if workload == "insert" else min(n, HASH_EACH_MAX)
        return per * ops + (clock() - t0)
    if workload == "find":
        t = impl.built(d.items)
        return _sample(t.find, ((k,) for k in d.order)) * n
    if workload == "delete":
        t = impl.built(d.items)
        per = _sample(t.delete, ((k,) for k in d.del_keys))
        t0 = clock()
        t.get_root_hash()
        return per * len(d.del_keys) + (clock() - t0)
    if workload == "mixed":
        ops = d.mixed_ops[0]
        t = impl.built(d.items)
        fns = (t.find, t.insert, t.delete)
        per = _sample(lambda op, k, v: fns[op](k) if op != 1 else fns[1](k, v), ops,
                      max_ops=400, max_time=1.0)
        return per * len(ops)
    if workload == "proof":
        t = impl.built(d.items)
        pairs = d.proof_pairs
        if impl.name == "ours":
            root = t.get_root_hash()
            vp = impl.module.verify_proof
            per = _sample(lambda k, v: vp(root, t.generate_proof(k), k, v), pairs)
        else:
            per = _sample(lambda k, v: t.verify_proof(t.generate_proof(k), k, v), pairs)
        return per * len(pairs)
    return None


# -- memory ---------------------------------------------------------------------------------

def _read_all(t, keys: list, seed: int) -> None:
    order = keys[:]
    random.Random(seed + 101).shuffle(order)
    f = t.find
    for k in order:
        f(k)


def mem_tracemalloc(impl: Impl, n: int, seed: int, read: bool = False) -> dict:
    import tracemalloc
    impl.tree().get_root_hash()  # imports and one-time module state are not the tree's
    gc.collect()
    tracemalloc.start()
    keys, vals, fp = random_pairs(n, seed)
    items = list(zip(keys, vals))
    del vals
    t = impl.tree()
    t.insert_batch(items)
    t.get_root_hash()
    del items
    if read:
        _read_all(t, keys, seed)
    del keys
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert t.size() == n
    return {"value": current / n, "peak_per_pair": peak / n, "fingerprint": fp}


def mem_rss(impl: Impl, n: int, seed: int, read: bool = False) -> dict:
    keys, vals, fp = random_pairs(n, seed)
    items = list(zip(keys, vals))
    order = keys[:]
    t = impl.tree()
    t.get_root_hash()
    gc.collect()
    before = rss_bytes()
    t.insert_batch(items)
    t.get_root_hash()
    if read:
        random.Random(seed + 101).shuffle(order)
        f = t.find
        for k in order:
            f(k)
    gc.collect()
    after = rss_bytes()
    assert t.size() == n
    return {"value": (after - before) / n, "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20, "fingerprint": fp}


MEMORY_FNS = {
    "memory_tracemalloc": lambda impl, n, seed: mem_tracemalloc(impl, n, seed),
    "memory_rss": lambda impl, n, seed: mem_rss(impl, n, seed),
    "memory_read_tracemalloc": lambda impl, n, seed: mem_tracemalloc(impl, n, seed, True),
    "memory_read_rss": lambda impl, n, seed: mem_rss(impl, n, seed, True),
}


# -- the worker's main loop -----------------------------------------------------------------

def run_worker(args) -> None:
    impl = Impl(args.impl)
    out = {"impl": impl.name, "version": impl.version, "path": impl.path,
           "machine": machine_info(), "results": []}
    budget = args.budget
    for n in args.sizes:
        tag = f"[{impl.name} n={size_label(n)}]"
        mem = [w for w in args.workloads if w in MEMORY]
        timed = [w for w in args.workloads if w in TIMED]
        for w in mem:
            if w.endswith("tracemalloc") and impl.name == "wheel":
                out["results"].append({"workload": w, "size": n, "impl": impl.name,
                                       "value": None, "note": "n/a (Rust heap)"})
                continue
            info = MEMORY_FNS[w](impl, n, args.seed)
            value = info.pop("value")
            out["results"].append({"workload": w, "size": n, "impl": impl.name,
                                   "value": value, "unit": UNITS[w], "runs": 1,
                                   "fingerprint": info.pop("fingerprint"), "info": info})
            log(f"{tag} {w}: {value:.1f} B/pair")
        if not timed:
            continue
        t0 = clock()
        d = Data(n, args.seed)
        log(f"{tag} data ready in {clock() - t0:.1f}s (fingerprint {d.fingerprint})")
        for w in timed:
            res = {"workload": w, "size": n, "impl": impl.name, "unit": UNITS[w],
                   "fingerprint": d.fingerprint}
            runs = args.repeat
            if budget is not None:
                projected = project(impl, d, w)
                gc.collect()
                if projected is not None:
                    res["projected_s"] = projected
                    if projected > budget:
                        res["value"] = None
                        res["note"] = f"skipped (projected {projected:,.0f}s)"
                        out["results"].append(res)
                        log(f"{tag} {w}: {res['note']}")
                        continue
                    runs = max(1, min(runs, int(budget // max(projected, 1e-9))))
            times, cpu, info, ops = [], [], {}, 0
            for _ in range(runs):
                (el, el_cpu), ops, info = WORKLOADS[w](impl, d)
                times.append(el)
                cpu.append(el_cpu)
                gc.collect()
            med, med_cpu = median(times), median(cpu)
            scale = 1e3 if w == "diff" else 1e6 / ops
            res["value"] = med * scale
            res["cpu_value"] = med_cpu * scale
            res.update(runs=len(times), ops=ops, seconds=times, cpu_seconds=cpu, info=info)
            if runs < args.repeat:
                res["note"] = f"{runs} run(s) within budget"
            out["results"].append(res)
            log(f"{tag} {w}: {res['value']:.3f} {UNITS[w]} "
                f"(median of {len(times)}, {sum(times):.1f}s total)")
        del d
        gc.collect()
    out["loadavg_end"] = os.getloadavg()
    print(JSON_MARK + json.dumps(out), flush=True)


# =========================================================================== parent side

def spawn(python: str, impl: str, sizes: list[int], workloads: list[str], args,
          budget: float | None) -> dict:
    cmd = [python, os.path.abspath(__file__), "--impl", impl,
           "--sizes", ",".join(map(str, sizes)), "--workloads", ",".join(workloads),
           "--repeat", str(args.repeat), "--seed", str(args.seed)]
    if budget is not None:
        cmd += ["--budget", str(budget)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    # cwd outside the repository: the wheel's interpreter must not find our package.
    sys.stdout.flush()
    p = subprocess.run(cmd, cwd="/tmp", stdout=subprocess.PIPE, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(JSON_MARK)]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"worker failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}")
    return json.loads(lines[-1][len(JSON_MARK):])


def interpreter_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, cwd="/tmp").stdout.strip()


def render(results: list[dict], sizes: list[int], with_wheel: bool, repeat: int) -> str:
    by = {(r["impl"], r["workload"], r["size"]): r for r in results}
    rows = ["| workload | size | ours | wheel | ratio (wheel/ours) | notes |",
            "|---|---:|---:|---:|---:|---|"]
    for w in ALL:
        for n in sizes:
            o = by.get(("ours", w, n))
            wh = by.get(("wheel", w, n))
            if o is None and wh is None:
                continue
            ov = o.get("value") if o else None
            wv = wh.get("value") if wh else None
            notes = []
            if o and o.get("note"):
                notes.append("ours: " + o["note"])
            if w == "diff":
                if o:
                    notes.append(f"ours: {o['info']['entries']} entries")
                if wh and wv is not None:
                    e = wh["info"]["entries"]
                    notes.append(f"wheel: {e} entries" + (" (returns nothing)" if e == 0 else ""))
            if w == "proof" and o:
                notes.append(f"ours proof {o['info']['proof_bytes']:.0f} B")
                if wh and wh.get("info"):
                    notes.append(f"wheel proof {wh['info']['proof_bytes']:.0f} B")
            if o and w in TIMED and o.get("runs") and o["runs"] != repeat:
                notes.append(f"ours {o['runs']} runs")
            if w in MEMORY:
                notes.append("1 fresh process")
            if w.endswith("rss") and n < 100_000:
                notes.append("page-granular, noisy at this size")
            for who, r in (("ours", o), ("wheel", wh)):
                # wall time well above CPU time: other processes were taking the cores
                if r and r.get("cpu_value") and r["value"] > 1.15 * r["cpu_value"]:
                    notes.append(f"{who} contended: cpu {fmt_num(r['cpu_value'])}")
            if wh and wh.get("note") and wv is not None:
                notes.append("wheel: " + wh["note"])
            if wh is None or not with_wheel:
                wcell = "—"
            elif wv is None:
                wcell = wh.get("note", "n/a")
            else:
                wcell = fmt_num(wv)
            ratio = f"{wv / ov:,.1f}×" if (ov and wv) else "—"
            if w == "diff" and wh and wv is not None and \
                    wh["info"]["entries"] != wh["info"]["expected"]:
                ratio = "— (wheel result wrong)"
            rows.append(f"| {LABELS[w]} | {size_label(n)} | {fmt_num(ov)} | {wcell} | "
                        f"{ratio} | {'; '.join(notes)} |")
    return "\n".join(rows)


def render_targets(results: list[dict]) -> str:
    by = {(r["workload"], r["size"]): r for r in results if r["impl"] == "ours"}
    rows = ["| target (DESIGN.md, issue 10) | size | ours | target | met |",
            "|---|---:|---:|---:|---|"]
    for w, n, target in TARGETS:
        r = by.get((w, n))
        if r is None or r.get("value") is None:
            continue
        v = r["value"]
        unit = {"us/op": "µs", "ms": "ms", "B/pair": "B/pair"}[UNITS[w]]
        met = "—" if target is None else ("yes" if v <= target else "**no**")
        tcell = "(none; store diff ≤ 5 ms)" if target is None else f"≤ {target} {unit}"
        rows.append(f"| {LABELS[w]} | {size_label(n)} | {fmt_num(v)} {unit} | {tcell} | {met} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def run_parent(args) -> None:
    info = machine_info()
    wheel_py = ensure_wheel_env(log) if args.wheel else None
    print("# bench_tree: ProllyTree through the public API (µs/op unless noted)\n")
    print(f"- machine: {info['cpu']}, {info['cores']} usable cores "
          f"({info['cpu_count']} online), {info['platform']}")
    print(f"- ours: CPython {info['python']} ({sys.executable}), git {info['git']}")
    if wheel_py:
        print(f"- wheel: prollytree 0.4.1 (Rust/PyO3), CPython {interpreter_version(wheel_py)} "
              f"({wheel_py}), wheel budget {args.wheel_budget:g}s per workload")
    load = os.getloadavg()
    print(f"- load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
          + (" (other processes are busy: expect inflated wall times; see 'contended' notes)"
             if load[0] > max(0.5, info["cores"] - 1) else ""))
    print(f"- keys 16 random bytes, values 32 random bytes, seed {args.seed}; "
          f"median of {args.repeat} runs; sizes {', '.join(map(size_label, args.sizes))}\n",
          flush=True)

    results: list[dict] = []
    meta = {"machine": info, "args": {k: v for k, v in vars(args).items()}, "workers": []}
    timed = [w for w in args.workloads if w in TIMED]
    mem = [w for w in args.workloads if w in MEMORY]
    impls = [("ours", sys.executable, None)]
    if wheel_py:
        impls.append(("wheel", wheel_py, args.wheel_budget))
    started = time.time()
    for n in args.sizes:
        for name, py, budget in impls:
            jobs = [timed] if timed else []
            jobs += [[w] for w in mem if not (name == "wheel" and w.endswith("tracemalloc"))]
            for wl in jobs:
                out = spawn(py, name, [n], wl, args, budget)
                results += out["results"]
                meta["workers"].append({k: out[k] for k in ("impl", "version", "path")})
            for w in mem:
                if name == "wheel" and w.endswith("tracemalloc"):
                    results.append({"workload": w, "size": n, "impl": "wheel",
                                    "value": None, "note": "n/a (Rust heap)"})
        # same inputs on both sides?
        fps = {r["fingerprint"] for r in results if r["size"] == n and r.get("fingerprint")}
        if len(fps) > 1:
            raise SystemExit(f"the implementations measured different data at n={n}: {fps}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({**meta, "results": results}, f, indent=1)

    # ours: single inserts, root-hash-each and batch must give one root (history independence)
    for n in args.sizes:
        roots = {r["info"]["root"] for r in results if r["impl"] == "ours" and r["size"] == n
                 and r["workload"] in ("insert", "insert_hash_each", "insert_batch")
                 and r.get("info", {}).get("root")}
        if len(roots) > 1:
            print(f"WARNING: ours gave different roots for the same pairs at n={n}: {roots}")

    print(render(results, args.sizes, bool(wheel_py), args.repeat))
    targets = render_targets(results)
    if targets:
        print("\n" + targets)
    load = os.getloadavg()
    print(f"\n(total wall time {time.time() - started:,.0f}s; load average at end "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; figures are wall time, a "
          f"'contended' note gives the CPU time when it is >15% lower)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**meta, "results": results}, f, indent=1)
        print(f"raw results: {args.json}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1k,10k,100k,1M",
                    help="comma-separated key counts (k/M suffixes ok); default 100..1M")
    ap.add_argument("--quick", action="store_true", help="sizes 100,1k,10k")
    ap.add_argument("--repeat", type=int, default=3, help="runs per workload (median)")
    ap.add_argument("--workloads", default=",".join(ALL),
                    help=f"comma-separated subset of: {', '.join(ALL)}")
    ap.add_argument("--wheel", action="store_true",
                    help="also run the published wheel (prollytree 0.4.1) from "
                         f"{WHEEL_ENV}, creating it if needed")
    ap.add_argument("--wheel-budget", type=float, default=60.0,
                    help="skip a wheel workload whose projected time exceeds this (s)")
    ap.add_argument("--json", metavar="PATH", help="save raw results as JSON")
    ap.add_argument("--seed", type=int, default=20240521)
    ap.add_argument("--impl", choices=["ours", "wheel"],
                    help="(internal) worker mode: run in this interpreter, JSON on stdout")
    ap.add_argument("--budget", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.sizes = [parse_size(s) for s in ("100,1k,10k" if args.quick else args.sizes).split(",")]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in ALL]
    if bad:
        ap.error(f"unknown workloads {bad}; choose from {ALL}")
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.impl:
        run_worker(args)
    else:
        run_parent(args)


if __name__ == "__main__":
    main()
