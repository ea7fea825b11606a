"""Benchmarks of Git remotes and the HTTP server: clone and incremental push.

    python benchmarks/bench_sync_git.py [--sizes 100000,1000000] [--changes 100]
                                        [--repeats 3]

For each size N a Git-backed dataset of N keys (``key%010d`` -> 32 random bytes) is built
once in a temporary repository, pushed to a bare repository, and served by ``git prolly
serve`` (uvicorn, 127.0.0.1, in a subprocess). Then, medians of ``--repeats``:

* clone from the bare repository (path transport), next to ``git clone
  --no-local --no-checkout`` of the same repository by the git binary (the reference:
  same objects, C implementation, objects copied rather than hard-linked);
* clone over HTTP;
* incremental push of ``--changes`` updated keys (one commit) to the bare repository
  (dulwich / git receive-pack) and over HTTP (token), next to ``git push`` of the same
  commit by the git binary to a second bare repository;

reporting seconds, objects sent and bytes (for clones: bytes of the packs received;
for pushes over HTTP: request body bytes; to a bare repository: growth of its
``objects`` directory). The published wheel has no remotes, so there is no wheel column.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, random_pairs  # noqa: E402

ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com",
       "GIT_CONFIG_NOSYSTEM": "1"}
TOKEN = "bench-token"


def dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def pack_bytes(repo: str) -> int:
    d = os.path.join(repo, ".git", "objects", "pack")
    if not os.path.isdir(d):
        d = os.path.join(repo, "objects", "pack")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
               if f.endswith(".pack"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: str) -> tuple[subprocess.Popen, str]:
    import httpx
    port = free_port()
    code = ("import sys; from prollytree.sync.http_server import serve; "
            "serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), allow_push=True, "
            f"token={TOKEN!r})")
    proc = subprocess.Popen([sys.executable, "-c", code, path, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(url + "/prolly/v1/refs", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_size(n: int, changes: int, repeats: int) -> dict:
    from prollytree.sync import git_remote as gr
    from prollytree.versioning import VersionedKvStore

    tmp = tempfile.mkdtemp(prefix="bench_sync_git_")
    out: dict = {"keys": n}
    try:
        keys, values, _ = random_pairs(n, seed=7)
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        subprocess.run(["git", "init", "-q", "-b", "main", src], check=True)
        t = time.perf_counter()
        s = VersionedKvStore(os.path.join(src, "data"))
        s.insert_batch(zip((b"key%010d" % i for i in range(n)), values))
        s.commit("load")
        out["build_s"] = time.perf_counter() - t
        bare = os.path.join(tmp, "remote.git")
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", bare], check=True)
        gr.add_remote(s, "origin", bare)
        t = time.perf_counter()
        r = gr.push(s)
        out["initial_push_s"] = time.perf_counter() - t
        out["initial_push_objects"] = r["objects_sent"]
        s.close()
        out["dataset_pack_bytes"] = pack_bytes(bare)
        proc, url = start_server(os.path.join(src, "data"))
        try:
            for label, source in (("clone_bare", bare), ("clone_http", url)):
                times, sizes = [], []
                for i in range(repeats):
                    dest = os.path.join(tmp, f"{label}{i}")
                    t = time.perf_counter()
                    c = gr.clone(source, dest)
                    times.append(time.perf_counter() - t)
                    assert c.tree_at().size() == n
                    c.close()
                    sizes.append(pack_bytes(dest))
                    shutil.rmtree(dest)
                out[label + "_s"] = statistics.median(times)
                out[label + "_bytes"] = statistics.median(sizes)
            times = []
            for i in range(repeats):
                dest = os.path.join(tmp, f"gitclone{i}")
                t = time.perf_counter()
                # --no-local: copy objects as a transfer would, not hard-link them
                subprocess.run(["git", "clone", "-q", "--no-local", "--no-checkout", bare,
                                dest], check=True)
                times.append(time.perf_counter() - t)
                shutil.rmtree(dest)
            out["git_clone_s"] = statistics.median(times)
            # incremental pushes: a working clone changes `changes` keys per round
            work = gr.clone(bare, os.path.join(tmp, "work"))
            gr.add_remote(work, "web", url)
            mirror = os.path.join(tmp, "mirror.git")
            subprocess.run(["git", "clone", "-q", "--bare", bare, mirror], check=True)
            subprocess.run(["git", "-C", os.path.join(tmp, "work"), "remote", "add",
                            "mirror", mirror], check=True)
            import random
            rnd = random.Random(1)
            rows = {"push_bare": [], "push_http": [], "git_push": []}
            objs = {"push_bare": [], "push_http": []}
            nbytes = {"push_bare": [], "push_http": []}
            for i in range(repeats):
                for k in rnd.sample(range(n), changes):
                    work.insert(b"key%010d" % k, b"round %d %d" % (i, k))
                work.commit(f"round {i}")
                before = dir_bytes(os.path.join(bare, "objects"))
                t = time.perf_counter()
                r = gr.push(work, "origin")
                rows["push_bare"].append(time.perf_counter() - t)
                objs["push_bare"].append(r["objects_sent"])
                nbytes["push_bare"].append(dir_bytes(os.path.join(bare, "objects")) - before)
                t = time.perf_counter()
                r = gr.push(work, "web", token=TOKEN)
                rows["push_http"].append(time.perf_counter() - t)
                objs["push_http"].append(r["objects_sent"])
                nbytes["push_http"].append(r["bytes_sent"])
                t = time.perf_counter()
                subprocess.run(["git", "-C", os.path.join(tmp, "work"), "push", "-q",
                                "mirror", "main"], check=True)
                rows["git_push"].append(time.perf_counter() - t)
            work.close()
            for k, v in rows.items():
                out[k + "_s"] = statistics.median(v)
            for k, v in objs.items():
                out[k + "_objects"] = statistics.median(v)
            for k, v in nbytes.items():
                out[k + "_bytes"] = statistics.median(v)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print raw JSON too")
    args = ap.parse_args()
    os.environ.update(ENV)
    info = machine_info()
    print(f"# bench_sync_git ({info['cpu']}, {info['cores']} cores, Python "
          f"{info['python']}, rev {info['git']})\n")
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        r = run_size(n, args.changes, args.repeats)
        results.append(r)
        print(f"## {n:,} keys (dataset pack {r['dataset_pack_bytes'] / 1e6:.1f} MB; "
              f"built in {r['build_s']:.1f} s; first push {r['initial_push_s']:.1f} s, "
              f"{r['initial_push_objects']:,} objects)\n")
        print("| operation | seconds | objects | bytes | vs git binary |")
        print("|---|---:|---:|---:|---:|")
        print(f"| clone from bare repo (path) | {r['clone_bare_s']:.2f} | | "
              f"{r['clone_bare_bytes'] / 1e6:.1f} MB | "
              f"{r['clone_bare_s'] / r['git_clone_s']:.1f}x |")
        print(f"| clone over HTTP | {r['clone_http_s']:.2f} | | "
              f"{r['clone_http_bytes'] / 1e6:.1f} MB | "
              f"{r['clone_http_s'] / r['git_clone_s']:.1f}x |")
        print(f"| `git clone --no-local` (reference) | {r['git_clone_s']:.2f} | | | 1.0x |")
        print(f"| push {args.changes} changes to bare repo | {r['push_bare_s']:.3f} | "
              f"{r['push_bare_objects']:.0f} | {r['push_bare_bytes'] / 1e3:.1f} kB | "
              f"{r['push_bare_s'] / r['git_push_s']:.1f}x |")
        print(f"| push {args.changes} changes over HTTP | {r['push_http_s']:.3f} | "
              f"{r['push_http_objects']:.0f} | {r['push_http_bytes'] / 1e3:.1f} kB | "
              f"{r['push_http_s'] / r['git_push_s']:.1f}x |")
        print(f"| `git push` of the same commit (reference) | {r['git_push_s']:.3f} | | | "
              f"1.0x |\n")
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
