"""Fair locking with real processes: arrival order, no starvation, dead waiters and
holders never block, one shared store object per process and directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from prollytree.errors import StoreLockedError
from prollytree.storage import open_store
from prollytree.storage.file import FileNodeStore
from prollytree.storage.locking import LOCK_FILE_NAME, QUEUE_SUFFIX, WriterLock

WORKER = r"""
import fcntl, os, sys, time
from prollytree.storage.locking import WriterLock, fair_flock_until, flock_until
directory, rounds, hold, log, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
print("READY", flush=True)
sys.stdin.readline()                       # start together
for i in range(rounds):
    t0 = time.monotonic()
    if mode == "writer":
        lock = WriterLock(directory, 10.0)
        lock.acquire()                     # StoreLockedError after 10 s would fail the run
        got = time.monotonic()
        os.write(out, f"{os.getpid()} {got:.6f} {got - t0:.6f}\n".encode())
        time.sleep(hold)
        lock.release()
    else:                                  # the raw flock helpers on one file
        fd = os.open(os.path.join(directory, "raw.lock"), os.O_RDWR | os.O_CREAT)
        ok = (fair_flock_until(fd, os.path.join(directory, "raw.lock"), fcntl.LOCK_EX, 10.0)
              if mode == "fair" else flock_until(fd, fcntl.LOCK_EX, 10.0))
        got = time.monotonic()
        os.write(out, f"{os.getpid()} {got:.6f} {got - t0:.6f} {int(ok)}\n".encode())
        time.sleep(hold)
        os.close(fd)
print("DONE", flush=True)
"""


def run_workers(tmp_path, n_procs: int, rounds: int, hold: float, mode: str):
    log = tmp_path / f"log-{mode}"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(rounds),
                               str(hold), str(log), mode],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(n_procs)]
    for p in procs:
        assert p.stdout.readline().strip() == "READY"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and "DONE" in out
    rows = [line.split() for line in log.read_text().splitlines()]
    rows.sort(key=lambda r: float(r[1]))
    return rows


def longest_run(rows) -> int:
    """The longest stretch of consecutive turns taken by one process."""
    best = cur = 0
    last = None
    for r in rows:
        cur = cur + 1 if r[0] == last else 1
        last = r[0]
        best = max(best, cur)
    return best


def test_two_processes_looping_on_the_writer_lock_interleave(tmp_path):
    rows = run_workers(tmp_path, 2, 40, 0.004, "writer")
    assert len(rows) == 80                                 # no StoreLockedError anywhere
    # Served in arrival order: while both want it, they alternate. Allow a stretch of 3
    # for the start and end (one finished while the other had not queued yet).
    assert longest_run(rows[5:-5]) <= 3, [r[0] for r in rows]
    assert max(float(r[2]) for r in rows) < 2.0


def test_three_processes_no_waiter_waits_more_than_a_few_turns(tmp_path):
    rows = run_workers(tmp_path, 3, 25, 0.004, "fair")
    assert len(rows) == 75 and all(r[3] == "1" for r in rows)
    pids = [r[0] for r in rows]
    # Between two turns of one process, each other process has at most 2 turns.
    middle = pids[6:-6]
    for i, p in enumerate(middle):
        try:
            j = middle.index(p, i + 1)
        except ValueError:
            continue
        between = middle[i + 1:j]
        assert all(between.count(q) <= 2 for q in set(between)), pids


def test_a_killed_waiter_does_not_block_the_queue(tmp_path):
    holder = WriterLock(str(tmp_path), 0)
    holder.acquire()
    code = (f"from prollytree.storage.locking import WriterLock\n"
            f"print('WAITING', flush=True)\n"
            f"WriterLock({str(tmp_path)!r}, 60).acquire()\n")
    waiter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert waiter.stdout.readline().strip() == "WAITING"
    queue = tmp_path / (LOCK_FILE_NAME + QUEUE_SUFFIX)
    deadline = time.monotonic() + 30
    while not (queue.exists() and any(n.endswith(".x") for n in os.listdir(queue))):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(waiter.pid, signal.SIGKILL)                  # dies holding a ticket
    waiter.wait()
    assert any(n.endswith(".x") for n in os.listdir(queue))   # the ticket is left behind
    holder.release()
    t0 = time.monotonic()
    again = WriterLock(str(tmp_path), 5)
    again.acquire()                                      # not blocked by the dead ticket
    assert time.monotonic() - t0 < 1
    again.release()
    assert not any(n.endswith(".x") for n in os.listdir(queue))  # and it was collected


def test_a_killed_holder_never_blocks(tmp_path):
    code = (f"import time\nfrom prollytree.storage import open_store\n"
            f"s = open_store('file', {str(tmp_path / 's')!r})\n"
            f"s.set_ref('r', b'v')\nprint('HOLDING', flush=True)\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "HOLDING"
    with pytest.raises(StoreLockedError, match="pid"):
        FileNodeStore(tmp_path / "s", lock_timeout=0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    t0 = time.monotonic()
    with FileNodeStore(tmp_path / "s", lock_timeout=5) as s:
        assert s.get_ref("r") == b"v"
    assert time.monotonic() - t0 < 1


def test_two_trees_on_one_path_in_one_process(tmp_path):
    """Issue 8: two ProllyTree("file", p) alive at once work, without waiting."""
    from prollytree import ProllyTree

    t0 = time.monotonic()
    a = ProllyTree("file", str(tmp_path / "t"))
    b = ProllyTree("file", str(tmp_path / "t"))
    assert time.monotonic() - t0 < 2
    a.insert(b"k1", b"v1")
    a.save() if hasattr(a, "save") else None
    b.insert(b"k2", b"v2")
    assert a.find(b"k1") == b"v1" and b.find(b"k2") == b"v2"
    a.close()
    b.close()


@pytest.mark.slow
def test_fairness_soak_writer_lock(tmp_path):
    rows = run_workers(tmp_path, 3, 400, 0.002, "writer")
    assert len(rows) == 1200
    assert longest_run(rows[10:-10]) <= 3
    waits = sorted(float(r[2]) for r in rows)
    print("writer lock, 3 procs x 400 turns: max wait %.3f s, p99 %.3f s, longest run %d"
          % (waits[-1], waits[int(len(waits) * 0.99)], longest_run(rows)))
