"""Storage layer: content-addressed node stores.

``open_store(kind, path)`` is the one place that maps a storage name to a backend; heavy
backends are imported lazily so that a missing optional dependency only matters to the
users who ask for that backend.
"""

from __future__ import annotations

import os
from typing import Callable

from .base import ADDRESS_SIZE, ANY, NodeStore, address_of
from .memory import MemoryNodeStore

__all__ = [
    "ADDRESS_SIZE", "ANY", "NodeStore", "MemoryNodeStore", "address_of", "open_store",
    "STORAGE_KINDS",
]


def _file(path: str, read_only: bool) -> NodeStore:
    from .file import FileNodeStore
    return FileNodeStore(path, read_only=read_only)


def _rocksdb(path: str, read_only: bool) -> NodeStore:
    from .rocksdb import RocksDBNodeStore
    return RocksDBNodeStore(path, read_only=read_only)


def _lmdb(path: str, read_only: bool) -> NodeStore:
    from .lmdb import LMDBNodeStore
    return LMDBNodeStore(path, read_only=read_only)


def _s3(path: str, read_only: bool) -> NodeStore:
    from .s3 import S3NodeStore
    return S3NodeStore(path, read_only=read_only)


_PERSISTENT: dict[str, Callable[[str, bool], NodeStore]] = {
    "file": _file,
    "rocksdb": _rocksdb,
    "lmdb": _lmdb,
    "s3": _s3,
}

#: Every storage kind accepted by :func:`open_store` and ``ProllyTree(storage_type)``.
STORAGE_KINDS = ("memory",) + tuple(_PERSISTENT)


def open_store(kind: str = "memory", path: str | os.PathLike | None = None,
               read_only: bool = False) -> NodeStore:
    """Open (creating if needed) a node store of the given kind.

    ``kind`` is one of :data:`STORAGE_KINDS`; persistent kinds need ``path``.
    Raises TypeError for non-string arguments and ValueError for an unknown kind or a
    missing path.
    """
    if not isinstance(kind, str):
        raise TypeError(f"storage type must be a str, not {type(kind).__name__}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if kind == "memory":
        return MemoryNodeStore()
    factory = _PERSISTENT.get(kind)
    if factory is None:
        raise ValueError(
            f"unknown storage type {kind!r}; expected one of {', '.join(STORAGE_KINDS)}")
    if path is None or os.fspath(path) == "":
        raise ValueError(f"{kind} storage requires a path")
    return factory(os.fspath(path), read_only)
