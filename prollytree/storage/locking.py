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
import struct
import threading
import time
import weakref
from abc import ABCMeta
from typing import Callable

from ..errors import StoreError, StoreLockedError
from .base import NodeStore
from .._fs import make_store_dir, unlink_quietly

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



def resolve_lock_timeout(lock_timeout: float | None,
                         default: float = DEFAULT_LOCK_TIMEOUT) -> float:
    """The lock timeout to use: the argument if given, else ``$PROLLYTREE_LOCK_TIMEOUT``,
    else ``default``. The one parser of that variable; TypeError/ValueError for a bad
    value."""
    source = "lock_timeout"
    if lock_timeout is None:
        env = os.environ.get(LOCK_TIMEOUT_ENV)
        if env is None or env.strip() == "":
            return default
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


def _try_flock(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        return False


def flock_until(fd: int, op: int, timeout: float) -> bool:
    """Take ``flock(fd, op)``, polling a non-blocking attempt with backoff for up to
    ``timeout`` seconds (bounded, and no signals needed). Returns False on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        if _try_flock(fd, op):
            return True
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


# -- fair (first come, first served) flock --------------------------------------------------
#
# flock alone is not fair: when it is released every waiter races for it, and a holder
# that releases and re-takes it in a loop usually wins (it needs no wake-up), starving the
# others for tens of seconds. fair_flock_until() puts a ticket queue in front of it:
#
# - a waiter draws the next number from ``<lock>.queue/seq`` (under a flock held for
#   microseconds) and publishes a ticket file ``<number>.x`` (exclusive) or ``.s``
#   (shared) in ``<lock>.queue/``, itself exclusively flocked by the waiter for as long
#   as it waits (it is flocked before it is renamed into place, so a visible ticket
#   always has a lock);
# - it then waits until no *live* earlier ticket that conflicts with it remains (any
#   earlier ticket for an exclusive waiter, earlier exclusive ones for a shared waiter),
#   then takes the real flock on the lock file and deletes its ticket;
# - a ticket whose flock can be taken belongs to a dead process (the kernel dropped the
#   lock with it): whoever finds one deletes it. A crashed waiter never blocks anyone.
#
# A holder that releases and asks again draws a later number than everyone already
# waiting, so waiters are served in arrival order. Mutual exclusion itself still rests
# only on the kernel flock of the lock file, so a process that bypasses the queue (an
# older version) can barge in but never break exclusion.

QUEUE_SUFFIX = ".queue"
_SEQ_NAME = "seq"
_U64 = struct.Struct("<Q")


def _take_ticket(queue: str, kind: str) -> tuple[int, str, int]:
    """Draw the next number and publish ticket ``<number>.<kind>``, flocked by us.
    Returns (number, ticket path, ticket fd)."""
    os.makedirs(queue, exist_ok=True)
    seq_fd = os.open(os.path.join(queue, _SEQ_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
    try:
        fcntl.flock(seq_fd, fcntl.LOCK_EX)       # held for a few syscalls; dies with us
        raw = os.pread(seq_fd, 8, 0)
        number = _U64.unpack(raw)[0] + 1 if len(raw) == 8 else 1
        os.pwrite(seq_fd, _U64.pack(number), 0)
        _collect_dead_tmp(queue)
        tmp = os.path.join(queue, f"tmp-{os.getpid()}-{threading.get_ident()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)       # a fresh file: nobody else has it
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            path = os.path.join(queue, f"{number:016d}.{kind}")
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            unlink_quietly(tmp)
            raise
    finally:
        os.close(seq_fd)                         # releases the counter flock
    return number, path, fd


def _collect_dead_tmp(queue: str) -> None:
    """Delete half-made tickets of processes that died while making one. Called under
    the counter lock, which every ticket maker holds until its ticket is in place, so an
    unlocked temporary file cannot belong to anyone alive."""
    try:
        names = [n for n in os.listdir(queue) if n.startswith("tmp-")]
    except FileNotFoundError:
        return
    for name in names:
        _live(os.path.join(queue, name))        # deletes it when nobody holds it


def _live(path: str) -> bool:
    """Whether the ticket at ``path`` belongs to a live waiter; deletes it if not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False                             # served or given up meanwhile
    try:
        if not _try_flock(fd, fcntl.LOCK_SH):
            return True
        # Nobody holds it: its owner died between publishing it and deleting it.
        unlink_quietly(path)
        return False
    finally:
        os.close(fd)


def _ahead(queue: str, number: int, exclusive: bool) -> bool:
    """Whether a live ticket earlier than ``number`` conflicts with ours."""
    try:
        names = os.listdir(queue)
    except FileNotFoundError:
        return False
    earlier = []
    for name in names:
        stem, dot, kind = name.partition(".")
        if dot and stem.isdigit() and int(stem) < number and (exclusive or kind == "x"):
            earlier.append(name)
    # Newest first: the nearest live one ends the search; older dead ones are collected
    # by whoever reaches them.
    for name in sorted(earlier, reverse=True):
        if _live(os.path.join(queue, name)):
            return True
    return False


# The gate: listing the queue costs ~6 us, too much for a shared request on a hot path
# (a staged write). So every exclusive waiter also holds a shared flock on the queue
# directory itself while it waits, and a shared request asks the kernel whether anyone
# does (a non-blocking exclusive flock on the gate, released at once): three system calls
# in all. A shared request that finds no exclusive waiter and a free lock takes it without
# a ticket; otherwise it queues. Each process keeps one probe descriptor per gate.
_PROBES: dict[str, tuple[int, int]] = {}        # queue directory -> (pid, fd)
_DIR_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0)


def _hold_gate(queue: str) -> int:
    fd = os.open(queue, _DIR_FLAGS)
    fcntl.flock(fd, fcntl.LOCK_SH)               # probes hold it for microseconds only
    return fd


def _no_exclusive_waiter(queue: str) -> bool:
    """Whether no exclusive waiter is queued at ``queue`` (see the gate, above)."""
    pid = os.getpid()
    probe = _PROBES.get(queue)
    if probe is None or probe[0] != pid:         # first use, or a forked child
        try:
            os.makedirs(queue, exist_ok=True)   # so the probe opens once, and is kept
            fd = os.open(queue, _DIR_FLAGS)
        except OSError:
            return not _ahead(queue, 1 << 62, False)
        current = _PROBES.get(queue)
        if current is not None and current[0] == pid:
            os.close(fd)                         # another thread opened one meanwhile
            probe = current
        else:
            _PROBES[queue] = probe = (pid, fd)
    fd = probe[1]
    if not _try_flock(fd, fcntl.LOCK_EX):
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def fair_flock_until(fd: int, path: str, op: int, timeout: float) -> bool:
    """Like :func:`flock_until` (take ``flock(fd, op)`` within ``timeout`` seconds;
    False on timeout), but waiters are served in arrival order: see the comment above.
    ``fd`` is open on ``path``; the queue lives in ``<path>.queue/``."""
    exclusive = op == fcntl.LOCK_EX
    queue = path + QUEUE_SUFFIX
    nobody_ahead = (not _ahead(queue, 1 << 62, True) if exclusive
                    else _no_exclusive_waiter(queue))
    if nobody_ahead and _try_flock(fd, op):
        return True                              # nobody queued: no ticket needed
    deadline = time.monotonic() + timeout
    number, ticket, tfd = _take_ticket(queue, "x" if exclusive else "s")
    gate = _hold_gate(queue) if exclusive else None
    try:
        delay = 0.0005
        while True:
            if not _ahead(queue, number, exclusive) and _try_flock(fd, op):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.01)
    finally:
        unlink_quietly(ticket)
        os.close(tfd)
        if gate is not None:
            os.close(gate)                       # releases its shared flock


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
    _OPEN.clear()          # the child must open its own stores (it holds no lock)
    _OPENING.clear()


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
            if not fair_flock_until(fd, self.path, fcntl.LOCK_EX, self.timeout):
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


#: Writable directory stores open in this process, by real path (see _SharedWhileOpen).
_OPEN: "weakref.WeakValueDictionary[str, LockedDirectoryStore]" = weakref.WeakValueDictionary()
_OPENING: dict[str, threading.Lock] = {}
_OPEN_GUARD = threading.Lock()


def _share_key(args: tuple, kwargs: dict) -> str | None:
    path = args[0] if args else kwargs.get("path")
    read_only = args[1] if len(args) > 1 else kwargs.get("read_only", False)
    if read_only is not False or not isinstance(path, (str, os.PathLike)):
        return None                 # read-only opens take no lock; bad input: let it fail
    try:
        return os.path.realpath(os.path.abspath(os.fspath(path)))
    except (TypeError, ValueError):
        return None


class _SharedWhileOpen(ABCMeta):
    """Opening a writable directory store that this process already has open returns the
    open object (reference-counted: it really closes at the last ``close()``).

    The writer lock is an inter-process rule; inside one process a second writer object
    on the same directory could only wait for the timeout (its flock conflicts with the
    first object's) and, if it got in, would keep its own index and clobber the first
    one's appends. Sharing the object instead gives both callers one consistent view,
    at once. (LMDB and RocksDB also forbid opening one database twice in a process.)
    """

    def __call__(cls, *args: object, **kwargs: object):  # type: ignore[override]
        key = _share_key(args, kwargs)
        if key is None:
            return super().__call__(*args, **kwargs)
        with _OPEN_GUARD:
            opening = _OPENING.setdefault(key, threading.Lock())
        with opening:                        # one open per directory at a time
            inst = _OPEN.get(key)
            if inst is not None:
                with inst._mutex:
                    if not inst._closed:
                        if type(inst) is not cls:
                            raise StoreLockedError(
                                f"{key} is already open in this process as a {inst.kind} "
                                f"store; it cannot also be opened as a {cls.kind} store")
                        inst._shares += 1
                        return inst
            inst = super().__call__(*args, **kwargs)
            _OPEN[key] = inst
            inst._share_key = key
            return inst


class LockedDirectoryStore(NodeStore, metaclass=_SharedWhileOpen):
    """The lifecycle the directory backends share: handles guarded by a re-entrant
    ``_mutex``, a :class:`WriterLock` (``_lock``, None for read-only opens) held while
    open, and ``close()`` = :meth:`_before_close` (a flush by default), then
    :meth:`_close_handles`, then the lock's release - whatever fails on the way."""

    _lock: WriterLock | None = None
    _closed = True
    #: How many open() calls share this object (see _SharedWhileOpen).
    _shares = 1
    _share_key: str | None = None

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
        """Flush, close the backend's handles and release the writer lock. When the same
        directory was opened several times in this process (one shared object), only the
        last close() does this; the others just flush."""
        with self._mutex:
            if self._closed:
                return
            if self._shares > 1:
                self._shares -= 1
                self.flush()
                return
            if self._share_key is not None and _OPEN.get(self._share_key) is self:
                _OPEN.pop(self._share_key, None)
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
            self._shares = 1             # nobody refers to it any more: really close
            self.close()
        except Exception:  # a finaliser must not raise; close() reported nothing more
            pass

