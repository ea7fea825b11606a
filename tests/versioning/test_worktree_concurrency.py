"""Several processes, each in its own worktree, committing at the same time; then all
merged into main. And worktree locks across processes."""

import os
import subprocess
import sys
import textwrap

import pytest

from prollytree import VersionedKvStore, WorktreeLockedError, WorktreeManager

from .conftest import git

WORKER = textwrap.dedent("""
    import sys
    from prollytree import WorktreeManager, WorktreeVersionedKvStore
    repo, wid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = WorktreeManager(repo)
    e = m.get_worktree(wid)
    w = WorktreeVersionedKvStore.from_worktree(e["path"], wid, e["branch"], m)
    print("ready", flush=True)
    sys.stdin.readline()                       # start together
    for i in range(n):
        w.insert(b"%s:%04d" % (wid.encode(), i), b"v%d" % i)
        w.insert(b"shared:%s" % wid.encode(), b"%d" % i)
        if i % 5 == 4:                         # delete one of our own earlier keys
            w.delete(b"%s:%04d" % (wid.encode(), i - 2))
        print(w.commit("%s commit %d" % (wid, i)), flush=True)
    w.close()
""")


def model(wid: str, n: int) -> dict:
    out = {}
    for i in range(n):
        out[b"%s:%04d" % (wid.encode(), i)] = b"v%d" % i
        out[b"shared:%s" % wid.encode()] = b"%d" % i
        if i % 5 == 4:
            out.pop(b"%s:%04d" % (wid.encode(), i - 2))
    return out


def run_agents(tmp_path, workers: int, commits: int) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    s = VersionedKvStore(str(repo / "data"))
    s.insert(b"base", b"0")
    s.commit("base")
    s.close()
    m = WorktreeManager(str(repo))
    ids = []
    for i in range(workers):
        ids.append(m.add_worktree(str(tmp_path / f"agent{i}"), f"agent{i}", True)["id"])
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(repo), wid, str(commits)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for wid in ids]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:                            # all start at once
        p.stdin.write("go\n")
        p.stdin.flush()
    made = {}
    for wid, p in zip(ids, procs):
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
        made[wid] = out.split()
        assert len(made[wid]) == commits
    expect = {b"base": b"0"}
    for i, wid in enumerate(ids):
        assert m.get_branch_commit(f"agent{i}") == made[wid][-1]
        m.merge_to_main(wid, f"Merge {wid}")
        expect.update(model(wid, commits))
    main = VersionedKvStore(str(repo / "data"))
    assert dict(main.get_keys_at_ref("main")) == expect
    assert dict(main.iter_items()) == expect
    # no commit lost: every commit each agent made is in main's history
    history = set(git(repo, "rev-list", "main").stdout.split())
    for cids in made.values():
        assert set(cids) <= history
    log = main.log()
    assert len(log) == 2 + workers * commits + (workers - 1)    # init, base, work, merges
    main.close()
    assert git(repo, "fsck", "--strict").returncode == 0
    assert git(repo, "status", "--porcelain").stdout == ""
    listed = git(repo, "worktree", "list", "--porcelain").stdout
    assert listed.count("worktree ") == workers + 1 and "prunable" not in listed
    for i in range(workers):
        assert git(tmp_path / f"agent{i}", "status", "--porcelain").stdout == ""


def test_four_agents_200_commits_each(tmp_path):
    # the numbers; about 9 s on a loaded 2-core machine
    run_agents(tmp_path, 4, 200)


@pytest.mark.slow
def test_four_agents_1000_commits_each(tmp_path):
    run_agents(tmp_path, 4, 1000)


LOCKER = textwrap.dedent("""
    import sys
    from prollytree import WorktreeLockedError, WorktreeManager, WorktreeVersionedKvStore
    repo, wid, what = sys.argv[1], sys.argv[2], sys.argv[3]
    m = WorktreeManager(repo)
    e = m.get_worktree(wid)
    w = WorktreeVersionedKvStore.from_worktree(e["path"], wid, e["branch"], m)
    if what == "race":
        sys.stdin.readline()
        try:
            w.lock("race")
            print("won", flush=True)
        except WorktreeLockedError:
            print("lost", flush=True)
    elif what == "hold":
        w.lock("held by a process")
        w.insert(b"holder", b"1")
        w.commit("holder writes")
        print("locked", flush=True)
        sys.stdin.readline()                   # keep holding until told
        w.insert(b"holder2", b"1")
        w.commit("holder writes again")
        w.unlock()
        print("unlocked", flush=True)
    elif what == "add":                        # a worktree made by another process
        made = m.add_worktree(sys.argv[4], "from-process", True)["id"]
        m.lock_worktree(made, "locked by its maker")
        print(made, flush=True)
    elif what == "write":
        try:
            w.insert(b"intruder", b"1")
            print("wrote", flush=True)
        except WorktreeLockedError as e:
            print("refused", e.worktree_id, flush=True)
""")


def _spawn(repo, wid, what, *extra):
    return subprocess.Popen([sys.executable, "-c", LOCKER, str(repo), wid, what, *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_locks_across_processes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    s = VersionedKvStore(str(repo / "data"))
    s.close()
    m = WorktreeManager(str(repo))
    m.add_worktree(str(tmp_path / "w"), "w", True)
    # a process holds the lock: other processes cannot write, this one sees it locked
    holder = _spawn(repo, "w", "hold")
    assert holder.stdout.readline().strip() == "locked"
    assert m.is_locked("w") and m.lock_state("w")[1] == "held by a process"
    intruder = _spawn(repo, "w", "write")
    out, err = intruder.communicate(timeout=60)
    assert out.split() == ["refused", "w"], err
    holder.stdin.write("go\n")
    holder.stdin.flush()
    out, err = holder.communicate(timeout=60)
    assert out.split() == ["unlocked"], err
    assert not m.is_locked("w")
    assert m.get_branch_commit("w") == VersionedKvStore(
        os.path.join(str(tmp_path / "w"), "data")).resolve_ref("w")
    intruder = _spawn(repo, "w", "write")
    assert intruder.communicate(timeout=60)[0].split() == ["wrote"]
    # several processes lock at once: exactly one wins
    racers = [_spawn(repo, "w", "race") for _ in range(4)]
    for p in racers:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert results == ["lost", "lost", "lost", "won"]
    assert m.is_locked("w")
    # a worktree another process made and locked: this process's manager sees both
    maker = _spawn(repo, "w", "add", str(tmp_path / "made-elsewhere"))
    out, err = maker.communicate(timeout=60)
    assert out.split() == ["made-elsewhere"] and maker.returncode == 0, err
    entry = m.get_worktree("made-elsewhere")
    assert entry["branch"] == "from-process" and entry["locked"]
    assert m.lock_state("made-elsewhere") == (True, "locked by its maker", None)
    ids = [e["id"] for e in m.list_worktrees()]
    assert ids[0] == "main" and sorted(ids[1:]) == ["made-elsewhere", "w"]
    with pytest.raises(WorktreeLockedError):
        m.remove_worktree("made-elsewhere")
