"""WorktreeVersionedKvStore: the dataset of one Git worktree, with its lock enforced.

The worktrees themselves (adding, listing, locking, merging) are
:class:`~prollytree.versioning.worktree.WorktreeManager`'s; this handle is what an agent
writes through. See ``docs/namespaces.md``.
"""

from __future__ import annotations

import os
import uuid

from ..errors import WorktreeLockedError
from .kv_store import VersionedKvStore
from .refs import check_branch_name
from .worktree import WorktreeManager

__all__ = ["WorktreeVersionedKvStore"]


class WorktreeVersionedKvStore:
    """The dataset of one worktree, with the worktree's lock enforced.

    Wraps the :class:`VersionedKvStore` at ``<worktree>/<dataset>`` (see :attr:`store`
    for everything else it can do). While the worktree is locked, :meth:`insert`,
    :meth:`delete` and :meth:`commit` raise :class:`WorktreeLockedError` unless this
    handle took the lock (:meth:`lock`); reads always work.
    """

    def __init__(self, store: VersionedKvStore, manager: WorktreeManager, worktree_id: str,
                 path: str) -> None:
        self._store = store
        self._manager = manager
        self._id = worktree_id
        self._path = path
        self._token = uuid.uuid4().hex

    @staticmethod
    def from_worktree(worktree_path: str | os.PathLike, worktree_id: str, branch: str,
                      manager: WorktreeManager) -> "WorktreeVersionedKvStore":
        """Open the dataset of worktree ``worktree_id`` (at ``worktree_path``, on
        ``branch``: both must match what Git says, ValueError otherwise). Its store is
        switched to ``branch`` if it was moved elsewhere."""
        if not isinstance(manager, WorktreeManager):
            raise TypeError(f"manager must be a WorktreeManager, not {type(manager).__name__}")
        if not isinstance(worktree_path, (str, os.PathLike)):
            raise TypeError(f"worktree_path must be a str or os.PathLike, not "
                            f"{type(worktree_path).__name__}")
        check_branch_name(branch)
        e = manager.get_worktree(worktree_id)
        if os.path.realpath(os.fspath(worktree_path)) != e["path"]:
            raise ValueError(f"worktree {worktree_id!r} is at {e['path']}, not "
                             f"{os.fspath(worktree_path)}")
        if e["branch"] != branch:
            raise ValueError(f"worktree {worktree_id!r} has {e['branch'] or 'a detached HEAD'}"
                             f" checked out, not {branch!r}")
        store = VersionedKvStore(os.path.join(e["path"], manager.dataset))
        try:
            if store.current_branch() != branch:
                store.checkout(branch)
        except BaseException:
            store.close()
            raise
        return WorktreeVersionedKvStore(store, manager, worktree_id, e["path"])

    @property
    def store(self) -> VersionedKvStore:
        """The underlying store (writes through it bypass the worktree lock)."""
        return self._store

    @property
    def path(self) -> str:
        """The worktree's root."""
        return self._path

    def worktree_id(self) -> str:
        return self._id

    def current_branch(self) -> str | None:
        return self._store.current_branch()

    def _check_writable(self) -> None:
        locked, reason, holder = self._manager.lock_state(self._id)
        if locked and holder != self._token:
            raise WorktreeLockedError(
                f"worktree {self._id!r} is locked ({reason or 'no reason'}) by another "
                f"holder; nothing was written", self._id, reason)

    def insert(self, key: bytes, value: bytes) -> None:
        """Stage ``key`` = ``value`` (WorktreeLockedError while locked by another)."""
        self._check_writable()
        self._store.insert(key, value)

    def delete(self, key: bytes) -> bool:
        """Stage the removal of ``key``; returns whether it existed."""
        self._check_writable()
        return self._store.delete(key)

    def get(self, key: bytes) -> bytes | None:
        return self._store.get(key)

    def list_keys(self) -> list[bytes]:
        return self._store.list_keys()

    def commit(self, message: str) -> str:
        """Commit the staged changes on the worktree's branch; returns the commit id."""
        self._check_writable()
        return self._store.commit(message)

    def lock(self, reason: str | None = None) -> None:
        """Lock the worktree with this handle as the holder (WorktreeLockedError when
        it is locked already)."""
        self._manager.lock_for(self._id, reason, self._token)

    def unlock(self) -> bool:
        """Release this handle's lock; returns whether it was locked. WorktreeLockedError
        when another holder has it (:meth:`WorktreeManager.unlock_worktree` breaks any
        lock)."""
        locked, reason, holder = self._manager.lock_state(self._id)
        if not locked:
            return False
        if holder != self._token:
            raise WorktreeLockedError(f"worktree {self._id!r} is locked by another holder "
                                      f"({reason or 'no reason'})", self._id, reason)
        return self._manager.unlock_worktree(self._id)

    def is_locked(self) -> bool:
        return self._manager.is_locked(self._id)

    def holds_lock(self) -> bool:
        """Whether this handle holds the worktree's lock."""
        locked, _, holder = self._manager.lock_state(self._id)
        return locked and holder == self._token

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "WorktreeVersionedKvStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WorktreeVersionedKvStore {self._id!r} at {self._path!r}>"
