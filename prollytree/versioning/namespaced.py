"""NamespacedKvStore: many key spaces (namespaces) versioned together in one dataset.

A namespace is a named tree of the dataset's commits: ``"default"`` is the default tree
``""`` (the one :class:`VersionedKvStore`'s ``get``/``insert`` use), any other name
``N`` is the tree ``"ns/N"``. So every namespace commits, branches, checks out, diffs and
merges with the others atomically, an unchanged namespace costs nothing at commit, and a
:class:`VersionedKvStore` opened on the same dataset sees the default namespace as its
tree and the others as ``store.tree("ns/N")``.

Format versions: *V1* is a plain dataset (only the default tree); *V2* is marked by the
small tree ``"ns/.meta"`` holding ``format = 2`` (``.`` cannot start a namespace name, so
the marker is never a namespace). The first commit through a NamespacedKvStore writes the
marker, as does :meth:`NamespacedKvStore.migrate_v1_to_v2` in a commit of its own. A V1
dataset opened here is read as its default namespace: nothing is hidden or moved.

Namespace names: 1 to 128 characters from ``A-Z a-z 0-9 _ - . /``, not starting with
``.`` or ``/``, not ending with ``/``, no ``//`` or ``/.`` (``/`` allows hierarchies such as
``agents/alice``). See ``docs/namespaces.md``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterator

from ..errors import UnknownRefError
from .kv_store import KvDiff, StorageBackend, VersionedKvStore
from .tree_handle import TreeHandle

__all__ = ["NamespacedKvStore", "DEFAULT_NAMESPACE", "NS_PREFIX", "META_TREE",
           "namespace_tree", "tree_namespace", "check_namespace"]

DEFAULT_NAMESPACE = "default"
NS_PREFIX = "ns/"
META_TREE = "ns/.meta"
_FORMAT_KEY = b"format"
_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_\-./]{0,127}")


def check_namespace(name: object) -> str:
    """``name`` if it is a valid namespace name (see the module doc); TypeError /
    ValueError otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"namespace must be a str, not {type(name).__name__}")
    if not _NAME.fullmatch(name) or name.endswith("/") or "//" in name or "/." in name:
        raise ValueError(f"invalid namespace name {name!r:.80}: use 1-128 characters from "
                         f"A-Z a-z 0-9 _ - . /, not starting with '.' or '/', not ending "
                         f"with '/', without '//' or '/.'")
    return name


def namespace_tree(name: str) -> str:
    """The tree name holding namespace ``name`` (``"default"`` -> ``""``)."""
    check_namespace(name)
    return "" if name == DEFAULT_NAMESPACE else NS_PREFIX + name


def tree_namespace(tree: str) -> str | None:
    """The namespace a tree name holds (``""`` -> ``"default"``); None for trees that are
    not namespaces (other prefixes, the marker)."""
    if tree == "":
        return DEFAULT_NAMESPACE
    if tree.startswith(NS_PREFIX):
        name = tree[len(NS_PREFIX):]
        if _NAME.fullmatch(name) and not name.endswith("/") and "//" not in name \
                and "/." not in name and name != DEFAULT_NAMESPACE:
            return name
    return None


def _sorted(names) -> list[str]:
    return sorted(names, key=lambda n: n.encode("utf-8"))


class NamespacedKvStore:
    """A versioned store of named key spaces at ``path`` (opened or created, like
    :class:`VersionedKvStore`; ``storage_backend`` as there, default Git).

    Writes are staged per namespace and :meth:`commit` records all of them in one commit.
    Reads see staged writes over the current commit; reading a namespace that does not
    exist returns nothing and does not create it.
    """

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None) -> None:
        self._store = VersionedKvStore(path, storage_backend)

    @staticmethod
    def open(path: str | os.PathLike, storage_backend: Any = None) -> "NamespacedKvStore":
        """Open the existing dataset at ``path`` (ValueError when there is none), V1 or
        V2 (:attr:`format_version` says which)."""
        return NamespacedKvStore.from_store(VersionedKvStore.open(path, storage_backend))

    @staticmethod
    def from_store(store: VersionedKvStore) -> "NamespacedKvStore":
        """A NamespacedKvStore over an open :class:`VersionedKvStore` (shared, not
        copied: closing either closes both)."""
        if not isinstance(store, VersionedKvStore):
            raise TypeError(f"store must be a VersionedKvStore, not {type(store).__name__}")
        self = NamespacedKvStore.__new__(NamespacedKvStore)
        self._store = store
        return self

    @property
    def store(self) -> VersionedKvStore:
        """The underlying :class:`VersionedKvStore` (the default namespace is its
        default tree)."""
        return self._store

    # -- format ---------------------------------------------------------------------------

    @property
    def format_version(self) -> int:
        """2 when the current commit has the V2 marker (or any namespace tree), else 1."""
        trees = self._store.list_trees_at("HEAD") if self._has_head() else [""]
        return 2 if any(t.startswith(NS_PREFIX) for t in trees) else 1

    def _has_head(self) -> bool:
        try:
            self._store.current_commit()
        except UnknownRefError:
            return False
        return True

    def migrate_v1_to_v2(self) -> dict:
        """Mark a V1 dataset as V2 in one commit on the current branch. Its pairs already
        are the default namespace (a V1 dataset is one), so none moves: returns
        ``{"migrated": bool, "commit": id or None, "default_keys": n, "namespaces": k}``
        (``migrated`` False, no commit, on a V2 dataset). Refused (ValueError) with
        staged changes, which would otherwise be committed with the migration."""
        st = self._store
        if st.tree_status():
            raise ValueError("cannot migrate with staged changes: commit them first")
        default_keys = sum(1 for _ in st.iter_items())
        if self.format_version == 2:
            return {"migrated": False, "commit": None, "default_keys": default_keys,
                    "namespaces": len(self.list_namespaces())}
        st.insert(_FORMAT_KEY, b"2", tree=META_TREE)
        cid = st.commit("Migrate to the namespaced format (v2)")
        return {"migrated": True, "commit": cid, "default_keys": default_keys,
                "namespaces": len(self.list_namespaces())}

    # -- namespaces --------------------------------------------------------------------------

    def list_namespaces(self) -> list[str]:
        """Names of the namespaces in the working view (committed, plus staged creations,
        minus staged deletions), sorted; always includes ``"default"``."""
        names = {DEFAULT_NAMESPACE}
        for t in self._store.list_trees():
            ns = tree_namespace(t)
            if ns is not None:
                names.add(ns)
        return _sorted(names)

    def namespace_exists(self, namespace: str) -> bool:
        """Whether ``namespace`` is in the working view."""
        return namespace == DEFAULT_NAMESPACE or self._store.tree_exists(
            namespace_tree(namespace))

    def create_namespace(self, namespace: str) -> None:
        """Stage an empty namespace: it exists after the next commit even without keys.
        ValueError when it exists."""
        if namespace_tree(namespace) == "":
            raise ValueError("the default namespace always exists")
        self._store.create_tree(namespace_tree(namespace))

    def delete_namespace(self, namespace: str) -> bool:
        """Stage deleting ``namespace`` with all its keys; returns whether it existed.
        After the next commit it is gone (a later write starts it afresh, empty). The
        default namespace cannot be deleted (ValueError)."""
        if namespace_tree(namespace) == "":
            raise ValueError("the default namespace cannot be deleted")
        return self._store.drop_tree(namespace_tree(namespace))

    def namespace(self, namespace: str) -> TreeHandle:
        """A handle on ``namespace`` (get/insert/delete/items/prefix/insert_batch...)."""
        return self._store.tree(namespace_tree(namespace))

    def get_namespace_root_hash(self, namespace: str) -> bytes | None:
        """The root hash of ``namespace`` at the current commit (committed content only;
        the same 32 bytes a ProllyTree holding the same pairs has); None when the commit
        has no such namespace. O(1) after the commit is read."""
        if not self._has_head():
            return None
        return self._store.tree_root(namespace_tree(namespace), "HEAD")

    def namespace_changed(self, namespace: str, commit_a: str, commit_b: str) -> bool:
        """Whether ``namespace`` differs between two commits (any refs): its root
        changed, or it exists at only one of them."""
        t = namespace_tree(namespace)
        return self._store.tree_root(t, commit_a) != self._store.tree_root(t, commit_b)

    # -- keys ---------------------------------------------------------------------------------

    def ns_insert(self, namespace: str, key: bytes, value: bytes) -> None:
        """Stage ``key`` = ``value`` in ``namespace`` (created by its first write)."""
        self._store.insert(key, value, tree=namespace_tree(namespace))

    def ns_get(self, namespace: str, key: bytes) -> bytes | None:
        """The value of ``key`` in ``namespace`` (staged, else committed); None when
        absent or when the namespace does not exist."""
        return self._store.get(key, tree=namespace_tree(namespace))

    def ns_delete(self, namespace: str, key: bytes) -> bool:
        """Stage the removal of ``key`` from ``namespace``; returns whether it existed."""
        t = namespace_tree(namespace)
        if t and not self._store.tree_exists(t):
            return False  # do not create the namespace by deleting from it
        return self._store.delete(key, tree=t)

    def ns_list_keys(self, namespace: str) -> list[bytes]:
        """Every key of ``namespace`` in the working view, sorted ([] when absent)."""
        return [k for k, _ in self._store.iter_items(tree=namespace_tree(namespace))]

    def ns_items(self, namespace: str, start: bytes | None = None,
                 end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs of ``namespace`` with ``start <= key < end``, lazily."""
        return self._store.iter_items(start, end, tree=namespace_tree(namespace))

    def insert(self, key: bytes, value: bytes) -> None:
        """:meth:`ns_insert` into ``"default"``."""
        self._store.insert(key, value)

    def get(self, key: bytes) -> bytes | None:
        """:meth:`ns_get` from ``"default"``."""
        return self._store.get(key)

    def delete(self, key: bytes) -> bool:
        """:meth:`ns_delete` from ``"default"``."""
        return self._store.delete(key)

    def list_keys(self) -> list[bytes]:
        """:meth:`ns_list_keys` of ``"default"``."""
        return self._store.list_keys()

    # -- history ------------------------------------------------------------------------------

    def commit(self, message: str | None = None) -> str:
        """Commit the staged changes of every namespace at once; returns the commit id.
        The default message names the namespaces changed. The first commit also writes
        the V2 marker (see the module doc)."""
        if message is not None and not isinstance(message, str):
            raise TypeError(f"message must be a str or None, not {type(message).__name__}")
        st = self._store
        if message is None:
            changed = _sorted({tree_namespace(t) or t for t, _, _ in st.tree_status()
                               if t != META_TREE})
            message = ("Update namespaces: " + ", ".join(changed)) if changed \
                else "Update namespaces"
        if st.current_branch() is not None and st.get(_FORMAT_KEY, tree=META_TREE) is None:
            st.insert(_FORMAT_KEY, b"2", tree=META_TREE)
        return st.commit(message)

    def branch(self, name: str) -> str:
        """Create branch ``name`` at the current commit and switch to it; returns the
        commit id (staged changes stay staged)."""
        return self._store.create_branch(name)

    def checkout(self, branch_or_commit: str) -> None:
        """Switch to a branch, or detach at a commit (read-only); ValueError with staged
        changes (see :meth:`VersionedKvStore.checkout` for ``staged=``)."""
        self._store.checkout(branch_or_commit)

    @property
    def current_branch(self) -> str | None:
        """The current branch (None when detached)."""
        return self._store.current_branch()

    def current_commit(self) -> str:
        return self._store.current_commit()

    def list_branches(self) -> list[str]:
        """Every branch, sorted."""
        return self._store.list_branches()

    def log(self, ref: str | None = None, limit: int | None = None) -> list[dict]:
        """Commit history, newest first (see :meth:`VersionedKvStore.log`)."""
        return self._store.log(ref, limit)

    def merge(self, branch: str, conflict_resolution: Any = None) -> str:
        """Three-way merge ``branch`` into the current branch, every namespace at once
        (see :meth:`VersionedKvStore.merge`; a conflict's ``tree`` is the namespace's
        tree name: :func:`tree_namespace` maps it back). Refused (ValueError) while any
        namespace has staged changes: commit them first."""
        return self._store.merge(branch, conflict_resolution)

    def try_merge(self, branch: str) -> tuple[bool, list]:
        """Merge when no conflict needs resolving: ``(True, [])``, else ``(False,
        conflicts)`` having changed nothing."""
        return self._store.try_merge(branch)

    def diff(self, from_ref: str, to_ref: str, namespace: str | None = None
             ) -> list[KvDiff] | dict[str, list[KvDiff]]:
        """Changes from ``from_ref`` to ``to_ref``: of ``namespace`` as a sorted list of
        :class:`KvDiff`, or (``namespace`` None) ``{namespace: [KvDiff, ...]}`` for every
        namespace that differs (a namespace absent on one side diffs as empty)."""
        if namespace is not None:
            return self._store.diff(from_ref, to_ref, namespace_tree(namespace))
        out = {}
        for t, diffs in self._store.diff_trees(from_ref, to_ref).items():
            ns = tree_namespace(t)
            if ns is not None:
                out[ns] = diffs
        return {k: out[k] for k in _sorted(out)}

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._store.path

    @property
    def storage_backend(self) -> StorageBackend:
        return self._store.storage_backend()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "NamespacedKvStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<NamespacedKvStore {self._store.path!r}>"

