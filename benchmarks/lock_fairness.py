"""Bare flock against prollytree's fair (ticket-queued) flock: N processes take an
exclusive lock in a tight loop (hold 3 ms, release, ask again).

    python benchmarks/lock_fairness.py [processes=2] [turns=100]

Prints, per mode: turns, failed acquisitions (timeouts), the longest stretch of turns by
one process, the most turns others took while one process waited, the longest wait.
"""

import os
import pathlib
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "tests", "reliability"))
from test_fair_lock import longest_run, run_workers, turns_while_waiting  # noqa: E402

procs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
turns = int(sys.argv[2]) if len(sys.argv) > 2 else 100
for mode in ("unfair", "fair"):
    d = pathlib.Path(tempfile.mkdtemp())
    rows = run_workers(d, procs, turns, 0.003, mode)
    waits = sorted(float(r[2]) for r in rows)
    print(f"{mode:6} turns {len(rows)}, failed {sum(r[3] != '1' for r in rows)}, "
          f"longest run {longest_run(rows)}, most turns by others during one wait "
          f"{turns_while_waiting(rows)}, max wait {waits[-1]:.3f} s")
