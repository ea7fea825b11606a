"""The one module through which the SQL layer reaches its named trees.

A database is a catalog tree plus one tree per table and per index, all named trees of one
:class:`VersionedKvStore` commit (``sql/catalog``, ``sql/t/<table>``, ``sql/i/<index>``), so
they commit, branch, diff and merge together. Everything above this module uses :class:`Trees`.
"""

from __future__ import annotations

from typing import Iterator

__all__ = ["Trees", "TreeView"]


class TreeView:
    """Read access to one named tree of a past commit (an empty tree when absent)."""

    __slots__ = ("name", "_t")

    def __init__(self, tree, name: str) -> None:
        self.name = name
        self._t = tree

    def get(self, key: bytes) -> bytes | None:
        return self._t.find(key)

    def items(self, start: bytes | None = None, end: bytes | None = None,
              reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._t.items(start, end, reverse)


class Trees:
    """Named trees of one :class:`VersionedKvStore` (working copy and any commit)."""

    def __init__(self, store) -> None:
        self.store = store

    def tree(self, name: str):
        """The working-copy handle of tree ``name`` (get/insert/delete/insert_batch/
        items/prefix; writes are staged)."""
        return self.store.tree(name)

    def tree_at(self, ref: str, name: str) -> TreeView:
        return TreeView(self.store.tree_at(ref, name), name)

    def list_trees(self) -> list[str]:
        return self.store.list_trees()

    def list_trees_at(self, ref: str) -> list[str]:
        return self.store.list_trees_at(ref)

    def tree_exists(self, name: str) -> bool:
        return self.store.tree_exists(name)

    def create_tree(self, name: str) -> None:
        if not self.store.tree_exists(name):
            self.store.create_tree(name)

    def drop_tree(self, name: str) -> None:
        self.store.drop_tree(name)

    def diff(self, from_ref: str, to_ref: str, name: str) -> list[tuple[bytes, bytes | None,
                                                                       bytes | None]]:
        """[(key, old, new)] of tree ``name`` between two commits, sorted by key;
        structural (cost grows with the differences)."""
        return [(d.key, d.old_value, d.new_value)
                for d in self.store.diff(from_ref, to_ref, tree=name)]

    def conflict_location(self, conflict) -> tuple[str, bytes] | None:
        """(tree name, key) of a :class:`MergeConflict`; None for the default tree."""
        return (conflict.tree, conflict.key) if conflict.tree else None

    def merge(self, source: str, resolver) -> str:
        """Three-way merge of every tree; ``resolver(conflict)`` as for the store."""
        return self.store.merge(source, resolver)

    def status(self) -> list[tuple[str, bytes, str]]:
        """(tree, key, "added"/"modified"/"deleted") of the staged changes."""
        return [(t, k, what) for t, k, what in self.store.tree_status() if k is not None]

    def root_hash(self, name: str, ref: str = "HEAD") -> bytes | None:
        """Root address of tree ``name`` at ``ref`` (None: absent there)."""
        return self.store.tree_root(name, ref)

    def commits_for_key(self, name: str, key: bytes) -> list[dict]:
        """Commits (newest first) in which ``key`` of tree ``name`` changed."""
        return self.store.get_commits_for_key(key, tree=name)
