"""git-prolly ns and git-prolly worktree: output, exit codes, and what Git and the
library see afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import Runner


def test_ns_commands(ds: Runner):
    ds.ok("ns", "set", "users", "alice", "Alice")
    ds.ok("ns", "set", "users", "bob", input=b"Bob")
    ds.ok("set", "flat", "1")
    r = ds.ok("commit", "-m", "namespaces")
    assert r.lines[1] == " 3 added, 0 modified, 0 deleted"
    assert ds.ok("ns", "list").lines == ["default", "users"]
    assert ds.ok("ns", "list", "users").lines == ["alice", "bob"]
    assert ds.ok("--color", "never", "ns", "list", "users", "--values").lines == \
        ["alice\tAlice", "bob\tBob"]
    assert ds.ok("ns", "list", "default").lines == ["flat"]
    assert ds.ok("ns", "get", "users", "alice").stdout == "Alice\n"
    assert ds.ok("ns", "get", "users", "bob", "--json").json() == \
        {"namespace": "users", "key": "bob", "value": "Bob"}
    assert ds.fails(1, "ns", "get", "users", "carol").stderr == \
        "error: key not found in namespace 'users': carol\n"
    assert ds.fails(1, "ns", "get", "ghost", "k")
    assert ds.fails(1, "ns", "list", "ghost").stderr == "error: no namespace 'ghost'\n"
    assert ds.fails(1, "ns", "list", "users", "--ref", "HEAD~1").stderr == \
        "error: no namespace 'users' at HEAD~1\n"
    assert ds.ok("ns", "list").lines == ["default", "users"]     # a read creates nothing
    ds.fails(1, "ns", "delete", "users", "alice", "nobody")
    assert ds.ok("ns", "get", "users", "alice").stdout == "Alice\n"   # nothing deleted
    ds.ok("ns", "delete", "users", "alice")
    ds.ok("commit", "-m", "delete alice")
    assert ds.ok("ns", "get", "users", "alice", "--ref", "HEAD~1").stdout == "Alice\n"
    ds.fails(2, "ns", "drop", "default")
    ds.fails(1, "ns", "drop", "ghost")
    ds.fails(2, "ns", "set", "bad name", "k", "v")
    ds.ok("ns", "drop", "users")
    assert ds.ok("ns", "list").lines == ["default"]
    # users holds bob only (alice was deleted): dropping it deletes one key
    assert ds.ok("commit", "-m", "drop users", "--json").json()["changes"]["deleted"] == 1
    assert ds.ok("ns", "list", "--ref", "HEAD~1", "--json").json() == ["default", "users"]
    assert ds.ok("ns", "list", "--json").json() == ["default"]
    assert ds.git("status", "--porcelain") == ""
    # the library agrees
    from prollytree import NamespacedKvStore
    s = NamespacedKvStore.open(str(ds.cwd))
    assert s.list_namespaces() == ["default"] and s.get(b"flat") == b"1"
    assert s.ns_get("users", b"bob") is None
    s.close()


def test_worktree_commands(ds: Runner, repo: Path, tmp_path: Path):
    ds.ok("set", "base", "0")
    ds.ok("commit", "-m", "base")
    wt = tmp_path / "agent1"
    r = ds.ok("worktree", "add", str(wt), "-b", "agent1")
    assert r.stdout == f"Created worktree agent1 at {os.path.realpath(wt)} on branch agent1\n"
    assert "agent1" in ds.git("worktree", "list")
    ds.fails(2, "worktree", "add", str(tmp_path / "x"), "agent1")   # checked out already
    ds.fails(2, "worktree", "add", str(tmp_path / "x"))             # usage
    agent = Runner(wt / "data", ds.env)
    agent.ok("set", "k", "from agent")
    agent.ok("commit", "-m", "agent work")
    assert ds.fails(1, "get", "k")                     # main's working copy is its own
    rows = ds.ok("worktree", "list", "--json").json()
    assert [(w["id"], w["branch"], w["locked"]) for w in rows] == \
        [("main", "main", False), ("agent1", "agent1", False)]
    ds.ok("worktree", "lock", "agent1", "--reason", "agent running")
    assert "locked agent running" in ds.git("worktree", "list", "--porcelain")
    assert ds.fails(2, "worktree", "remove", "agent1").stderr.startswith(
        "error: worktree 'agent1' is locked (agent running)")
    ds.ok("worktree", "unlock", "agent1")
    ds.fails(1, "worktree", "unlock", "agent1")
    ds.ok("set", "base", "main changed")
    ds.ok("commit", "-m", "main moves")
    r = ds.ok("worktree", "merge", "agent1", "-m", "Merge agent1")
    assert r.stdout.startswith("Merged agent1 into main: ")
    assert ds.ok("get", "k").stdout == "from agent\n"
    assert ds.git("log", "-1", "--format=%s%n%P").split("\n")[0] == "Merge agent1"
    assert len(ds.git("log", "-1", "--format=%P").split()) == 2
    # conflicts: exit 1, nothing changed; --strategy settles them
    agent.ok("set", "base", "agent says")
    agent.ok("commit", "-m", "agent base")
    ds.ok("set", "base", "main says")
    ds.ok("commit", "-m", "main base")
    head = ds.git("rev-parse", "HEAD")
    r = ds.fails(1, "worktree", "merge", "agent1")
    assert r.stdout == "conflict: base\n"
    assert ds.git("rev-parse", "HEAD") == head
    j = ds("worktree", "merge", "agent1", "--json")
    assert j.code == 1 and j.json() == {"result": "conflicts",
                                        "conflicts": [{"tree": "", "key": "base"}]}
    ds.ok("worktree", "merge", "agent1", "--strategy", "take-source")
    assert ds.ok("get", "base").stdout == "agent says\n"
    assert ds.git("log", "-1", "--format=%s") == "Merge worktree agent1 (agent1) into main\n"
    assert ds.git("status", "--porcelain") == ""
    ds.fails(2, "worktree", "remove", "main")
    ds.ok("worktree", "remove", "agent1")
    assert not wt.exists() and "agent1" not in ds.git("worktree", "list")
    assert json.loads(ds.ok("worktree", "list", "--json").stdout)[0]["id"] == "main"
    ds.git("fsck", "--strict")
