"""The damage-fuzz harness: build a store holding a known tree, flip random bytes in one of
its files, then read everything back in a forked child and classify what happened.

A trial fails when the damaged store serves a value other than the model's (a wrong value,
or None for a key the model has), lets an exception escape that is not one of
prollytree's documented classes (:mod:`prollytree.errors`), makes ``verify()`` raise
instead of returning its report, or kills the process (a signal such as SIGSEGV/SIGBUS).
Reporting the damage (a documented exception on a read, or on opening) is a success.

Run as a script for the figures in docs/reliability.md::

    python -m tests.reliability.damage [trials per backend] [seed]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import traceback
from collections import Counter

from prollytree import ProllyTree
from prollytree.errors import ProllyError

KINDS = ["file", "lmdb", "rocksdb", "git"]
N_KEYS = 1500


def model_items(seed: int = 7) -> dict[bytes, bytes]:
    rng = random.Random(seed)
    return {b"key-%06d" % i: b"value-%d-" % i + rng.randbytes(rng.randrange(0, 40)).hex().encode()
            for i in range(N_KEYS)}


def build(kind: str, path: str) -> tuple[dict[bytes, bytes], bytes]:
    """Write the model into a fresh store of ``kind`` at ``path`` in three batches (so
    the store holds several records/transactions); returns (model, root)."""
    model = model_items()
    items = sorted(model.items())
    thirds = [items[i::3] for i in range(3)]
    if kind == "git":
        from prollytree.storage.git import GitNodeStore
        from prollytree.tree.codec import EMPTY_ROOT

        subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
        store = GitNodeStore(path)
        tree = ProllyTree.from_root(EMPTY_ROOT, store)
        for part in thirds:
            tree.insert_batch(part)
            tree.flush()
            store.flush()                       # one pack per batch
        root = tree.get_root_hash()
        store.set_ref("root", root)             # a loose blob and a ref file too
        store.close()
        return model, root
    tree = ProllyTree(kind, path)
    for part in thirds:
        tree.insert_batch(part)
        tree.flush()
    root = tree.get_root_hash()
    tree.close()
    return model, root


#: In a Git repository, the files the node store reads (not hooks, descriptions...).
GIT_STORE_PARTS = ("objects", "refs", "prollytree", "HEAD", "packed-refs", "config")


def store_files(path: str) -> list[str]:
    out = []
    git = os.path.join(path, ".git")
    for d, _, names in os.walk(path):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isdir(git) and not os.path.relpath(p, git).startswith(GIT_STORE_PARTS):
                continue
            if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 0:
                out.append(p)
    return sorted(out)


def damage(path: str, rng: random.Random, index: int) -> str:
    """Damage one file of the store at ``path`` (the ``index``-th, cyclically, so every
    file gets its turn); returns a description."""
    files = store_files(path)
    f = files[index % len(files)]
    size = os.path.getsize(f)
    os.chmod(f, 0o644)                           # git packs are read-only
    rel = os.path.relpath(f, path)
    if rng.random() < 0.1 and size > 1:
        cut = rng.randrange(0, size)
        os.truncate(f, cut)
        return f"{rel}: truncated {size} -> {cut}"
    with open(f, "r+b") as fh:
        flips = []
        for _ in range(rng.randint(1, 3)):
            off = rng.randrange(size)
            fh.seek(off)
            b = fh.read(1)[0]
            bit = 1 << rng.randrange(8)
            fh.seek(off)
            fh.write(bytes([b ^ bit]))
            flips.append(off)
    return f"{rel}: flipped bits at {flips} of {size}"


def probe(kind: str, path: str, model: dict[bytes, bytes], root: bytes) -> dict:
    """Read everything back from a damaged store; runs in the forked child."""
    out = {"wrong": 0, "reported": 0, "undocumented": [], "verify": None, "opened": False}

    def undocumented(where: str, e: BaseException) -> None:
        out["undocumented"].append(f"{where}: {type(e).__name__}: {e}"[:300] + " | "
                                   + traceback.format_exc().splitlines()[-3][:200])

    store = None
    try:
        if kind == "git":
            from prollytree.storage.git import GitNodeStore
            store = GitNodeStore(path)
            if store.get_ref("root") != root:
                raise AssertionError("root ref changed")
            tree = ProllyTree.from_root(root, store)
        else:
            tree = ProllyTree(kind, path)
        out["opened"] = True
    except ProllyError:
        out["reported"] += 1
        return out
    except AssertionError:
        out["wrong"] += 1
        return out
    except Exception as e:   # noqa: BLE001 - classifying is the point
        undocumented("open", e)
        return out
    for k, v in model.items():
        try:
            got = tree.find(k)
        except ProllyError:
            out["reported"] += 1
            continue
        except Exception as e:  # noqa: BLE001
            undocumented("find", e)
            continue
        if got != v:
            out["wrong"] += 1
    try:
        listed = dict(tree.items())
        if listed != model:
            out["wrong"] += 1
    except ProllyError:
        out["reported"] += 1
    except Exception as e:  # noqa: BLE001
        undocumented("items", e)
    try:
        report = tree.verify()
        out["verify"] = {"ok": report["ok"], "missing": len(report["missing"]),
                         "damaged": len(report["damaged"])}
    except Exception as e:  # noqa: BLE001 - verify must return, whatever the damage
        undocumented("verify", e)
    check = getattr(tree.store, "check", None)
    if check is not None:
        try:
            problems = check()
            out["check_problems"] = len(problems)
        except Exception as e:  # noqa: BLE001
            undocumented("store.check", e)
    try:
        tree.close()
        if store is not None:
            store.close()
    except ProllyError:
        pass
    except Exception as e:  # noqa: BLE001
        undocumented("close", e)
    return out


def run_trial(kind: str, template: str, work: str, model: dict, root: bytes,
              rng: random.Random, index: int) -> dict:
    """Copy the template, damage it, probe it in a forked child. Returns the outcome."""
    if os.path.exists(work):
        shutil.rmtree(work)
    shutil.copytree(template, work, symlinks=True)
    what = damage(work, rng, index)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # child
        os.close(r)
        code = 0
        try:
            res = probe(kind, work, model, root)
            os.write(w, json.dumps(res).encode())
        except BaseException:                     # noqa: BLE001
            os.write(w, json.dumps({"harness": traceback.format_exc()}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        c = os.read(r, 1 << 16)
        if not c:
            break
        chunks.append(c)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        res = {"crash": signal.Signals(os.WTERMSIG(status)).name}
    else:
        res = json.loads(b"".join(chunks) or b"{}")
    res["damage"] = what
    return res


def failed(res: dict) -> bool:
    return bool(res.get("crash") or res.get("harness") or res.get("wrong")
                or res.get("undocumented"))


def campaign(kind: str, base: str, trials: int, seed: int) -> tuple[Counter, list[dict]]:
    """Run ``trials`` damage trials on ``kind``; returns (tally, failing outcomes).

    Runs in a fresh interpreter: the trials fork, and a process forked from one in which
    RocksDB ever ran (its background threads survive closing the database) can hang.
    """
    root_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-m", "tests.reliability.damage", "--campaign",
                          kind, str(trials), str(seed), base],
                         cwd=root_dir, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return Counter(res["tally"]), res["failures"]


def _campaign_here(kind: str, base: str, trials: int, seed: int) -> tuple[Counter, list]:
    template = os.path.join(base, f"{kind}-template")
    if not os.path.exists(template):
        # Built in a child for the same reason: this process must never run RocksDB.
        code = ("import json, sys\nfrom tests.reliability.damage import build\n"
                "model, root = build(sys.argv[1], sys.argv[2])\n"
                "json.dump({'root': root.hex()}, open(sys.argv[2] + '.meta', 'w'))\n")
        subprocess.run([sys.executable, "-c", code, kind, template], check=True)
    model = model_items()
    with open(template + ".meta") as f:
        root = bytes.fromhex(json.load(f)["root"])
    rng = random.Random(seed)
    tally: Counter = Counter()
    failures = []
    for i in range(trials):
        res = run_trial(kind, template, os.path.join(base, f"{kind}-trial"), model, root,
                        rng, i)
        tally["trials"] += 1
        if failed(res):
            tally["failed"] += 1
            failures.append(res)
        elif res.get("reported") or (res.get("verify") and not res["verify"]["ok"]):
            tally["damage reported"] += 1
        else:
            tally["no visible effect"] += 1
    return tally, failures


def main() -> None:  # pragma: no cover - the figures for the docs
    import tempfile

    if sys.argv[1:2] == ["--campaign"]:
        kind, trials, seed, base = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        tally, failures = _campaign_here(kind, base, trials, seed)
        print(json.dumps({"tally": tally, "failures": failures}))
        return
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    kinds = sys.argv[3].split(",") if len(sys.argv) > 3 else KINDS
    with tempfile.TemporaryDirectory() as base:
        for kind in kinds:
            tally, failures = campaign(kind, base, trials, seed)
            print(kind, dict(tally), flush=True)
            for f in failures[:10]:
                print("   ", f)


if __name__ == "__main__":  # pragma: no cover
    main()
