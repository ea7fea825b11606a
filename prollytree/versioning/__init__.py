"""Versioning layer: commits, refs, branches, staging and :class:`VersionedKvStore`.

Modules, one job each: :mod:`.objects` (the commit record, author identity), :mod:`.refs`
(ref names and expressions such as ``HEAD~2``), :mod:`.staging` (the crash-safe staging
journal), :mod:`.lock` (the per-dataset lock), :mod:`.history` (log order, merge bases),
:mod:`.backend` (the backend interface), :mod:`.git_backend` (Git via dulwich),
:mod:`.store_backend` (any NodeStore: File, RocksDB, LMDB, InMemory), :mod:`.registry`
(the one list of backends: the StorageBackend enum, probing), :mod:`.git_index` (the Git
index entries of a dataset), :mod:`.types` (change kinds, KvDiff), :mod:`.roots` (root
sets: the named trees of a commit), :mod:`.rootmerge` (staged writes and merges applied
per tree), :mod:`.repository` (history shared by working copies), :mod:`.workspace` (one
working copy: HEAD, staging), :mod:`.tree_handle` and :mod:`.kv_store` (the facade).
"""

from ..errors import RevertConflictError
from ..tree.merge import ConflictResolution, MergeConflict
from .kv_store import StorageBackend, VersionedKvStore
from .objects import Commit
from .repository import Repository
from .roots import RootSet, TreeEntry
from .tree_handle import TreeHandle
from .types import ChangeKind, DiffOperation, KvDiff, Unresolved
from .workspace import Workspace

__all__ = ["VersionedKvStore", "StorageBackend", "KvDiff", "DiffOperation", "ChangeKind",
           "Unresolved", "ConflictResolution", "MergeConflict", "RevertConflictError",
           "Commit", "Repository", "Workspace", "RootSet", "TreeEntry", "TreeHandle"]
from .namespaced import NamespacedKvStore  # noqa: E402  (issue #11)
from .worktree import WorktreeManager  # noqa: E402
from .worktree_store import WorktreeVersionedKvStore  # noqa: E402

__all__ += ["NamespacedKvStore", "WorktreeManager", "WorktreeVersionedKvStore"]
