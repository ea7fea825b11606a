"""Open the node store that holds a store-backed dataset, given where it lives."""

from __future__ import annotations

import os

from ..storage import NodeStore, open_store
from ..versioning.store_backend import NODES, probe

__all__ = ["open_dataset_store"]

_KINDS = ("file", "rocksdb", "lmdb")


def open_dataset_store(location: str | os.PathLike, kind: str | None = None, *,
                       read_only: bool = False) -> NodeStore:
    """The NodeStore of the dataset at ``location``.

    ``s3://bucket/prefix`` opens an S3 store (the whole dataset lives in it);
    ``http(s)://[TOKEN@]host:port`` the store of a dataset served by ``git prolly serve``
    (token from the URL, else ``$GIT_PROLLY_TOKEN``). A directory
    holding a File or RocksDB dataset opens its ``nodes/`` store; a directory without a
    dataset needs ``kind`` ("file", "rocksdb" or "lmdb") and gets an empty store, ready to
    be the destination of :func:`~prollytree.sync.replicate` (open it afterwards with
    ``VersionedKvStore(location, StorageBackend.File)`` or the matching backend).
    The store takes the directory's writer lock: close any VersionedKvStore on it first.
    """
    if not isinstance(location, (str, os.PathLike)):
        raise TypeError(f"location must be a str or os.PathLike, "
                        f"not {type(location).__name__}")
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"kind must be a str, not {type(kind).__name__}")
    loc = os.fspath(location)
    if loc.startswith(("http://", "https://")):
        if kind not in (None, "http"):
            raise ValueError(f"{loc} is served over HTTP, not a {kind} location")
        from .http_store import HttpNodeStore
        return HttpNodeStore(loc, read_only=read_only,
                             token=os.environ.get("GIT_PROLLY_TOKEN") or None)
    if loc.startswith("s3://"):
        if kind not in (None, "s3"):
            raise ValueError(f"{loc} is an S3 location, not a {kind} one")
        return open_store("s3", loc, read_only=read_only)
    found = probe(loc) if os.path.isdir(loc) else None
    nodes = os.path.join(loc, NODES)
    if found is None and os.path.isdir(nodes):
        # a replication destination not yet opened as a dataset (no staging journal)
        found = "rocksdb" if os.path.exists(os.path.join(nodes, "CURRENT")) else \
            "lmdb" if os.path.exists(os.path.join(nodes, "data.mdb")) else "file"
    if found is not None:
        if kind is not None and kind != found:
            raise ValueError(f"{loc} holds a {found} dataset, not a {kind} one")
        kind = found
    elif kind is None:
        raise ValueError(f"not a dataset: {loc} (give kind= to create one)")
    elif kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    elif read_only:
        raise ValueError(f"not a dataset: {loc}")
    else:
        os.makedirs(loc, exist_ok=True)
    return open_store(kind, nodes, read_only=read_only)
