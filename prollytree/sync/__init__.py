"""Sync: replication between node stores and datasets, sending only what differs.

:func:`replicate` copies a branch of a store-backed dataset (File, RocksDB, InMemory, S3)
to another store; :func:`replicate_nodes` copies trees by root address;
:func:`open_dataset_store` opens the node store of a dataset by location. See
``docs/sync.md`` for the protocol and why interrupting it is safe.

Remotes: :mod:`.git_remote` for Git-backed datasets (Git's transports and the HTTP
server of :mod:`.http_server`), :mod:`.store_remote` for the others (carried by
:func:`replicate`; directories, ``s3://`` and ``http://`` to :mod:`.http_store`). Both
are reached through ``VersionedKvStore.clone / fetch / pull / push / add_remote``.
"""

from .locations import open_dataset_store
from .replicate import NonFastForwardError, ReplicationStats, replicate, replicate_nodes

__all__ = ["replicate", "replicate_nodes", "ReplicationStats", "NonFastForwardError",
           "open_dataset_store"]
