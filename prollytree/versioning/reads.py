"""Reads of any commit through a working copy (a mixin of
:class:`~.workspace.Workspace`): log, commit info, root sets, named trees, values, scans,
diffs and per-key history at any ref. Each call first catches up with other writers
(``_sync``) and then asks the shared :class:`~.repository.Repository`, so the answers
are those of the refs as they are now.
"""

from __future__ import annotations

from typing import Iterator

from ..tree import ProllyTree
from ..tree.checks import check_key as _check_key
from .roots import DEFAULT_TREE, RootSet
from .types import KvDiff


class ReadsAtRefsMixin:
    """The read-only history calls of a :class:`~.workspace.Workspace`."""

    def open_value_at(self, ref: str, key: bytes, tree: str = DEFAULT_TREE):
        """:meth:`open_value` at a commit (``ref``: branch, tag, id, ``HEAD~N``); None
        when absent."""
        _check_key(key)
        self._sync()
        return self.repo.open_value_at(ref, key, tree)

    def log(self, ref: str | None = None, limit: int | None = None) -> list[dict]:
        """The history of the current commit (or of ``ref``), newest first, at most
        ``limit`` entries: dicts with id, parents (ids, first parent first), author,
        committer, message, timestamp (seconds) and tz_offset (seconds east of UTC)."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int, not {limit!r}")
        self._sync()
        return self.repo.log(self._head if ref is None else self.repo.resolve(ref), limit)

    def get_commit_history(self) -> list[dict]:
        """Same as :meth:`log`."""
        return self.log()

    def commit_info(self, ref: str = "HEAD") -> dict:
        """The commit ``ref`` names, as a :meth:`log` entry plus ``root`` (the 32-byte
        root address of its default tree)."""
        self._sync()
        return self.repo.commit_info(ref)

    def trees_at(self, ref: str = "HEAD") -> RootSet:
        """The root set (every named tree's root and config) of the commit ``ref``
        names."""
        self._sync()
        return self.repo.trees_at(ref)

    def list_trees_at(self, ref: str = "HEAD") -> list[str]:
        """Names of the trees of the commit ``ref`` names, sorted."""
        return list(self.trees_at(ref))

    def tree_root(self, name: str = DEFAULT_TREE, ref: str = "HEAD") -> bytes | None:
        """Root address of tree ``name`` at ``ref`` (committed content only); None when
        that commit has no such tree. O(1) once the commit is read."""
        self._sync()
        return self.repo.tree_root(name, ref)

    def tree_at(self, ref: str = "HEAD", name: str = DEFAULT_TREE) -> ProllyTree:
        """A read-only :class:`ProllyTree` over tree ``name`` of the commit ``ref`` names
        (no copy: it reads the store's nodes; writes raise ReadOnlyError; an empty tree
        when the commit has no such tree). Use it for ``stats()``, proofs, range scans,
        ``diff`` at that commit; it is valid while the store is open."""
        self._sync()
        return self.repo.tree_at(ref, name)

    def get_at(self, ref: str, key: bytes, tree: str = DEFAULT_TREE) -> bytes | None:
        """The value of ``key`` in tree ``tree`` of the commit ``ref`` names (None when
        absent there)."""
        _check_key(key)
        self._sync()
        return self.repo.get_at(ref, key, tree)

    def get_keys_at_ref(self, reference: str, tree: str = DEFAULT_TREE
                        ) -> list[tuple[bytes, bytes]]:
        """Every (key, value) pair of tree ``tree`` at ``reference``, sorted by key
        (nothing truncated)."""
        return list(self.iter_items_at(reference, tree=tree))

    def iter_items_at(self, reference: str, start: bytes | None = None,
                      end: bytes | None = None, tree: str = DEFAULT_TREE,
                      reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``start <= key < end`` of tree ``tree`` at
        ``reference``, lazily, in key order (or reversed)."""
        for bound in (start, end):
            if bound is not None:
                _check_key(bound)
        self._sync()
        return self.repo.iter_items_at(reference, start, end, tree, reverse)

    def get_commits_for_key(self, key: bytes, tree: str = DEFAULT_TREE) -> list[dict]:
        """Commits (newest first, as in :meth:`log`) in which ``key``'s value in tree
        ``tree`` changed: it differs from the value in every parent (for a root commit:
        the key exists)."""
        _check_key(key)
        self._sync()
        return self.repo.commits_for_key(self._head, key, tree)

    def diff(self, from_ref: str, to_ref: str, tree: str = DEFAULT_TREE) -> list[KvDiff]:
        """Keys of tree ``tree`` added, removed or modified from ``from_ref`` to
        ``to_ref``, sorted by key (a tree absent at a ref diffs as empty). Computed
        structurally: the cost grows with the number of differences."""
        self._sync()
        return self.repo.diff(from_ref, to_ref, tree)

    def diff_trees(self, from_ref: str, to_ref: str) -> dict[str, list[KvDiff]]:
        """:meth:`diff` of every tree whose root differs between the two refs, by tree
        name (sorted); unchanged trees cost nothing."""
        self._sync()
        return self.repo.diff_trees(from_ref, to_ref)

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two refs (None for unrelated histories)."""
        self._sync()
        return self.repo.merge_base(a, b)
