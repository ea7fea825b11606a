"""The one registry of history backends.

Each backend is registered once, as a :class:`BackendSpec`: its name, its storage kind,
how to open it and how to recognise a dataset of it on disk. The :class:`StorageBackend`
enum, :func:`probe`, the command line's ``--storage`` choices and the conformance test
parametrisation all come from :data:`BACKENDS`. Adding a backend is one NodeStore class
(registered in :mod:`prollytree.storage`) plus one line here.
"""

from __future__ import annotations

import enum
import os
from typing import Callable, NamedTuple

from .backend import HistoryBackend


class BackendSpec(NamedTuple):
    name: str                                   #: enum member name, e.g. "File"
    kind: str                                   #: storage kind, e.g. "file"
    open: Callable[[str], HistoryBackend]       #: open or create the backend at a path
    probe: Callable[[str], bool]                #: whether a path holds such a dataset
    persistent: bool = True


def _git(path: str) -> HistoryBackend:
    from .git_backend import GitBackend
    return GitBackend(path)


def _git_probe(path: str) -> bool:
    from .git_backend import probe
    return probe(path)


def _store(kind: str, name: str) -> Callable[[str], HistoryBackend]:
    def open_backend(path: str) -> HistoryBackend:
        from .store_backend import StoreBackend
        return StoreBackend(path if kind != "memory" else None, kind, name)
    return open_backend


def _store_probe(kind: str) -> Callable[[str], bool]:
    def probe(path: str) -> bool:
        from .store_backend import probe as store_probe
        return store_probe(path) == kind
    return probe


def _never(path: str) -> bool:
    return False


def is_url(path: object) -> bool:
    """Whether a dataset location is an object-store URL (``s3://...``), not a path."""
    return isinstance(path, str) and path.startswith("s3://")


def _s3_probe(path: str) -> bool:
    if not is_url(path):
        return False
    from .store_backend import s3_probe
    return s3_probe(path)


#: Every history backend (the seed's order, then ours).
BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("File", "file", _store("file", "File"), _store_probe("file")),
    BackendSpec("Git", "git", _git, _git_probe),
    BackendSpec("InMemory", "memory", _store("memory", "InMemory"), _never, persistent=False),
    BackendSpec("RocksDB", "rocksdb", _store("rocksdb", "RocksDB"), _store_probe("rocksdb")),
    BackendSpec("LMDB", "lmdb", _store("lmdb", "LMDB"), _store_probe("lmdb")),
    # location s3://bucket/prefix; per-machine state in store_backend.s3_state_dir(url)
    BackendSpec("S3", "s3", _store("s3", "S3"), _s3_probe),
)
#: Probe order: the store-backed layouts first, Git (whose datasets may sit anywhere in a
#: work tree) last.
PROBE_ORDER = tuple(sorted(BACKENDS, key=lambda s: s.name == "Git"))


class _StorageBackendBase(enum.Enum):
    """Where a VersionedKvStore keeps its nodes, commits and refs."""

    def __repr__(self) -> str:
        return f"StorageBackend.{self.name}"

    def __str__(self) -> str:
        return self.name

    @property
    def spec(self) -> BackendSpec:
        return _SPECS[self.name]

    @classmethod
    def coerce(cls, value: object) -> "StorageBackend":
        """A member from a member, its name or its kind (case-insensitive); None is Git.
        TypeError for other types, ValueError naming the choices for unknown names."""
        if value is None:
            return cls["Git"]
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for m in cls:
                if value.lower() in (m.name.lower(), m.value):
                    return m
            raise ValueError(f"unknown storage backend {value!r}; expected one of "
                             f"{', '.join(m.name for m in cls)}")
        raise TypeError(f"storage_backend must be a StorageBackend, not "
                        f"{type(value).__name__}")


StorageBackend = _StorageBackendBase(
    "StorageBackend", [(s.name, s.kind) for s in BACKENDS], module=__name__)
_SPECS = {s.name: s for s in BACKENDS}


def probe(path: str | os.PathLike) -> "StorageBackend | None":
    """The backend of the dataset at exactly ``path`` (a directory, or an ``s3://``
    URL), or None. Reads only."""
    if is_url(path):
        return StorageBackend["S3"] if _s3_probe(path) else None
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        return None
    for spec in PROBE_ORDER:
        if spec.probe(path):
            return StorageBackend[spec.name]
    return None


def foreign_dataset(path: str, kind: "StorageBackend") -> "StorageBackend | None":
    """The backend of a dataset at ``path`` that is not ``kind`` (None when there is
    none, or it is ``kind``): opening it with ``kind`` would write into another
    backend's files."""
    found = probe(path)
    return None if found is None or found is kind else found
