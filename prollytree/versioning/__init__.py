"""Versioning layer: commits, refs, branches, staging and :class:`VersionedKvStore`.

Modules, one job each: :mod:`.objects` (the commit record, author identity), :mod:`.refs`
(ref names and expressions such as ``HEAD~2``), :mod:`.staging` (the crash-safe staging
journal), :mod:`.lock` (the per-dataset lock), :mod:`.history` (log order, merge bases),
:mod:`.backend` (the backend interface), :mod:`.git_backend` (Git via dulwich),
:mod:`.store_backend` (any NodeStore: File, RocksDB, InMemory), :mod:`.git_index`
(the Git index entries of a dataset) and :mod:`.kv_store`.
"""

from ..tree.merge import ConflictResolution, MergeConflict
from .kv_store import (DiffOperation, KvDiff, RevertConflictError, StorageBackend, Unresolved,
                       VersionedKvStore)
from .objects import Commit

__all__ = ["VersionedKvStore", "StorageBackend", "KvDiff", "DiffOperation", "Unresolved",
           "ConflictResolution", "MergeConflict", "RevertConflictError", "Commit"]

from .namespaced import NamespacedKvStore  # noqa: E402  (issue #11)
from .worktree import WorktreeManager, WorktreeVersionedKvStore  # noqa: E402

__all__ += ["NamespacedKvStore", "WorktreeManager", "WorktreeVersionedKvStore"]
