"""The fast pack reader (prollytree.git.pack.PackReader) against the git binary."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest

from prollytree.git.objects import git_raw_id
from prollytree.git.pack import PackReader, write_pack

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: str, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", repo, *args], input=data, check=True,
                          capture_output=True).stdout


def test_reads_what_git_reads_and_misses_what_it_lacks(tmp_path) -> None:
    repo = str(tmp_path)
    _git(repo, "init", "-q")
    rnd = random.Random(7)
    bodies = [b"", b"x", b"hello\n" * 50, rnd.randbytes(70000), rnd.randbytes(300)]
    objs = [(b"blob", git_raw_id(b"blob", b), b, lvl) for b, lvl in
            zip(bodies, [1, 0, 9, 0, 1])]
    pack_dir = os.path.join(repo, ".git", "objects", "pack")
    reader = PackReader(pack_dir)
    assert reader.get(objs[0][1]) is None          # nothing packed yet
    write_pack(pack_dir, objs[:3])
    write_pack(pack_dir, objs[3:])                  # a second pack, seen after a miss
    _git(repo, "fsck", "--strict")
    for kind, sha, body, _ in objs:
        assert reader.get(sha) == (3, body)
        assert _git(repo, "cat-file", "blob", sha.hex()) == body
    assert reader.get(git_raw_id(b"blob", b"absent")) is None
    reader.close()
    assert reader.get(objs[3][1]) == (3, bodies[3])  # reopened on use


def test_deltified_objects_are_left_to_the_general_reader(tmp_path) -> None:
    repo = str(tmp_path)
    _git(repo, "init", "-q")
    base = random.Random(1).randbytes(4000)
    ids = []
    for i in range(5):   # near-identical blobs: git gc stores them as deltas
        body = base[:1000] + b"%d" % i + base[1000:]
        ids.append((_git(repo, "hash-object", "-w", "--stdin", data=body).strip(), body))
    _git(repo, "gc", "-q", "--aggressive")
    reader = PackReader(os.path.join(repo, ".git", "objects", "pack"))
    whole = 0
    for hexid, body in ids:
        got = reader.get(bytes.fromhex(hexid.decode()))
        if got is not None:
            whole += 1
            assert got == (3, body)
    assert whole < len(ids)     # some were deltas, and those were not misread


def test_damaged_pack_is_an_error_not_wrong_bytes(tmp_path) -> None:
    repo = str(tmp_path)
    _git(repo, "init", "-q")
    body = b"some text that deflates " * 40
    sha = git_raw_id(b"blob", body)
    pack_dir = os.path.join(repo, ".git", "objects", "pack")
    base = write_pack(pack_dir, [(b"blob", sha, body, 6)])
    data = bytearray(open(base + ".pack", "rb").read())
    data[20] ^= 0xFF        # inside the deflated body
    os.chmod(base + ".pack", 0o644)
    with open(base + ".pack", "wb") as f:
        f.write(data)
    with pytest.raises(ValueError):
        PackReader(pack_dir).get(sha)


def test_parse_tree_matches_git_ls_tree(tmp_path) -> None:
    from prollytree.git.objects import parse_tree

    repo = str(tmp_path)
    _git(repo, "init", "-q")
    blob = _git(repo, "hash-object", "-w", "--stdin", data=b"x").strip().decode()
    sub = _git(repo, "mktree", data=f"100644 blob {blob}\tf\n".encode()).strip().decode()
    listing = (f"100644 blob {blob}\ta b\n040000 tree {sub}\tdir\n"
               f"100755 blob {blob}\texec\n")
    tree = _git(repo, "mktree", data=listing.encode()).strip().decode()
    body = _git(repo, "cat-file", "tree", tree)
    got = parse_tree(body)
    want = []
    for line in _git(repo, "ls-tree", tree).decode().splitlines():
        meta, name = line.split("\t")
        mode, _, sha = meta.split()
        want.append((name.encode(), int(mode, 8), bytes.fromhex(sha)))
    assert got == want
    with pytest.raises(ValueError):
        parse_tree(body[:-3])
