"""The per-dataset lock: ``flock`` on a lock file, exclusive for anything that moves a
ref (commit, merge, branch, checkout) and shared for appending to the staging journal.

A waiter polls for up to ``timeout`` seconds (``$PROLLYTREE_LOCK_TIMEOUT``, default 30)
and then gets :class:`~prollytree.errors.StoreLockedError` naming the holder's pid.
Waiters are served in arrival order (the ticket queue of
:func:`prollytree.storage.locking.fair_flock_until`; a shared request takes a free lock at
once unless an exclusive waiter is queued, and queues behind exclusive waiters only), so
two processes that stage and commit in a loop take turns. Locks
are re-entrant within one lock object; two store objects (in one process or two) exclude
each other, since ``flock`` locks belong to open file descriptions.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator

from ..errors import StoreLockedError
from ..storage.locking import fair_flock_until, lock_holder, resolve_lock_timeout

DEFAULT_TIMEOUT = 30.0


def lock_timeout() -> float:
    """The dataset lock's timeout: ``$PROLLYTREE_LOCK_TIMEOUT`` or 30 s."""
    return resolve_lock_timeout(None, DEFAULT_TIMEOUT)


class DatasetLock:
    """Shared/exclusive inter-process lock on ``path`` (None: a no-op lock for volatile
    stores)."""

    def __init__(self, path: str | None, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = lock_timeout() if timeout is None else timeout
        self._fd: int | None = None
        self._mode = 0      # 0 none, 1 shared, 2 exclusive
        self._depth = 0

    def _acquire(self, op: int) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        # Shared waiters queue too: a journal append polling with plain flock keeps
        # missing the short windows between another process's commits and starves.
        got = fair_flock_until(self._fd, self.path, op, self.timeout)
        if not got:
            pid = lock_holder(self.path)
            holder = f" (last exclusive holder: pid {pid})" if pid else ""
            raise StoreLockedError(
                f"dataset is locked by another writer{holder}; gave up after "
                f"{self.timeout:g} s (set $PROLLYTREE_LOCK_TIMEOUT to wait longer)")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if self.path is None or self._mode == 2:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        prev = self._mode
        self._acquire(fcntl.LOCK_EX)
        self._mode = 2
        try:
            os.pwrite(self._fd, f"{os.getpid()}\n".ljust(16).encode(), 0)
        except OSError:
            pass
        try:
            yield
        finally:
            if prev == 1:
                fcntl.flock(self._fd, fcntl.LOCK_SH)
            else:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._mode = prev

    @contextmanager
    def shared(self) -> Iterator[None]:
        if self.path is None or self._mode:
            yield
            return
        self._acquire(fcntl.LOCK_SH)
        self._mode = 1
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._mode = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._mode = 0
