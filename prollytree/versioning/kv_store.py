"""VersionedKvStore: the seed's key/value store with Git-style history.

A thin facade: a :class:`~.workspace.Workspace` (HEAD, staging, the dataset's lock) over a
:class:`~.repository.Repository` (commits, refs, named trees, merge, fsck, gc) whose
history backend comes from the :mod:`.registry`. See ``docs/versioning.md`` for the
on-disk layouts, the Git integration and the exact semantics of each call.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

from .backend import HistoryBackend
from .registry import StorageBackend, foreign_dataset, is_url
from .registry import probe as probe_backend
from .repository import Repository
from .types import DiffOperation, KvDiff, Unresolved
from .workspace import Workspace

__all__ = ["StorageBackend", "VersionedKvStore", "KvDiff", "DiffOperation", "Unresolved"]

_OPEN: "weakref.WeakSet[VersionedKvStore]" = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    for store in list(_OPEN):
        try:
            store.close()
        except Exception:  # exit must not fail on one store
            pass


def _check_path(path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    raw = os.fspath(path)
    if isinstance(raw, bytes):
        raise TypeError("path must be a str or os.PathLike of str, not bytes")
    if raw == "":
        raise ValueError("path is empty: name the dataset directory (e.g. './data')")
    if is_url(raw):  # an object-store location: passed through untouched
        from ..storage.s3 import parse_s3_url
        parse_s3_url(raw)
        return raw
    return os.path.abspath(raw)


class VersionedKvStore(Workspace):
    """A versioned key/value store (bytes -> bytes) at ``path``.

    ``storage_backend`` is a :class:`StorageBackend` (default ``Git``): ``path`` is then
    the dataset directory, inside an existing Git repository or not (a repository is
    initialised there). Other backends keep everything under ``path`` (``InMemory``
    ignores it). ``S3``: ``path`` is ``s3://bucket/prefix`` (the default backend for such
    a location); the dataset lives in S3, this machine's state in a local directory (see
    ``docs/sync.md``). Opening an existing store resumes it, staged changes included. A
    directory holding another backend's dataset is refused (ValueError), as is an
    empty path or one inside a ``.git`` directory; nothing is created then.
    """

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None) -> None:
        where = _check_path(path)
        if is_url(where) and storage_backend is None:
            storage_backend = StorageBackend["S3"]
        kind = StorageBackend.coerce(storage_backend)
        if is_url(where) != (kind.name == "S3"):
            need = "an s3://bucket/prefix location" if kind.name == "S3" else "a directory"
            raise ValueError(f"the {kind.name} backend needs {need}, not {where!r}")
        if kind.spec.persistent and not is_url(where):
            if ".git" in where.split(os.sep):
                raise ValueError(f"{where} is inside a .git directory: not a dataset path")
            other = foreign_dataset(where, kind)
            if other is not None:
                raise ValueError(f"{where} holds a {other.name} dataset; open it with "
                                 f"StorageBackend.{other.name} (or no storage_backend)")
        self._kind = kind
        self._path = where
        backend = kind.spec.open(where)
        try:
            super().__init__(Repository(backend))
        except BaseException:
            backend.close()
            raise
        _OPEN.add(self)

    @staticmethod
    def open(path: str | os.PathLike, storage_backend: Any = None) -> "VersionedKvStore":
        """Open the *existing* store at ``path``; ValueError ``not a dataset: PATH`` when
        there is none (nothing is created). ``storage_backend`` None: whichever backend
        holds the dataset at ``path`` (see :meth:`probe`). An InMemory store cannot be
        reopened. (The constructor opens or creates.)"""
        where = _check_path(path)
        found = probe_backend(where)
        kind = found if storage_backend is None else StorageBackend.coerce(storage_backend)
        if found is None or found is not kind:
            what = "" if storage_backend is None or found is None else \
                f" of the {kind.name} backend (it holds a {found.name} dataset)"
            raise ValueError(f"not a dataset{what}: {where}")
        return VersionedKvStore(where, kind)

    @staticmethod
    def probe(path: str | os.PathLike) -> "StorageBackend | None":
        """The backend of the dataset at exactly ``path`` (a directory), or None when there
        is none. Reads only: nothing is created or changed.

        * File / RocksDB / LMDB: ``path`` holds the node store ``nodes/`` and the
          staging journal (RocksDB keeps its ``CURRENT`` file in ``nodes/``, LMDB its
          ``data.mdb``);
        * Git: ``path`` is a directory of a Git repository in which a store was opened
          (``.git/prollytree/datasets/<path>`` exists), or whose checked-out commit has
          the dataset files ``<path>/.prolly/ROOT`` (e.g. a fresh clone);
        * S3: ``path`` is ``s3://bucket/prefix`` holding a prollytree store with the
          dataset's ``versioning/config`` (or ``HEAD``) ref (a few GETs)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        return probe_backend(path)

    def storage_backend(self) -> StorageBackend:
        """The backend this store uses (prints as ``Git``, ``File``, ...)."""
        return self._kind

    @property
    def path(self) -> str:
        return self._path

    @property
    def backend(self) -> HistoryBackend:
        """The history backend (advanced use: commits, refs, node store)."""
        return self._backend

    def close(self) -> None:
        """Release files and locks (staged changes stay in the journal)."""
        _OPEN.discard(self)
        super().close()

    def __enter__(self) -> "VersionedKvStore":
        return self

    def __repr__(self) -> str:
        where = self._branch if self._branch is not None else f"detached {self._head[:12]}"
        return f"<VersionedKvStore {self._kind.name} {self._path} on {where}>"

    # -- remotes: Git's for Git-backed datasets (prollytree.sync.git_remote), replication
    # for the store-backed ones (prollytree.sync.store_remote) ----------------------------

    def _remotes(self):
        if self._kind.name == "Git":
            from ..sync import git_remote
            return git_remote
        from ..sync import store_remote
        return store_remote

    @staticmethod
    def clone(url: str | os.PathLike, path: str | os.PathLike, **kw: Any
              ) -> "VersionedKvStore":
        """Clone the dataset at ``url`` into ``path`` and open it: a Git repository (see
        :func:`prollytree.sync.git_remote.clone`), or a store-backed dataset (an
        ``s3://`` location or a File / RocksDB / LMDB dataset directory; see
        :func:`prollytree.sync.store_remote.clone`)."""
        from ..sync import git_remote, store_remote
        into = kw.get("storage_backend")
        if store_remote.is_store_dataset(url) or (
                into is not None and StorageBackend.coerce(into).name != "Git"):
            return store_remote.clone(url, path, **kw)
        return git_remote.clone(url, path, **kw)

    def fetch(self, remote: str = "origin", **kw: Any) -> dict:
        """Fetch ``remote``'s branches into ``refs/remotes/<remote>/*``; see
        :func:`prollytree.sync.git_remote.fetch` / ``store_remote.fetch``."""
        return self._remotes().fetch(self, remote, **kw)

    def pull(self, remote: str = "origin", branch: str | None = None,
             conflict_resolution: Any = None, **kw: Any) -> dict:
        """Fetch, then merge the remote's branch; see
        :func:`prollytree.sync.git_remote.pull` / ``store_remote.pull``."""
        return self._remotes().pull(self, remote, branch, conflict_resolution, **kw)

    def push(self, remote: str = "origin", branch: str | None = None, force: bool = False,
             **kw: Any) -> dict:
        """Push a branch to ``remote`` (fast-forward only unless ``force``); see
        :func:`prollytree.sync.git_remote.push` / ``store_remote.push``."""
        return self._remotes().push(self, remote, branch, force, **kw)

    def add_remote(self, name: str, url: str | os.PathLike) -> None:
        """Add a remote: Git's for a Git-backed dataset, else a dataset directory or an
        ``s3://`` location (see ``docs/sync.md``)."""
        self._remotes().add_remote(self, name, url)

    def list_remotes(self) -> dict[str, str]:
        """``{name: url}`` of the remotes."""
        return self._remotes().list_remotes(self)

    def remove_remote(self, name: str) -> None:
        """Remove a remote and its remote-tracking refs."""
        self._remotes().remove_remote(self, name)
