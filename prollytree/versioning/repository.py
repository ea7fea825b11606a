"""Repository: the history of one dataset, shared by its working copies.

A :class:`Repository` is the objects (nodes, root sets, commits) and refs (branches,
tags) of one dataset, through its history backend: ref resolution, log, root sets at any
commit, diff, merge planning, fsck and gc. It has no HEAD and no staging: those belong
to a :class:`~.workspace.Workspace` (one per working copy). Reads are safe from any
thread; writes (:meth:`write_commit`, branch and tag changes) are made under the
dataset's exclusive lock by the caller.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable, Iterator

from ..errors import ProllyError, StoreError, UnknownRefError
from ..tree import EMPTY_ROOT, ProllyTree, Snapshot
from ..tree import walk
from . import refs as _refs
from .backend import HEADS, TAGS, HistoryBackend
from .objects import Commit, local_tz_offset
from .read_only import ReadOnlyNodes
from .rootmerge import TreeMerge, plan_merge
from .roots import DEFAULT_TREE, RootSet, check_tree_name
from .types import KvDiff

_sha256 = hashlib.sha256


class Repository:
    """Commits, refs and named trees of one dataset (see the module docstring)."""

    def __init__(self, backend: HistoryBackend) -> None:
        self.backend = backend
        self.lock = backend.lock
        self.cache = backend.cache

    # -- commits and refs ------------------------------------------------------------------

    def resolve(self, ref: object) -> str:
        """The 40-hex commit id ``ref`` names (branch, tag, HEAD, id prefix, ``~N``/``^N``
        suffixes); UnknownRefError (a ValueError) otherwise."""
        return _refs.resolve(self.backend, ref)

    def read_commit(self, cid: str) -> Commit:
        return self.backend.read_commit(cid)

    def branch_commit(self, name: str) -> str | None:
        """The commit branch ``name`` points at, None when there is no such branch."""
        return self.backend.get_ref(HEADS + name)

    def list_branches(self) -> list[str]:
        """Every branch name, sorted."""
        return sorted(self.backend.list_refs(HEADS))

    def list_tags(self) -> list[str]:
        """Every tag name, sorted."""
        return sorted(self.backend.list_refs(TAGS))

    def list_refs(self) -> dict[str, str]:
        """Every branch and tag: ``{"refs/heads/<name>" | "refs/tags/<name>": commit
        id}``, sorted by name (annotated tags peeled to their commit)."""
        b = self.backend
        out = {HEADS + n: c for n, c in b.list_refs(HEADS).items()}
        out.update({TAGS + n: c for n, c in b.list_refs(TAGS).items()})
        return dict(sorted(out.items()))

    def ref_tips(self) -> dict[str, str]:
        """{label: commit id} of every branch and tag."""
        b = self.backend
        tips = {f"branch {n}": c for n, c in sorted(b.list_refs(HEADS).items())}
        tips.update({f"tag {n}": c for n, c in sorted(b.list_refs(TAGS).items())})
        return tips

    def create_branch_ref(self, name: str, cid: str | None) -> str:
        """Create branch ``name`` at ``cid`` (caller holds the exclusive lock)."""
        if cid is None:
            raise UnknownRefError("cannot branch: HEAD has no commit yet")
        b = self.backend
        if b.get_ref(HEADS + name) is not None or not b.cas_ref(HEADS + name, cid, None):
            raise ValueError(f"branch {name!r} already exists")
        return cid

    def delete_branch_ref(self, name: str) -> str:
        """Delete branch ``name``; returns the commit it pointed at (caller holds the
        exclusive lock)."""
        b = self.backend
        cur = b.get_ref(HEADS + name)
        if cur is None:
            raise UnknownRefError(f"unknown branch {name!r}")
        if not b.cas_ref(HEADS + name, None, cur):
            raise StoreError(f"branch {name!r} moved concurrently; retry")
        return cur

    def tag(self, name: str, ref: str = "HEAD") -> str:
        """Create tag ``name`` at ``ref``; returns the commit id tagged."""
        _refs.check_branch_name(name, "tag")
        b = self.backend
        with b.lock.exclusive():
            cid = self.resolve(ref)
            if not b.cas_ref(TAGS + name, cid, None):
                raise ValueError(f"tag {name!r} already exists")
        return cid

    def write_commit(self, branch: str, tip: str | None, trees: RootSet,
                     parents: list[str], message: str) -> str:
        """Record a commit of ``trees`` and move ``branch`` from ``tip`` to it by
        compare-and-swap (caller holds the exclusive lock); returns its id."""
        b = self.backend
        author, committer = b.default_identity()
        now = time.time()
        try:
            cid = b.write_commit(trees, parents, message, author, committer, int(now),
                                 local_tz_offset(now))
            if not b.cas_ref(HEADS + branch, cid, tip):
                raise StoreError(f"branch {branch!r} was moved by another writer during the "
                                 f"commit; nothing was committed, retry")
        finally:
            discard = getattr(b.store, "discard_pending", None)
            if discard is not None:
                discard()
        b.after_branch_update(branch, tip, cid)
        return cid

    def fast_forward(self, branch: str, old: str, new: str) -> None:
        """Move ``branch`` from ``old`` to ``new`` (caller holds the exclusive lock)."""
        b = self.backend
        if not b.cas_ref(HEADS + branch, new, old):
            raise StoreError(f"branch {branch!r} moved concurrently; retry")
        b.after_branch_update(branch, old, new)

    # -- history -------------------------------------------------------------------------

    def log(self, start: str | None, limit: int | None = None) -> list[dict]:
        """The history from commit id ``start`` (None: empty), newest first, at most
        ``limit`` entries, as dicts (see ``Commit.as_dict``)."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int, not {limit!r}")
        if start is None:
            return []
        out = []
        for c in self.backend.history.walk([start]):
            if limit is not None and len(out) >= limit:
                break
            out.append(c.as_dict())
        return out

    def commit_info(self, ref: str = "HEAD") -> dict:
        """The commit ``ref`` names, as a log entry plus ``root`` (the default tree's
        32-byte root address)."""
        c = self.backend.read_commit(self.resolve(ref))
        d = c.as_dict()
        d["root"] = c.root
        return d

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two refs (None for unrelated histories)."""
        return self.backend.history.merge_base(self.resolve(a), self.resolve(b))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.backend.history.is_ancestor(ancestor, descendant)

    def commits_for_key(self, start: str | None, key: bytes, tree: str = DEFAULT_TREE
                        ) -> list[dict]:
        """Commits from ``start`` back (newest first, as in :meth:`log`) in which ``key``'s value in tree
        ``tree`` changed: it differs from the value in every parent (for a root commit:
        the key exists)."""
        check_tree_name(tree)
        if start is None:
            return []
        b = self.backend
        values: dict[bytes | None, bytes | None] = {None: None}

        def value(root: bytes | None) -> bytes | None:
            if root not in values:
                values[root] = self.snapshot(root).get(key)
            return values[root]

        out = []
        for c in b.history.walk([start]):
            v = value(c.trees.root_of(tree))
            if c.parents:
                if all(value(b.read_commit(p).trees.root_of(tree)) != v for p in c.parents):
                    out.append(c.as_dict())
            elif v is not None:
                out.append(c.as_dict())
        return out

    def snapshot(self, root: bytes, config=None) -> Snapshot:
        """The tree at ``root`` in this repository's store (see :class:`Snapshot`)."""
        return Snapshot(self.cache, root, config or self.backend.config)

    # -- named trees at any commit ----------------------------------------------------------

    def trees_at(self, ref: str = "HEAD") -> RootSet:
        """The root set of the commit ``ref`` names."""
        return self.backend.read_commit(self.resolve(ref)).trees

    def tree_root(self, name: str = DEFAULT_TREE, ref: str = "HEAD") -> bytes | None:
        """Root address of tree ``name`` at ``ref``; None when it has no such tree."""
        check_tree_name(name)
        return self.trees_at(ref).root_of(name)

    def tree_at(self, ref: str = "HEAD", name: str = DEFAULT_TREE) -> ProllyTree:
        """A read-only ProllyTree over tree ``name`` at ``ref`` (empty when absent)."""
        check_tree_name(name)
        entry = self.trees_at(ref).get(name)
        b = self.backend
        root, config = (EMPTY_ROOT, b.config) if entry is None else entry
        return ProllyTree.from_root(root, ReadOnlyNodes(b.store), config)

    def get_at(self, ref: str, key: bytes, tree: str = DEFAULT_TREE) -> bytes | None:
        root = self.tree_root(tree, ref)
        if root is None:
            return None
        return self.snapshot(root).get(key)

    def iter_items_at(self, ref: str, start: bytes | None = None, end: bytes | None = None,
                      tree: str = DEFAULT_TREE, reverse: bool = False
                      ) -> Iterator[tuple[bytes, bytes]]:
        root = self.tree_root(tree, ref)
        if root is None:
            return iter(())
        return self.snapshot(root).items(start, end, reverse)

    def diff(self, from_ref: str, to_ref: str, tree: str = DEFAULT_TREE) -> list[KvDiff]:
        """Keys of tree ``tree`` added, removed or modified between two refs, sorted by
        key (a tree absent at a ref diffs as empty); cost grows with the differences."""
        a = self.tree_root(tree, from_ref) or EMPTY_ROOT
        c = self.tree_root(tree, to_ref) or EMPTY_ROOT
        return [KvDiff(k, o, n) for k, o, n in self.snapshot(a).diff(self.snapshot(c))]

    def diff_trees(self, from_ref: str, to_ref: str) -> dict[str, list[KvDiff]]:
        """:meth:`diff` of every tree whose root differs between the two refs."""
        a, c = self.trees_at(from_ref), self.trees_at(to_ref)
        out = {}
        for name in sorted(set(a) | set(c), key=lambda n: n.encode("utf-8")):
            ra, rc = a.root_of(name) or EMPTY_ROOT, c.root_of(name) or EMPTY_ROOT
            if ra != rc:
                out[name] = [KvDiff(k, o, n)
                             for k, o, n in self.snapshot(ra).diff(self.snapshot(rc))]
        return out

    # -- merges ----------------------------------------------------------------------------

    def merge_kind(self, dest: str | None, src: str) -> tuple[str | None, str]:
        """(merge base, kind) of merging commit ``src`` into ``dest``: kind "noop"
        (already merged), "ff" (fast-forward) or "merge"."""
        if dest is None:
            return None, "ff"
        if src == dest:
            return src, "noop"
        base = self.backend.history.merge_base(dest, src)
        if base == src:
            return base, "noop"
        if base == dest:
            return base, "ff"
        return base, "merge"

    def plan(self, base: str | None, dest: str, src: str
             ) -> tuple[RootSet, list[TreeMerge], list]:
        """(destination root set, per-tree merge plans, every conflict) of a three-way
        merge of commit ``src`` into ``dest`` over ``base``."""
        b = self.backend
        base_trees = b.read_commit(base).trees if base else None
        dest_trees = b.read_commit(dest).trees
        plans = plan_merge(self.cache, base_trees, dest_trees, b.read_commit(src).trees)
        return dest_trees, plans, [c for p in plans for c in p.conflicts]

    # -- maintenance -------------------------------------------------------------------------

    def fsck(self, tips: dict[str, str], progress: Callable[[int], None] | None = None
             ) -> dict:
        """Check every commit reachable from ``tips`` ({label: commit id}), and
        every node of their trees (each distinct node once): present, hashing to its
        address (SHA-256), decodable. ``progress(n)`` is called as nodes are checked.

        Returns ``{"ok", "refs", "commits", "trees", "nodes", "bytes", "problems"}``;
        each problem is a dict with ``kind`` ("missing-commit", "missing-node",
        "damaged-node", "unreadable-node"), ``object`` (hex), ``commit``,
        ``reached_from`` (the ref label) and ``detail``. (On Git, Git's own objects are
        ``git fsck``'s job; this checks the dataset's nodes.)"""
        b = self.backend
        store = b.store
        problems: list[dict] = []
        origin: dict[str, str] = {}
        for label, cid in tips.items():
            origin.setdefault(cid, label)
        commits = []
        seen_commits: set = set()
        stack = list(dict.fromkeys(tips.values()))
        while stack:
            cid = stack.pop()
            if cid in seen_commits:
                continue
            seen_commits.add(cid)
            try:
                c = b.read_commit(cid)
            except (ProllyError, ValueError, KeyError) as e:
                problems.append({"kind": "missing-commit", "object": cid, "commit": cid,
                                 "reached_from": origin.get(cid, ""), "detail": str(e)})
                continue
            commits.append(c)
            for p in c.parents:
                origin.setdefault(p, origin.get(cid, ""))
                stack.append(p)
        seen: set = set()
        trees = nodes = nbytes = 0
        for c in commits:
            fresh = [(e.root, e.config) for e in c.trees.values() if e.root not in seen]
            if not fresh:
                continue
            trees += len(fresh)
            report = walk.check(store.get, fresh, seen, progress)
            nodes += report.nodes
            nbytes += report.bytes
            where = {"commit": c.id, "reached_from": origin.get(c.id, "")}
            for p in report.problems:
                problems.append({"kind": p.kind, "object": p.address.hex(),
                                 "detail": p.detail, **where})
        return {"ok": not problems, "refs": len(tips), "commits": len(commits),
                "trees": trees, "nodes": nodes, "bytes": nbytes, "problems": problems}

    def collect_garbage(self, tips: dict[str, str], dry_run: bool = False,
                        progress: Callable[[int], None] | None = None) -> dict:
        """Reclaim what no commit of ``tips`` reaches (caller holds the dataset's
        exclusive lock, so no commit can add nodes between the walk and the removal).

        * File, RocksDB, InMemory: removes the unreachable tree nodes and commit records.
        * Git: nodes are Git objects and **Git's own gc owns their reclamation** (run
          ``git gc``; this method does not, as it would repack the whole repository).
          It counts the nodes the repository's node map names that this dataset's refs
          do not reach, and drops from the node map the entries whose objects ``git
          gc`` already deleted (``map_entries_dropped``).

        ``dry_run`` counts without removing. Returns ``{"backend", "commits",
        "live_nodes", "unreachable_nodes", "unreachable_commits", "removed",
        "removed_commits", "map_entries_dropped", "dry_run", "managed_by_git"}``."""
        b = self.backend
        cids = {c.id for c in b.history.walk(tips.values())}
        live: set = set()
        for cid in cids:
            rs = b.read_commit(cid).trees
            live.add(rs.address())
            walk.reachable(b.cache.load, rs.roots(), live, progress)
        report = b.collect(cids, live, dry_run, progress)
        report.update({"backend": b.name, "commits": len(cids),
                       "live_nodes": len(live), "dry_run": bool(dry_run)})
        return report

    def close(self) -> None:
        self.backend.close()
