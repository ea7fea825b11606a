"""prollytree: a content-addressed, Git-versioned key-value store built on prolly trees.

Layers, each using only the public surface of the one below:

* :mod:`prollytree.storage` - content-addressed node stores (memory, file, RocksDB, LMDB)
* :mod:`prollytree.tree` - chunker, codec, :class:`ProllyTree`, cursors, diff, proofs, merge
* :mod:`prollytree.versioning` - commits, refs, branches, :class:`VersionedKvStore`
"""

from ._version import __version__
from .errors import (
    CorruptNodeError, MergeConflictError, MissingNodeError, ProllyError, ProofError,
    ReadOnlyError, StoreError, StoreLockedError, UnknownRefError,
)
from .storage import NodeStore, MemoryNodeStore, open_store
from .tree import (
    ConflictResolution, MergeConflict, ProllyTree, TreeConfig, proven_value, verify_absence,
    verify_proof,
)

__all__ = [
    "__version__", "ProllyTree", "TreeConfig", "ConflictResolution", "MergeConflict",
    "verify_proof", "verify_absence", "proven_value", "NodeStore", "MemoryNodeStore",
    "open_store", "ProllyError", "StoreError", "CorruptNodeError", "MissingNodeError",
    "ReadOnlyError", "StoreLockedError", "ProofError", "UnknownRefError", "MergeConflictError",
]

from .versioning import (  # noqa: E402  (versioning layer, issue #4)
    DiffOperation, KvDiff, StorageBackend, Unresolved, VersionedKvStore,
)

__all__ += ["VersionedKvStore", "StorageBackend", "KvDiff", "DiffOperation", "Unresolved"]

from .errors import WorktreeLockedError  # noqa: E402  (namespaces and worktrees, issue #11)
from .versioning import (  # noqa: E402
    NamespacedKvStore, WorktreeManager, WorktreeVersionedKvStore,
)

__all__ += ["NamespacedKvStore", "WorktreeManager", "WorktreeVersionedKvStore",
            "WorktreeLockedError"]
from .errors import AuthenticationError, NonFastForwardError, RemoteError  # noqa: E402 (sync, #15)

__all__ += ["RemoteError", "NonFastForwardError", "AuthenticationError"]


def __getattr__(name: str):
    # ProllySQLStore needs the sql extra (apsw), so it is imported on first use (issue 12)
    if name == "ProllySQLStore":
        from .sql import ProllySQLStore
        return ProllySQLStore
    raise AttributeError(f"module 'prollytree' has no attribute {name!r}")
