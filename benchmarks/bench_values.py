"""Large values (issue 14): chunker choice, write/read throughput of one big value on the
file and Git backends, and peak memory while streaming it.

    .venv/bin/python benchmarks/bench_values.py            # 1 GiB value, 3 repeats
    .venv/bin/python benchmarks/bench_values.py --mb 256 --repeats 1
    .venv/bin/python benchmarks/bench_values.py --mb 256 --backends Git --profile /tmp/p
                                                   # cProfile of the Git run (pstats file;
                                                   # the pack writer thread is not in it)

Printed: MB/s of the chunkers (pyfastcdc, fastcdc, a pure-Python gear chunker of ours),
the floor (SHA-256 alone over the value, one pass: the least a content-addressed write
must do), then for each backend the median write (``VersionedKvStore.insert_stream`` +
``commit``) and read (``open_value`` read to the end) throughput, and the peak RSS
growth of a separate process streaming the value in and out (the value never fits in
it). The published wheel has no streaming API for large values (its Git backend refuses
them at commit), so there is no side-by-side column here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine_info, median  # noqa: E402

MB = 1 << 20


def make_file(path: str, size: int) -> None:
    rnd = random.Random(42)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MB)
            f.write(rnd.randbytes(n))
            left -= n


def gear_chunks(buf: bytes, avg_bits: int = 16, lo: int = 16384, hi: int = 262144) -> list:
    """Our own chunker for comparison: a plain gear rolling hash in Python."""
    rnd = random.Random(7)
    gear = [rnd.getrandbits(64) for _ in range(256)]
    mask = (1 << avg_bits) - 1
    out, start, h = [], 0, 0
    m64 = (1 << 64) - 1
    i, n = 0, len(buf)
    while i < n:
        h = ((h << 1) + gear[buf[i]]) & m64
        i += 1
        size = i - start
        if size >= hi or (size >= lo and not (h >> 48) & mask):
            out.append(size)
            start, h = i, 0
    if start < n:
        out.append(n - start)
    return out


def bench_chunkers(sample: bytes) -> dict:
    import pyfastcdc

    res = {}
    c = pyfastcdc.FastCDC(65536, min_size=16384, max_size=262144)

    def t(fn, data):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn(data)
            times.append(time.perf_counter() - t0)
        return len(data) / MB / median(times)

    res["sha256 (floor)"] = t(lambda d: hashlib.sha256(d).digest(), sample)
    res["pyfastcdc"] = t(lambda d: sum(1 for _ in c.cut_buf(d)), sample)
    try:  # not a dependency: measured when installed (pip install fastcdc)
        from fastcdc import fastcdc_cy
    except ImportError:
        res["fastcdc (not installed)"] = float("nan")
    else:
        res["fastcdc"] = t(lambda d: sum(1 for _ in fastcdc_cy.fastcdc_cy(
            d, 16384, 65536, 262144)), sample)
    small = sample[:2 * MB]
    res["own gear (pure Python)"] = t(gear_chunks, small)
    return res


def one_run(kind: str, src: str, size: int, workdir: str) -> dict:
    """Write then read the value in this process; returns MB/s."""
    from prollytree.versioning import StorageBackend, VersionedKvStore

    path = os.path.join(workdir, kind)
    if kind == "Git":
        subprocess.run(["git", "init", "-q", path], check=True)
        store = VersionedKvStore(os.path.join(path, "data"))
    else:
        store = VersionedKvStore(path, StorageBackend[kind])
    t0 = time.perf_counter()
    with open(src, "rb") as f:
        store.insert_stream(b"big", f)
    store.commit("big")
    w = time.perf_counter() - t0
    store.close()
    store = (VersionedKvStore(os.path.join(path, "data")) if kind == "Git"
             else VersionedKvStore(path, StorageBackend[kind]))
    t0 = time.perf_counter()
    h = hashlib.sha256() if size <= 0 else None
    n = 0
    with store.open_value(b"big") as f:
        while True:
            b = f.read(4 * MB)
            if not b:
                break
            n += len(b)
            if h is not None:
                h.update(b)
    r = time.perf_counter() - t0
    store.close()
    assert n == size, (n, size)
    return {"write": size / MB / w, "read": size / MB / r}


def _rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def child(kind: str, src: str, size: int, workdir: str) -> None:
    """Run in a subprocess: peak memory growth while streaming in and out. Two measures:
    anonymous memory (what the process allocates; sampled every 10 ms) and max RSS,
    which also counts the pages of store files the backends mmap (page cache the
    kernel can drop, growing with what was read)."""
    import threading

    import prollytree.versioning  # noqa: F401  (imports counted in the baseline)

    base_anon = _rss_anon()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [base_anon]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss_anon())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    r = one_run(kind, src, size, workdir)
    done.set()
    t.join()
    r["peak_anon_growth_mb"] = (peak[0] - base_anon) / MB
    r["peak_rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                               - base) / MB
    print(json.dumps(r))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="File,Git",
                    help="comma-separated: File, Git (default both)")
    ap.add_argument("--profile", metavar="FILE",
                    help="cProfile the Git write of the first repeat into FILE (pstats)")
    ap.add_argument("--child", nargs=4)
    a = ap.parse_args()
    if a.child:
        kind, src, size, workdir = a.child
        child(kind, src, int(size), workdir)
        return
    size = a.mb * MB
    print(json.dumps(machine_info()))
    tmp = tempfile.mkdtemp(prefix="bench_values_")
    try:
        src = os.path.join(tmp, "value.bin")
        make_file(src, size)
        with open(src, "rb") as f:
            sample = f.read(64 * MB)
        print("\nchunkers and floor (MB/s, 64 MiB sample; own gear on 2 MiB):")
        for name, v in bench_chunkers(sample).items():
            print(f"  {name:26s} {v:8.1f}")
        t0 = time.perf_counter()
        h = hashlib.sha256()
        with open(src, "rb") as f:
            while True:
                b = f.read(4 * MB)
                if not b:
                    break
                h.update(b)
        floor = size / MB / (time.perf_counter() - t0)
        print(f"  {'sha256 of the file':26s} {floor:8.1f}   (read + SHA-256, the floor)")
        print(f"\n{a.mb} MiB value, median of {a.repeats}:")
        print(f"  {'backend':8s} {'write MB/s':>11s} {'read MB/s':>10s} {'anon +MB':>9s}"
              f" {'maxRSS +MB':>11s} {'write/floor':>12s} {'read/floor':>11s}")
        for kind in a.backends.split(","):
            runs = []
            for i in range(a.repeats):
                wd = os.path.join(tmp, f"{kind}{i}")
                os.makedirs(wd)
                cmd = [sys.executable, __file__, "--child", kind, src, str(size), wd]
                if a.profile and kind == "Git" and not i:
                    cmd[1:1] = ["-m", "cProfile", "-o", a.profile]
                out = subprocess.run(cmd, capture_output=True, text=True,
                                     check=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
                shutil.rmtree(wd, ignore_errors=True)
            w = median([r["write"] for r in runs])
            r = median([r["read"] for r in runs])
            anon = max(r_["peak_anon_growth_mb"] for r_ in runs)
            m = max(r_["peak_rss_growth_mb"] for r_ in runs)
            print(f"  {kind:8s} {w:11.1f} {r:10.1f} {anon:9.1f} {m:11.1f} {w / floor:12.2f}"
                  f" {r / floor:11.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
