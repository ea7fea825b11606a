"""Finding and opening the dataset a ``git-prolly`` command runs in, and small views
built on :class:`~prollytree.versioning.VersionedKvStore`'s public methods only.

A *dataset* is a directory holding one store; :meth:`VersionedKvStore.probe` tells
whether a directory is one and of which backend (Git, File or RocksDB). A command looks
in the current directory (or ``-C PATH``) and then in each parent up to the repository's
root (or the filesystem root outside a repository), and uses the first dataset found, as
Git does with ``.git``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

from prollytree.git.repo import find_repo_root


class NotADataset(ValueError):
    """No dataset at or above the directory a command runs in."""


@dataclass
class Location:
    path: str          #: absolute dataset directory
    backend: str       #: StorageBackend member name: "Git", "File" or "RocksDB"


def locate(start: str) -> Location:
    """The nearest dataset at or above ``start``; NotADataset when there is none."""
    from prollytree.versioning import VersionedKvStore
    start = os.path.realpath(start)
    root = find_repo_root(start)
    d = start
    while True:
        kind = VersionedKvStore.probe(d)
        if kind is not None:
            return Location(d, kind.name)
        parent = os.path.dirname(d)
        if d == root or parent == d:
            break
        d = parent
    where = f" (or any parent up to {root})" if root is not None else " (or any parent)"
    raise NotADataset(f"not a prollytree dataset: {start}{where}; "
                      f"run 'git-prolly init' to create one")


def open_store(loc: Location, create: bool = False):
    """The store at ``loc``: opened (it must exist), or with ``create`` opened or
    created."""
    from prollytree.versioning import StorageBackend, VersionedKvStore
    kind = StorageBackend[loc.backend]
    if create:
        return VersionedKvStore(loc.path, kind)
    return VersionedKvStore.open(loc.path, kind)


# -- commits and refs -------------------------------------------------------------------------


def ref_labels(store) -> dict[str, list[str]]:
    """{commit id: ["HEAD -> main", "feature", "tag: v1"]} for decorating logs."""
    labels: dict[str, list[str]] = {}
    cur = store.current_branch()
    for ref, cid in store.list_refs().items():
        if ref.startswith("refs/heads/"):
            name = ref[len("refs/heads/"):]
            labels.setdefault(cid, []).append(f"HEAD -> {name}" if name == cur else name)
        else:
            labels.setdefault(cid, []).append(f"tag: {ref[len('refs/tags/'):]}")
    if cur is None:
        labels.setdefault(store.current_commit(), []).insert(0, "HEAD")
    for names in labels.values():  # "HEAD -> x" first, then branches, then tags
        names.sort(key=lambda n: (not n.startswith("HEAD"), n.startswith("tag: "), n))
    return labels


def commit_changes(store, commit: dict) -> list:
    """The KvDiff list a commit (a ``commit_info``/``log`` entry) introduced: against
    its first parent, a root commit against the empty dataset."""
    from prollytree.versioning import KvDiff
    if commit["parents"]:
        return store.diff(commit["parents"][0], commit["id"])
    return [KvDiff(k, None, v) for k, v in store.iter_items_at(commit["id"])]


def change_counts(changes: list) -> dict[str, int]:
    added = modified = removed = 0
    for d in changes:
        if d.old_value is None:
            added += 1
        elif d.new_value is None:
            removed += 1
        else:
            modified += 1
    return {"added": added, "modified": modified, "deleted": removed}


def items_at(store, ref: str | None, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs whose key starts with ``prefix``, in key order: of the current
    view (the current commit with staged changes) when ``ref`` is None, else at ``ref``."""
    from prollytree.tree import prefix_end
    start = prefix or None
    end = prefix_end(prefix) if prefix else None
    if ref is None:
        return store.iter_items(start, end)
    return store.iter_items_at(ref, start, end)
