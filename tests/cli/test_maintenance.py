"""stats, list --graph, proof / verify-proof, fsck, gc."""

from __future__ import annotations

import json
import os

from .conftest import Runner


def _load(ds: Runner, tmp_path, n: int, name: str = "k.jsonl", value: str = "v" * 40) -> None:
    path = tmp_path / name
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"key": f"k{i:05d}", "value": f"{value}{i}"}) + "\n")
    ds.ok("import", str(path), "-m", f"load {n}")


def test_stats_graph_and_proofs(ds: Runner, tmp_path, repo):
    _load(ds, tmp_path, 3000)
    st = ds.ok("stats", "--json").json()
    assert st["keys"] == 3000 and st["depth"] >= 2
    assert st["nodes"] == st["leaves"] + st["internal_nodes"] > 10
    assert 20 < st["avg_entries_per_node"] < 200
    assert st["bytes"] > 3000 * 40 and st["backend"] == "Git"
    assert len(st["root"]) == 64 and len(st["commit"]) == 40
    text = ds.ok("stats").lines
    assert "Keys\t3000" in text and f"Depth\t{st['depth']}" in text
    assert any(line.startswith("Average node size (entries)\t") for line in text)
    # stats at an older ref
    assert ds.ok("stats", "HEAD~1", "--json").json()["keys"] == 0
    ds.fails(2, "stats", "nope")

    graph = ds.ok("list", "--graph").lines
    assert graph[0] == f"commit {st['commit']}  root {st['root']}"
    assert graph[1].startswith(st["root"][:12] + f" level {st['depth'] - 1}, ")
    assert sum(" leaf, " in line for line in graph) == st["leaves"]
    assert any(line.startswith("├── ") for line in graph)
    gj = ds.ok("list", "--graph", "--json").json()
    assert gj["tree"]["pairs"] == 3000 and gj["tree"]["first_key"] == "k00000"

    # proofs: present, absent, and checks that must fail
    proof = ds.ok("proof", "k01234")
    doc = proof.json()
    assert doc["format"] == "prollytree-proof" and doc["present"] is True
    assert doc["value"] == "v" * 40 + "1234" and doc["root"] == st["root"]
    (tmp_path / "p.json").write_bytes(proof.out)
    ok = ds.ok("verify-proof", str(tmp_path / "p.json"))
    assert ok.stdout.startswith("OK: proof verifies: k01234 = ")
    # anyone with the root hash can check it, outside any dataset
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ds.ok("verify-proof", str(tmp_path / "p.json"), "--root", st["root"], cwd=elsewhere)
    r = ds.fails(1, "verify-proof", str(tmp_path / "p.json"), "--root", st["root"],
                 "--value", "forged", cwd=elsewhere)
    assert "does not verify" in r.stderr
    r = ds.fails(1, "verify-proof", str(tmp_path / "p.json"), "--root", st["root"],
                 "--key", "k01235", cwd=elsewhere)
    r = ds.fails(1, "verify-proof", str(tmp_path / "p.json"), "--root", "00" * 32,
                 cwd=elsewhere)
    ds.fails(2, "verify-proof", str(tmp_path / "p.json"), "--root", "xyz", cwd=elsewhere)
    ds.fails(2, "verify-proof", str(tmp_path / "p.json"), cwd=elsewhere)   # no root known
    # a tampered proof: claim another value for the same key
    forged = dict(doc, value="v" * 40 + "9999")
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    r = ds.fails(1, "verify-proof", str(tmp_path / "forged.json"), "--json")
    assert r.json()["valid"] is False
    (tmp_path / "junk.json").write_text("{not json")
    ds.fails(2, "verify-proof", str(tmp_path / "junk.json"))
    # absence proofs, piped from proof to verify-proof
    absent = ds.ok("proof", "k99999x")
    assert absent.json()["present"] is False and absent.json()["value"] is None
    v = ds.ok("verify-proof", "--json", input=absent.out).json()
    assert v["valid"] is True and v["present"] is False
    # a proof at an older commit verifies against that commit's root only
    ds.ok("set", "k01234", "changed")
    ds.ok("commit", "-m", "change")
    ds.ok("proof", "k01234", "--ref", "HEAD~1", "-o", str(tmp_path / "old.json"))
    ds.ok("verify-proof", str(tmp_path / "old.json"), "--ref", "HEAD~1")
    ds.fails(1, "verify-proof", str(tmp_path / "old.json"), "--ref", "HEAD")
    assert os.path.exists(tmp_path / "old.json")


def test_fsck_and_gc_on_git(ds: Runner, gp: Runner, tmp_path, repo):
    pack_dir = repo / ".git" / "objects" / "pack"
    packs = set(os.listdir(pack_dir))
    _load(ds, tmp_path, 400)
    one_pack = {p for p in os.listdir(pack_dir) if p.endswith(".pack")} - packs
    ds.ok("set", "k00200", "changed")
    ds.ok("commit", "-m", "two")
    r = ds.ok("fsck")
    assert r.lines[-1] == "no damage found"
    assert ds.ok("fsck", "--json").json()["ok"] is True
    g = ds.ok("gc", "--json").json()
    assert g["managed_by_git"] and g["removed"] == 0 and g["unreachable_nodes"] == 0
    gp.git("fsck", "--strict")
    # a `git clone` carries everything: fsck passes in the clone
    gp.git("clone", "-q", str(repo), str(tmp_path / "clone"), cwd=tmp_path)
    clone = Runner(tmp_path / "clone" / "data", ds.env)
    assert clone.ok("fsck", "--json").json()["ok"] is True
    assert clone.ok("get", "k00200").stdout == "changed\n"

    # lose the pack of commit "load 400": fsck reports the damage (exit 1)
    assert len(one_pack) == 1
    (p,) = one_pack
    os.unlink(pack_dir / p)
    os.unlink(pack_dir / (p[:-5] + ".idx"))
    r = ds("fsck")
    assert r.code == 1 and r.stderr.startswith("error: ") and "problem(s) found" in r.stderr
    kinds = {line.split("\t")[0] for line in r.lines[1:]}
    assert kinds == {"missing-commit", "missing-node"}
    rep = ds("fsck", "--json").json()
    assert rep["ok"] is False and any(x["kind"] == "missing-node" for x in rep["problems"])
    # reading a lost value is an error with a one-line cause, not a traceback
    r = ds.fails(2, "get", "k00001")
    assert "missing" in r.stderr


def test_fsck_and_gc_on_file_backend(gp: Runner, tmp_path):
    r = gp.ok("init", "--storage", "file", str(tmp_path / "fds"))
    assert "(File backend, branch main)" in r.stdout
    again = gp.ok("init", str(tmp_path / "fds"))         # the backend is detected
    assert again.stdout.startswith("Reinitialized") and "(File backend" in again.stdout
    gp.fails(2, "init", "--storage", "git", str(tmp_path / "fds"))
    fds = Runner(tmp_path / "fds", gp.env)
    fds.ok("set", "a", "DAMAGEME-old")
    fds.ok("set", "b", "b")
    fds.ok("commit", "-m", "one")
    fds.ok("set", "a", "new")
    fds.ok("commit", "-m", "two")
    fds.ok("checkout", "-b", "side")
    fds.ok("set", "c", "side only")
    fds.ok("commit", "-m", "side")
    fds.ok("checkout", "main")
    g = fds.ok("gc", "--dry-run", "--json").json()
    assert g["unreachable_nodes"] == 0 and g["unreachable_commits"] == 0
    fds.ok("branch", "-D", "side")
    # the side commit's leaf and its root set record
    assert fds.ok("gc", "--dry-run").lines[-1] == "would remove 2 node(s) and 1 commit(s)"
    assert fds.ok("gc").lines[-1] == "removed 2 node(s) and 1 commit(s)"
    assert fds.ok("gc").lines[-1] == "removed 0 node(s) and 0 commit(s)"
    assert fds.ok("fsck", "--json").json()["ok"] is True
    assert fds.ok("get", "a", "--ref", "HEAD~1").stdout == "DAMAGEME-old\n"

    # damage an old commit's node: fsck names it, the current data still reads
    log = tmp_path / "fds" / "nodes" / "nodes.log"
    data = bytearray(log.read_bytes())
    i = data.index(b"DAMAGEME")
    data[i] ^= 0x20
    log.write_bytes(bytes(data))
    r = fds("fsck")
    assert r.code == 1 and "1 problem(s) found" in r.stderr
    assert r.lines[1].startswith("unreadable-node\t") or r.lines[1].startswith("damaged-node\t")
    assert fds.ok("get", "a").stdout == "new\n"
    fds.fails(2, "get", "a", "--ref", "HEAD~1")

    # damage the current commit's root: the dataset cannot open, fsck still reports it
    fds.ok("set", "z", "DAMAGEME-now")
    fds.ok("commit", "-m", "three")
    data = bytearray(log.read_bytes())
    i = data.rindex(b"DAMAGEME-now")
    data[i] ^= 0x20
    log.write_bytes(bytes(data))
    r = fds("fsck", "--json")
    assert r.code == 1 and r.json()["problems"][0]["reached_from"] == "HEAD"
    fds.fails(2, "list")


def test_node_pruned_by_git_gc_comes_back(ds: Runner, gp: Runner, tmp_path, repo):
    """The reported data loss, through the command line: a value only a deleted branch
    had, pruned by git gc, set again on main: the new commit carries its node."""
    ds.ok("set", "a", "1")
    ds.ok("commit", "-m", "1")
    ds.ok("checkout", "-b", "side")
    ds.ok("set", "b", "unique")
    ds.ok("commit", "-m", "2")
    ds.ok("checkout", "main")
    ds.ok("branch", "-D", "side")
    gp.git("reflog", "expire", "--expire=now", "--all")
    gp.git("gc", "--prune=now", "-q")
    g = ds.ok("gc", "--dry-run", "--json").json()
    assert g["managed_by_git"] and g["map_entries_dropped"] >= 1
    r = ds.ok("gc")
    assert r.lines[-1].startswith("dropped ") and "git gc deleted" in r.lines[-1]
    ds.ok("set", "b", "unique")
    ds.ok("commit", "-m", "3")
    gp.git("fsck", "--strict")
    assert ds.ok("fsck", "--json").json()["ok"] is True
    assert gp.git("status", "--porcelain") == ""
    gp.git("clone", "-q", str(repo), str(tmp_path / "clone"), cwd=tmp_path)
    clone = Runner(tmp_path / "clone" / "data", ds.env)
    assert clone.ok("list", "--values").lines == ["a\t1", "b\tunique"]
