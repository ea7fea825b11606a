"""What :class:`~prollytree.versioning.VersionedKvStore` needs from a history backend.

A backend keeps three things for one dataset: prolly-tree nodes (a
:class:`~prollytree.storage.NodeStore`), commits (:class:`~.objects.Commit` records with
40-hex ids) and refs (branches ``refs/heads/*``, tags ``refs/tags/*`` and the store's own
``HEAD``), plus a state directory for the staging journal and the dataset lock.
Implementations: :mod:`.git_backend` (dulwich) and :mod:`.store_backend` (any NodeStore).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..errors import UnknownRefError
from ..storage import NodeStore
from ..tree.config import TreeConfig
from ..tree.node_cache import NodeCache
from .history import History
from .lock import DatasetLock
from .objects import Commit

HEADS = "refs/heads/"
TAGS = "refs/tags/"


class HistoryBackend(ABC):
    """Commits, refs and nodes of one dataset."""

    #: StorageBackend member name ("Git", "File", "RocksDB", "InMemory")
    name: str = "abstract"
    store: NodeStore
    config: TreeConfig
    cache: NodeCache
    lock: DatasetLock
    #: directory for the staging journal (None: staging stays in memory)
    state_dir: str | None = None
    #: True when writers elsewhere (other machines) move refs without this dataset's
    #: lock: the workspace then re-reads its branch at every call (S3)
    shared_refs: bool = False

    def _init_common(self) -> None:
        self._commits: dict[str, Commit] = {}
        self.history = History(self.read_commit)

    # -- commits --------------------------------------------------------------------------

    def read_commit(self, cid: str) -> Commit:
        c = self._commits.get(cid)
        if c is None:
            c = self._read_commit(cid)
            if c is None:
                raise UnknownRefError(f"unknown commit {cid!r}")
            self._commits[cid] = c
        return c

    def has_commit(self, cid: str) -> bool:
        try:
            self.read_commit(cid)
            return True
        except UnknownRefError:
            return False

    @abstractmethod
    def _read_commit(self, cid: str) -> Commit | None:
        """The commit with id ``cid`` or None."""

    @abstractmethod
    def write_commit(self, root: bytes, parents: list[str], message: str, author: str,
                     committer: str, timestamp: int, tz_offset: int) -> str:
        """Durably store a commit of the tree at ``root`` (whose nodes are in ``store``)
        and return its id. Does not move any ref."""

    def default_identity(self) -> tuple[str, str]:
        """(author, committer) as ``"Name <email>"``."""
        from .objects import identity
        return identity("AUTHOR", None, None), identity("COMMITTER", None, None)

    # -- refs -----------------------------------------------------------------------------

    @abstractmethod
    def get_ref(self, name: str) -> str | None:
        """Commit id of a full ref name (``refs/heads/x``), or None."""

    @abstractmethod
    def cas_ref(self, name: str, new: str | None, old: str | None) -> bool:
        """Set ref ``name`` to ``new`` (None deletes) if it currently is ``old`` (None:
        must not exist). Durable when it returns True."""

    @abstractmethod
    def list_refs(self, prefix: str) -> dict[str, str]:
        """{short name: commit id} of the refs under ``prefix`` (e.g. ``refs/heads/``)."""

    @abstractmethod
    def read_head(self) -> tuple[str | None, str | None]:
        """(branch name, None) when HEAD is on a branch, (None, commit id) detached."""

    @abstractmethod
    def write_head(self, branch: str | None, commit: str | None = None) -> None:
        """Point HEAD at a branch (``branch``) or detach it at ``commit``."""

    def checked_out_branches(self, others_only: bool = False) -> set[str]:
        """Branches checked out outside this store (Git: by the repository and its
        worktrees; ``others_only``: but not the worktree the store is in), which must
        not be deleted, nor checked out by a store of another worktree."""
        return set()

    def after_branch_update(self, branch: str, old: str | None, new: str) -> None:
        """Hook run (under the lock) after a branch moved from ``old`` to ``new``."""

    @abstractmethod
    def collect(self, commits: set, live: set, dry_run: bool, progress=None) -> dict:
        """Garbage collection (under the exclusive lock): reclaim what is neither in
        ``commits`` (ids) nor in ``live`` (node addresses). Returns the counts
        ``unreachable_nodes``, ``unreachable_commits``, ``removed``,
        ``removed_commits``, ``map_entries_dropped`` and ``managed_by_git``."""

    # -- ref resolution support (refs.RefSource) --------------------------------------------

    def head_commit(self) -> str | None:
        branch, commit = self.read_head()
        return self.get_ref(HEADS + branch) if branch is not None else commit

    def branch_commit(self, name: str) -> str | None:
        return self.get_ref(HEADS + name)

    def tag_commit(self, name: str) -> str | None:
        return self.get_ref(TAGS + name)

    def remote_commit(self, name: str) -> str | None:
        """The commit of remote-tracking branch ``name`` ("origin/main"), None without."""
        if "/" not in name:
            return None
        return self.get_ref("refs/remotes/" + name)

    def parents(self, cid: str) -> tuple:
        return self.read_commit(cid).parents

    def commits_with_prefix(self, prefix: str) -> list[str]:
        """Commit ids starting with hex ``prefix``: O(1) for a full id (40 hex digits),
        else a walk of the history reachable from the branches, tags and HEAD."""
        if len(prefix) == 40:
            return [prefix] if self.has_commit(prefix) else []
        starts = list(self.list_refs(HEADS).values()) + list(self.list_refs(TAGS).values())
        head = self.head_commit()
        if head:
            starts.append(head)
        return [c for c in self.history.all_ids(starts) if c.startswith(prefix)]

    def close(self) -> None:
        self.lock.close()
