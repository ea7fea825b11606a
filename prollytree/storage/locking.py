"""The one-writer-at-a-time lock shared by the persistent backends, and the small helpers
they all use.

Every persistent store (file, RocksDB, LMDB) is a directory. A store opened for writing
holds an exclusive ``flock`` on ``<directory>/prollytree.lock`` for as long as it is open;
a second writer - another process, or a second open in the same process, since ``flock``
locks belong to an open file description and not to a process - waits for the lock up to
a timeout and then gets :class:`~prollytree.errors.StoreLockedError`. Read-only opens do
not take the lock at all.

The lock file is not called ``LOCK`` because RocksDB already owns a file of that name in
its directory (and locks it with ``fcntl``, which would not wait).

The lock is advisory and POSIX-only (``fcntl.flock``). On NFS, Linux emulates ``flock``
with byte-range locks, which works between clients of a correctly configured server.
"""

from __future__ import annotations

import errno
import math
import os
import threading
import time
import weakref
from typing import Callable

from ..errors import StoreError, StoreLockedError
from .base import NodeStore
from .durable import make_store_dir

try:  # pragma: no cover - the import itself is what is being probed
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX platforms
    fcntl = None  # type: ignore[assignment]

#: Name of the lock file inside a store directory.
LOCK_FILE_NAME = "prollytree.lock"
#: Environment variable that sets the default lock timeout, in seconds.
LOCK_TIMEOUT_ENV = "PROLLYTREE_LOCK_TIMEOUT"
#: Lock timeout used when neither the constructor argument nor the environment sets one.
DEFAULT_LOCK_TIMEOUT = 10.0



def resolve_lock_timeout(lock_timeout: float | None) -> float:
    """The lock timeout to use: the argument if given, else ``$PROLLYTREE_LOCK_TIMEOUT``,
    else :data:`DEFAULT_LOCK_TIMEOUT`. Raises TypeError/ValueError for a bad value."""
    source = "lock_timeout"
    if lock_timeout is None:
        env = os.environ.get(LOCK_TIMEOUT_ENV)
        if env is None or env.strip() == "":
            return DEFAULT_LOCK_TIMEOUT
        source = LOCK_TIMEOUT_ENV
        try:
            lock_timeout = float(env)
        except ValueError:
            raise ValueError(f"{LOCK_TIMEOUT_ENV}={env!r} is not a number of seconds") from None
    if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
        raise TypeError(f"lock_timeout must be a number of seconds, "
                        f"not {type(lock_timeout).__name__}")
    if math.isnan(lock_timeout) or lock_timeout < 0:
        raise ValueError(f"{source} must be a non-negative number of seconds, "
                         f"got {lock_timeout!r}")
    return float(lock_timeout)


def flock_until(fd: int, op: int, timeout: float) -> bool:
    """Take ``flock(fd, op)``, polling a non-blocking attempt with backoff for up to
    ``timeout`` seconds (bounded, and no signals needed). Returns False on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


def lock_holder(path: str) -> str | None:
    """The pid a lock holder wrote into lock file ``path`` (diagnostics only), or None."""
    try:
        with open(path, "rb") as f:
            pid = f.read(32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return pid if pid.isdigit() else None


#: Locks held by this process, so that a forked child can let go of them (see below).
_HELD: "weakref.WeakSet[WriterLock]" = weakref.WeakSet()


def _forget_locks_in_child() -> None:
    # A forked child shares the parent's open file description, and with it the flock:
    # if the child kept its copy, the lock would outlive the parent's close() for as long
    # as the child runs (a multiprocessing pool, say), and block every later writer.
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


class WriterLock:
    """An exclusive, inter-process writer lock on a store directory.

    :meth:`acquire` polls a non-blocking ``flock`` until ``timeout`` seconds have passed
    (polling rather than blocking so that the wait is bounded and needs no signals). The
    holder's pid is written into the lock file so the error a waiter gets can name it.
    """

    def __init__(self, directory: str, timeout: float) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE_NAME)
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object currently holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, waiting up to the timeout; raises StoreLockedError after it."""
        if fcntl is None:  # pragma: no cover - non-POSIX platforms
            raise OSError("prollytree's persistent stores need fcntl.flock (a POSIX system)")
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not flock_until(fd, fcntl.LOCK_EX, self.timeout):
                raise StoreLockedError(self._locked_message())
        except BaseException:
            os.close(fd)
            raise
        # Diagnostics only: correctness rests on flock, never on this content.
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        _HELD.add(self)

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        if fd is not None:
            os.close(fd)

    def _locked_message(self) -> str:
        pid = lock_holder(self.path)
        holder = f" (held by pid {pid})" if pid else ""
        return (f"store at {self.directory} is locked by another writer{holder}; "
                f"gave up after waiting {self.timeout:g} s "
                f"(set lock_timeout= or ${LOCK_TIMEOUT_ENV} to wait longer)")

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LockedDirectoryStore(NodeStore):
    """The lifecycle the directory backends share: handles guarded by a re-entrant
    ``_mutex``, a :class:`WriterLock` (``_lock``, None for read-only opens) held while
    open, and ``close()`` = :meth:`_before_close` (a flush by default), then
    :meth:`_close_handles`, then the lock's release - whatever fails on the way."""

    _lock: WriterLock | None = None
    _closed = True

    def _init_directory(self, path: object, read_only: object,
                        lock_timeout: float | None) -> float:
        """Check and record the common constructor arguments (nothing is opened yet);
        returns the lock timeout to use."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, not {type(read_only).__name__}")
        timeout = resolve_lock_timeout(lock_timeout)
        self.path = os.path.abspath(os.fspath(path))
        self.read_only = read_only
        self._mutex = threading.RLock()
        self._closed = True  # until fully open; makes __del__ safe on failure
        self._lock = None
        return timeout

    def _open_directory(self, marker: str, what: str, timeout: float,
                        opener: Callable[[], None]) -> None:
        """Open the store: a read-only open needs ``marker`` (a file every store of this
        kind has) to exist; a writable one creates the directory and takes the writer
        lock. Then ``opener()`` opens the backend; on failure everything is released."""
        if self.read_only:
            if not os.path.isfile(os.path.join(self.path, marker)):
                raise StoreError(f"no {what} at {self.path} (missing {marker})")
        else:
            make_store_dir(self.path, what)
            self._lock = WriterLock(self.path, timeout)
            self._lock.acquire()
        try:
            opener()
        except BaseException:
            self._release()
            raise
        self._closed = False

    def _before_close(self) -> None:
        """Make everything durable before the handles go (default: :meth:`flush`)."""
        self.flush()

    def _close_handles(self) -> None:
        """Close the backend's files or database handles."""

    def close(self) -> None:
        """Flush, close the backend's handles and release the writer lock."""
        with self._mutex:
            if self._closed:
                return
            try:
                self._before_close()
            finally:
                self._closed = True
                self._release()

    def _release(self) -> None:
        self._close_handles()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # a finaliser must not raise; close() reported nothing more
            pass

