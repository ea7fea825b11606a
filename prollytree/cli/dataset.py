"""Finding, opening and working on the dataset a ``git-prolly`` command runs in.

A *dataset* is a directory holding one :class:`~prollytree.versioning.VersionedKvStore`:

* **Git backend** (the default): a directory of a Git repository (its root or any
  subdirectory). It is recognised by the store's local state directory
  ``.git/prollytree/datasets/<path>`` (created by ``init``) or, in a fresh clone, by the
  ``<path>/.prolly/ROOT`` file Git checked out.
* **File / RocksDB backends**: a directory holding ``nodes/`` (the node store) and
  ``staging.journal``; RocksDB is told apart by the ``CURRENT`` file RocksDB keeps.

A command looks in the current directory (or ``-C PATH``) and then in each parent up to
the repository's root (or the filesystem root outside a repository), and uses the first
dataset found, as Git does with ``.git``. Everything else in this module works through
the store's public methods (plus its documented ``backend`` for commits, refs and the
node store).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote


class NotADataset(ValueError):
    """No dataset at or above the directory a command runs in."""


@dataclass
class Location:
    path: str          #: absolute dataset directory
    backend: str       #: StorageBackend member name: "Git", "File" or "RocksDB"


def _git_dir(worktree: str) -> str | None:
    """The Git directory of the repository whose work tree root is ``worktree``."""
    dotgit = os.path.join(worktree, ".git")
    if os.path.isdir(dotgit):
        return dotgit
    if os.path.isfile(dotgit):  # a linked worktree or a submodule: "gitdir: <path>"
        try:
            with open(dotgit, encoding="utf-8") as f:
                line = f.readline().strip()
        except OSError:
            return None
        if line.startswith("gitdir:"):
            d = line[len("gitdir:"):].strip()
            return d if os.path.isabs(d) else os.path.normpath(os.path.join(worktree, d))
    return None


def _store_kind(d: str) -> str | None:
    nodes = os.path.join(d, "nodes")
    if os.path.isdir(nodes) and os.path.exists(os.path.join(d, "staging.journal")):
        return "RocksDB" if os.path.exists(os.path.join(nodes, "CURRENT")) else "File"
    return None


def find_repo_root(start: str) -> str | None:
    """The work tree root of the Git repository containing ``start`` (or None)."""
    d = start
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def is_git_dataset(d: str, root: str, git_dir: str | None) -> bool:
    if os.path.isfile(os.path.join(d, ".prolly", "ROOT")):
        return True
    if git_dir is None:
        return False
    prefix = os.path.relpath(d, root)
    prefix = "" if prefix == "." else prefix.replace(os.sep, "/")
    state = os.path.join(git_dir, "prollytree", "datasets", quote(prefix, safe="") or "_root")
    return os.path.isdir(state)


def locate(start: str) -> Location:
    """The nearest dataset at or above ``start``; NotADataset when there is none."""
    start = os.path.realpath(start)
    root = find_repo_root(start)
    git_dir = _git_dir(root) if root is not None else None
    d = start
    while True:
        kind = _store_kind(d)
        if kind is not None:
            return Location(d, kind)
        if root is not None and is_git_dataset(d, root, git_dir):
            return Location(d, "Git")
        parent = os.path.dirname(d)
        if d == root or parent == d:
            break
        d = parent
    where = f" (or any parent up to {root})" if root is not None else " (or any parent)"
    raise NotADataset(f"not a prollytree dataset: {start}{where}; "
                      f"run 'git-prolly init' to create one")


def open_store(loc: Location):
    from prollytree.versioning import StorageBackend, VersionedKvStore
    return VersionedKvStore(loc.path, StorageBackend[loc.backend])


# -- refs and commits ---------------------------------------------------------------------


def resolve(store, ref: str) -> str:
    """The commit id a ref expression names (``main``, ``HEAD~2``, ``a1b2c3``...)."""
    from prollytree.versioning.refs import resolve as _resolve
    return _resolve(store.backend, ref)


def read_commit(store, cid: str):
    return store.backend.read_commit(cid)


def ref_labels(store) -> dict[str, list[str]]:
    """{commit id: ["HEAD -> main", "feature", "tag: v1"]} for decorating logs."""
    from prollytree.versioning.backend import HEADS, TAGS
    b = store.backend
    labels: dict[str, list[str]] = {}
    cur = store.current_branch()
    head = b.head_commit()
    for name, cid in sorted(b.list_refs(HEADS).items()):
        labels.setdefault(cid, []).append(f"HEAD -> {name}" if name == cur else name)
    for name, cid in sorted(b.list_refs(TAGS).items()):
        labels.setdefault(cid, []).append(f"tag: {name}")
    if cur is None and head is not None:
        labels.setdefault(head, []).insert(0, "HEAD")
    for cid, names in labels.items():  # "HEAD -> x" first
        names.sort(key=lambda n: (not n.startswith("HEAD"), n.startswith("tag: "), n))
    return labels


def commit_changes(store, cid: str) -> list:
    """The KvDiff list a commit introduced (against its first parent; a root commit
    against the empty tree)."""
    from prollytree.versioning import KvDiff
    c = read_commit(store, cid)
    if c.parents:
        return store.diff(c.parents[0], cid)
    return [KvDiff(k, None, v) for k, v in store.iter_items_at(cid)]


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


def value_at(store, cid: str, key: bytes) -> bytes | None:
    for k, v in store.iter_items_at(cid, key, key + b"\x00"):
        if k == key:
            return v
    return None


def prefix_end(prefix: bytes) -> bytes | None:
    from prollytree.tree import prefix_end as _pe
    return _pe(prefix)


# -- the working view: current commit plus staged changes ------------------------------------


def working_items(store, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of the current view (the current commit with staged changes applied)
    whose key starts with ``prefix``, in key order, streaming the committed part."""
    start = prefix or None
    end = prefix_end(prefix) if prefix else None
    staged = {k: st for k, st in store.status() if k.startswith(prefix)}
    overlay = sorted(staged)
    committed = store.iter_items_at("HEAD", start, end)
    i = 0
    for k, v in committed:
        while i < len(overlay) and overlay[i] < k:
            ok = overlay[i]
            i += 1
            if staged[ok] != "deleted":
                nv = store.get(ok)
                if nv is not None:
                    yield ok, nv
        if i < len(overlay) and overlay[i] == k:
            i += 1
            if staged[k] == "deleted":
                continue
            nv = store.get(k)
            if nv is not None:
                yield k, nv
            continue
        yield k, v
    while i < len(overlay):
        ok = overlay[i]
        i += 1
        if staged[ok] != "deleted":
            nv = store.get(ok)
            if nv is not None:
                yield ok, nv


def items_at(store, ref: str | None, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
    if ref is None:
        return working_items(store, prefix)
    cid = resolve(store, ref)
    return store.iter_items_at(cid, prefix or None, prefix_end(prefix) if prefix else None)


# -- trees at a ref: stats, proofs, graph ---------------------------------------------------


def tree_at(store, cid: str):
    """A read-only view (ProllyTree) of the tree of commit ``cid``."""
    from prollytree.tree import ProllyTree
    b = store.backend
    return ProllyTree.from_root(read_commit(store, cid).root, b.store, b.config)


def node_loader(store):
    """``load(address) -> Node`` through the store's node cache."""
    return store.backend.cache.load


# -- revert ----------------------------------------------------------------------------------


def revert_plan(store, cid: str) -> tuple[list, list]:
    """(edits, conflicts) to undo commit ``cid`` on top of the current view.

    For each key the commit changed from ``old`` to ``new``, the current value must still
    be ``new`` (then the edit restores ``old``: a re-insert, or a delete where the commit
    added the key); a key changed again since is a conflict (key, old, new, current)."""
    edits, conflicts = [], []
    for d in commit_changes(store, cid):
        current = store.get(d.key)
        if current == d.old_value:
            continue  # already as before the commit
        if current != d.new_value:
            conflicts.append((d.key, d.old_value, d.new_value, current))
            continue
        edits.append((d.key, d.old_value))
    return edits, conflicts


# -- fsck and gc -----------------------------------------------------------------------------


def all_ref_tips(store) -> dict[str, str]:
    """{label: commit id} for every branch, tag and a detached HEAD."""
    from prollytree.versioning.backend import HEADS, TAGS
    b = store.backend
    tips = {f"branch {n}": c for n, c in b.list_refs(HEADS).items()}
    tips.update({f"tag {n}": c for n, c in b.list_refs(TAGS).items()})
    if store.current_branch() is None:
        head = b.head_commit()
        if head:
            tips["HEAD"] = head
    return tips


def fsck(store, progress=None) -> dict[str, Any]:
    """Walk every commit reachable from every branch, tag and HEAD, and every node of
    their trees (each distinct node once), checking that each node is present, hashes to
    its address and decodes. Returns a report dict."""
    import hashlib

    from prollytree.errors import ProllyError
    from prollytree.tree.codec import decode

    b = store.backend
    problems: list[dict] = []
    tips = all_ref_tips(store)
    commits: list = []
    seen_commits: set = set()
    stack = list(dict.fromkeys(tips.values()))
    origin = {}
    for label, cid in tips.items():
        origin.setdefault(cid, label)
    while stack:
        cid = stack.pop()
        if cid in seen_commits:
            continue
        seen_commits.add(cid)
        try:
            c = b.read_commit(cid)
        except (ProllyError, ValueError, KeyError) as e:
            problems.append({"kind": "missing-commit", "object": cid,
                             "reached_from": origin.get(cid, ""), "detail": str(e)})
            continue
        commits.append(c)
        for p in c.parents:
            origin.setdefault(p, origin.get(cid, ""))
            stack.append(p)
    store_ = b.store
    seen: set = set()
    roots = 0
    nodes = 0
    nbytes = 0
    for c in commits:
        if c.root in seen:
            continue
        roots += 1
        todo = [c.root]
        while todo:
            addr = todo.pop()
            if addr in seen:
                continue
            seen.add(addr)
            nodes += 1
            where = {"commit": c.id, "reached_from": origin.get(c.id, "")}
            try:
                data = store_.get(addr)
            except (ProllyError, ValueError, KeyError, OSError) as e:
                problems.append({"kind": "unreadable-node", "object": addr.hex(),
                                 "detail": str(e), **where})
                continue
            if data is None:
                if addr == _empty_root():
                    continue  # the canonical empty tree need not be stored
                problems.append({"kind": "missing-node", "object": addr.hex(), **where})
                continue
            nbytes += len(data)
            if hashlib.sha256(data).digest() != addr:
                problems.append({"kind": "damaged-node", "object": addr.hex(),
                                 "detail": "content does not hash to its address", **where})
                continue
            try:
                node = decode(data, addr)
            except (ProllyError, ValueError) as e:
                problems.append({"kind": "damaged-node", "object": addr.hex(),
                                 "detail": str(e), **where})
                continue
            if node.level:
                todo.extend(node.vals)
            if progress is not None:
                progress(1)
    return {"ok": not problems, "refs": len(tips), "commits": len(commits), "trees": roots,
            "nodes": nodes, "bytes": nbytes, "problems": problems}


def _empty_root() -> bytes:
    from prollytree.tree import EMPTY_ROOT
    return EMPTY_ROOT


def reachable(store, progress=None) -> tuple[set, set]:
    """(commit ids, node addresses) reachable from every branch, tag and HEAD."""
    b = store.backend
    load = b.cache.load
    cids = set(c.id for c in b.history.walk(all_ref_tips(store).values()))
    live: set = set()
    for cid in cids:
        todo = [b.read_commit(cid).root]
        while todo:
            addr = todo.pop()
            if addr in live:
                continue
            live.add(addr)
            node = load(addr)
            if progress is not None:
                progress(1)
            if node.level > 1:
                todo.extend(node.vals)
            elif node.level == 1:
                live.update(node.vals)
    return cids, live


def gc(store, dry_run: bool = False, progress=None) -> dict[str, Any]:
    """Remove what no branch, tag or HEAD reaches (File and RocksDB backends): tree nodes
    and commit records. On the Git backend nodes are Git objects whose lifetime Git
    manages: the unreachable ones are counted, not removed. Runs under the dataset's
    exclusive lock, so no commit can add nodes between the walk and the removal."""
    b = store.backend
    with b.lock.exclusive():
        return _gc_locked(store, dry_run, progress)


def _gc_locked(store, dry_run: bool, progress) -> dict[str, Any]:
    import msgpack

    cids, live = reachable(store, progress)
    b = store.backend
    st = b.store
    kind = store.storage_backend().name
    if kind == "Git":
        dead = sum(1 for a in st.addresses() if a not in live)
        return {"backend": kind, "commits": len(cids), "live_nodes": len(live),
                "unreachable_nodes": dead, "unreachable_commits": 0, "removed": 0,
                "removed_commits": 0, "dry_run": dry_run, "managed_by_git": True}
    from prollytree.versioning.store_backend import MAGIC
    dead_nodes: list = []
    dead_commits: list = []
    for addr in list(st.addresses()):
        if progress is not None:
            progress(1)
        if addr in live:
            continue
        data = st.get(addr)
        if data is None:
            continue
        try:
            obj = msgpack.unpackb(data, raw=False)
        except Exception:  # not ours to judge: keep it
            continue
        if isinstance(obj, list) and obj and obj[0] == MAGIC:
            if addr[:20].hex() not in cids:
                dead_commits.append(addr)
        elif isinstance(obj, list) and obj and type(obj[0]) is int:
            dead_nodes.append(addr)
    removed = removed_commits = 0
    if not dry_run:
        if dead_nodes:
            removed = st.remove(dead_nodes)
        if dead_commits:
            removed_commits = st.remove(dead_commits)
        st.flush()
    return {"backend": kind, "commits": len(cids), "live_nodes": len(live),
            "unreachable_nodes": len(dead_nodes), "unreachable_commits": len(dead_commits),
            "removed": removed, "removed_commits": removed_commits, "dry_run": dry_run,
            "managed_by_git": False}
