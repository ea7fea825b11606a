"""branch, checkout, diff, merge, revert, history: output, exit codes, Git history."""

from __future__ import annotations

from .conftest import Runner


def _setup_branches(ds: Runner) -> None:
    """main: base commit, then feature and main both change user:alice."""
    ds.ok("set", "user:alice", "Alice")
    ds.ok("set", "user:bob", "Bob")
    ds.ok("set", "cfg:timeout", "30")
    ds.ok("commit", "-m", "base")
    assert ds.ok("branch", "feature").stdout.startswith("Created branch feature at ")
    assert ds.ok("checkout", "feature").stdout.startswith("Switched to branch 'feature'")
    ds.ok("set", "user:alice", "Alice F")
    ds.ok("set", "user:carol", "Carol")
    ds.ok("delete", "user:bob")
    ds.ok("set", "cfg:retries", "3")
    ds.ok("commit", "-m", "feature work")
    ds.ok("checkout", "main")
    ds.ok("set", "user:alice", "Alice M")
    ds.ok("set", "cfg:timeout", "60")
    ds.ok("commit", "-m", "main work")


def test_branch_checkout_diff(ds: Runner):
    _setup_branches(ds)
    assert ds.ok("branch").lines == ["  feature", "* main"]
    bj = ds.ok("branch", "--json").json()
    assert [(b["name"], b["current"]) for b in bj] == [("feature", False), ("main", True)]

    compact = ds.ok("diff", "main", "feature").lines
    assert compact == ["+ cfg:retries = 3", "~ cfg:timeout: 60 -> 30",
                       "~ user:alice: Alice M -> Alice F", "- user:bob = Bob",
                       "+ user:carol = Carol"]
    # the pattern filters, for every format
    assert ds.ok("diff", "main", "feature", "--keys", "user:*").lines == compact[2:]
    assert ds.ok("diff", "main", "feature", "--keys", "cfg:r*",
                 "--keys", "user:c?rol").lines == [compact[0], compact[4]]
    detailed = ds.ok("diff", "main", "feature", "--format", "detailed", "--keys", "cfg:*")
    assert detailed.lines == ["added\tcfg:retries\t(absent)\t3",
                              "modified\tcfg:timeout\t60\t30"]
    js = ds.ok("diff", "main", "feature", "--format", "json", "--keys", "user:b*").json()
    assert js == [{"key": "user:bob", "change": "deleted", "old": "Bob", "new": None}]
    assert ds.ok("diff", "main", "feature", "--keys", "nomatch*").out == b""
    assert ds.ok("diff", "main", "main").out == b""
    ds.fails(2, "diff", "main", "nope")
    ds.fails(2, "diff", "main", "feature", "--format", "yaml")

    # checkout of a commit: detached and read-only; staged changes guard checkouts
    base = ds.ok("log", "--json").json()[1]["id"]
    r = ds.ok("checkout", base[:8])
    assert r.stdout == f"HEAD is now at {base[:12]} (detached, read-only)\n"
    assert ds.ok("get", "user:alice").stdout == "Alice\n"
    assert ds.ok("status").lines[0].startswith(f"HEAD detached at {base[:12]}")
    r = ds.fails(2, "set", "x", "1")
    assert "detached" in r.stderr
    assert ds.ok("branch").lines[0] == f"* (HEAD detached at {base[:12]})"
    ds.ok("checkout", "main")
    ds.ok("set", "staged", "1")
    r = ds.fails(2, "checkout", "feature")
    assert "staged change" in r.stderr
    ds.ok("checkout", "feature", "--carry")
    assert ds.ok("get", "staged").stdout == "1\n"
    ds.ok("checkout", "main", "--discard")
    ds.fails(1, "get", "staged")

    # checkout -b: from the current commit or from a START ref
    r = ds.ok("checkout", "-b", "exp")
    assert r.stdout.startswith("Switched to a new branch 'exp' at ")
    ds.ok("checkout", "-b", "old", "main~1")
    assert ds.ok("get", "user:alice").stdout == "Alice\n"
    ds.fails(2, "checkout", "-b", "old")
    ds.fails(2, "checkout", "-b", "bad name")
    ds.ok("checkout", "main")
    assert ds.ok("branch", "-d", "exp").stdout.startswith("Deleted branch exp (was ")
    r = ds.fails(2, "branch", "-d", "main")
    assert "current branch" in r.stderr
    ds.fails(2, "branch", "-d", "nope")
    ds.fails(2, "branch", "feature")           # already exists
    assert ds.ok("branch").lines == ["  feature", "* main", "  old"]
    ds.fails(2, "checkout", "nosuchref")


def test_merge_conflicts_and_strategies(ds: Runner, gp: Runner):
    _setup_branches(ds)
    before = ds.ok("log", "--json", "-n", "1").json()[0]["id"]
    r = ds.fails(1, "merge", "feature")
    assert "1 conflict(s)" in r.stderr and "nothing was changed" in r.stderr
    assert r.lines == ["user:alice\tAlice\tAlice F\tAlice M"]       # the conflict table
    assert ds.ok("log", "--json", "-n", "1").json()[0]["id"] == before
    rich = ds("--color", "always", "merge", "feature")
    assert rich.code == 1 and "Source (feature)" in rich.stdout
    assert "Destination (main)" in rich.stdout
    js = ds("merge", "feature", "--json")
    assert js.code == 1 and js.json() == {
        "result": "conflicts",
        "conflicts": [{"key": "user:alice", "base": "Alice", "source": "Alice F",
                       "destination": "Alice M"}]}

    r = ds.ok("merge", "feature", "--strategy", "take-source")
    assert r.lines[0].startswith("Merged feature into main: ")
    assert r.lines[1] == "1 conflict(s) resolved with take-source"
    assert ds.ok("get", "user:alice").stdout == "Alice F\n"
    assert ds.ok("get", "cfg:timeout").stdout == "60\n"     # main's own change kept
    assert ds.ok("get", "user:carol").stdout == "Carol\n"   # feature's change merged
    ds.fails(1, "get", "user:bob")
    # a real two-parent merge commit in Git
    parents = gp.git("log", "-1", "--format=%P").split()
    assert len(parents) == 2
    assert gp.git("log", "-1", "--format=%s").strip() == "Merge branch 'feature' into main"
    gp.git("fsck", "--strict")
    assert gp.git("status", "--porcelain") == ""
    # merging again: nothing to do (no false conflicts after a real merge)
    assert ds.ok("merge", "feature").stdout == "Already up to date.\n"

    # take-destination / ignore-all keep our value; fast-forward
    ds.ok("checkout", "feature")
    ds.ok("set", "user:alice", "Alice F2")
    ds.ok("commit", "-m", "feature again")
    ds.ok("checkout", "main")
    ds.ok("set", "user:alice", "Alice M2")
    ds.ok("commit", "-m", "main again")
    r = ds.ok("merge", "feature", "--strategy", "take-destination", "--json").json()
    assert r["result"] == "merge" and r["resolved_conflicts"] == 1
    assert ds.ok("get", "user:alice").stdout == "Alice M2\n"
    ds.ok("checkout", "-b", "ff")
    ds.ok("set", "new", "1")
    ds.ok("commit", "-m", "ahead")
    ds.ok("checkout", "main")
    r = ds.ok("merge", "ff")
    assert r.stdout.startswith("Fast-forward ")
    assert ds.ok("get", "new").stdout == "1\n"
    ds.fails(2, "merge", "nosuchbranch")
    ds.fails(2, "merge", "feature", "--strategy", "random")


def test_revert_and_history(ds: Runner, gp: Runner):
    ds.ok("set", "a", "1")
    ds.ok("set", "b", "1")
    ds.ok("commit", "-m", "one")
    ds.ok("set", "a", "2")
    ds.ok("delete", "b")
    ds.ok("set", "c", "new")
    ds.ok("commit", "-m", "two")
    ds.ok("set", "d", "x")
    ds.ok("commit", "-m", "three")

    r = ds.ok("revert", "HEAD~1")
    assert r.lines[0].endswith('] Revert "two"')
    assert r.lines[1] == " 1 added, 1 modified, 1 deleted"
    assert ds.ok("list", "--values").lines == ["a\t1", "b\t1", "d\tx"]
    body = gp.git("log", "-1", "--format=%B")
    two = ds.ok("log", "--json").json()[2]["id"]
    assert f"This reverts commit {two}." in body
    # reverting again: its changes are already undone
    r = ds.fails(1, "revert", two)
    assert "already undone" in r.stderr

    # a conflict: the key changed again since
    ds.ok("set", "d", "y")
    ds.ok("commit", "-m", "four")
    three = ds.ok("log", "--json").json()[2]["id"]
    assert ds.ok("log", "--json").json()[2]["message"] == "three"
    r = ds.fails(1, "revert", three)
    assert "changed since" in r.stderr
    assert r.lines == ["d\t(absent)\tx\ty"]
    # staged changes block a revert; unknown ref is a usage error
    ds.ok("set", "z", "1")
    ds.fails(2, "revert", "HEAD")
    ds.ok("delete", "z")
    ds.fails(2, "revert", "nope")

    hist = ds.ok("history", "a").lines
    assert [h.split("\t")[2:5] for h in hist] == [
        ["modified", "1", 'Revert "two"'], ["modified", "2", "two"], ["added", "1", "one"]]
    hj = ds.ok("history", "d", "--json").json()
    assert [(h["change"], h["value"], h["message"]) for h in hj] == [
        ("modified", "y", "four"), ("added", "x", "three")]
    assert ds.ok("history", "b", "--limit", "1").lines[0].split("\t")[2] == "added"
    r = ds("history", "never")
    assert r.code == 0 and r.out == b"" and r.stderr == "no commit changed never\n"
    gp.git("fsck", "--strict")
