"""Replication between node stores: send only the nodes the destination lacks.

Two entry points:

- :func:`replicate_nodes` copies the trees under given root addresses from one
  :class:`~prollytree.storage.NodeStore` to another (memory, file, RocksDB, LMDB, S3, a
  Git repository's node store, in any combination).
- :func:`replicate` copies a branch of a store-backed dataset (the File, RocksDB and
  InMemory backends of :class:`~prollytree.versioning.VersionedKvStore`, and any dataset
  kept in a NodeStore with their layout, such as one in S3): its trees, root sets and
  commit records, then moves the destination's branch ref by compare-and-swap.

The walk goes down from the roots and *prunes* at every address the destination already
has (one batched existence check per tree level). That is sound because of the write
order every writer follows, this module included: a node is written only after all of its
children are durable, a root set after its trees, a commit after its root set and its
parents. So a node present at the destination means its whole subtree is there, and a
commit present means its whole history is. An interrupted transfer leaves only complete
subtrees behind; the next run prunes at them and sends only the rest. The branch ref
moves last, so a reader of the destination never sees a commit whose data is missing.

Every node is checked against its SHA-256 address before it is written: a damaged source
raises :class:`~prollytree.errors.CorruptNodeError` and nothing damaged reaches the
destination.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import msgpack

# one NonFastForwardError for Git remotes and replication (a RemoteError, a ValueError)
from ..errors import CorruptNodeError, MissingNodeError, NonFastForwardError, UnknownRefError
from ..storage import NodeStore
from ..tree.codec import EMPTY_NODE_BYTES, EMPTY_ROOT, Envelope, decode
from ..tree.values import chunk_refs
from ..versioning.roots import RootSet

__all__ = ["ReplicationStats", "NonFastForwardError", "replicate_nodes", "replicate",
           "COMMIT_MAGIC", "HEADS"]

COMMIT_MAGIC = b"prollytree-commit"
HEADS = "refs/heads/"
HEAD_REF = "HEAD"
CONFIG_REF = "versioning/config"
#: Addresses checked / nodes fetched per request batch.
BATCH = 512
#: At most this many destination commits lend their trees as the comparison base.
BASE_COMMITS = 8


@dataclass
class ReplicationStats:
    """What one replication sent. ``nodes``/``bytes`` count every record written (tree
    nodes, root sets, commits); ``skipped`` counts addresses the walk found already at
    the destination (each prunes a whole subtree or history)."""

    nodes: int = 0
    bytes: int = 0
    skipped: int = 0
    commits: int = 0
    root_sets: int = 0
    seconds: float = 0.0
    ref_moved: bool = False
    by_level: dict[int, int] = field(default_factory=dict)

    def add(self, other: "ReplicationStats") -> None:
        self.nodes += other.nodes
        self.bytes += other.bytes
        self.skipped += other.skipped
        for k, v in other.by_level.items():
            self.by_level[k] = self.by_level.get(k, 0) + v


def _check_store(store: object, what: str) -> NodeStore:
    if not isinstance(store, NodeStore):
        raise TypeError(f"{what} must be a NodeStore, not {type(store).__name__}")
    return store


def _chunks(items: list, n: int = BATCH) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _has_many(store: NodeStore, addresses: list[bytes]) -> set[bytes]:
    """The addresses ``store`` holds: one batched request where the store offers one
    (``has_many``: S3 checks in parallel), else one ``has`` each (cheap on local stores)."""
    batched = getattr(store, "has_many", None)
    if batched is not None:
        return set(batched(addresses))
    return {a for a in addresses if store.has(a)}


def _fetch(source: NodeStore, addresses: list[bytes]) -> dict[bytes, bytes]:
    """The verified bytes of every address; MissingNodeError / CorruptNodeError else."""
    got = source.get_many(addresses)
    for a in addresses:
        data = got.get(a)
        if data is None:
            if a == EMPTY_ROOT:           # the empty tree's root is implied, not stored
                got[a] = EMPTY_NODE_BYTES
                continue
            raise MissingNodeError(a, "the source store lacks it")
        if hashlib.sha256(data).digest() != a:
            raise CorruptNodeError(a, "the source's bytes do not hash to the address")
    return got


def _check_roots(roots: Iterable[bytes], what: str) -> list[bytes]:
    out = []
    for r in roots:
        if not isinstance(r, bytes):
            raise TypeError(f"{what} must be bytes, not {type(r).__name__}")
        if len(r) != 32:
            raise ValueError(f"{what} must be 32 bytes, got {len(r)}")
        out.append(r)
    return list(dict.fromkeys(out))


def _children_hint(source: NodeStore, addresses: list[bytes]) -> dict[bytes, object]:
    """Decoded nodes of the base trees (hints only: absent or undecodable ones are left
    out; nothing read here is ever written)."""
    out = {}
    for batch in _chunks(addresses):
        for a, data in source.get_many(batch).items():
            try:
                out[a] = decode(data, a)
            except CorruptNodeError:
                continue
    return out


def _copy_value_chunks(source: NodeStore, destination: NodeStore, leaf,
                       stats: "ReplicationStats") -> None:
    """Copy the chunks and chunk indexes of ``leaf``'s chunked values that
    ``destination`` lacks (before the leaf itself: children first), 64 at a time."""
    refs: list = []
    for v in leaf.vals:
        if type(v) is Envelope:
            refs += chunk_refs(source.get, v)
    refs = list(dict.fromkeys(refs))
    wrote = False
    for batch in _chunks(refs, 64):
        present = _has_many(destination, batch)
        need = [a for a in batch if a not in present]
        if need:
            got = _fetch(source, need)
            destination.put_many([(a, got[a]) for a in need])
            stats.nodes += len(need)
            stats.bytes += sum(len(got[a]) for a in need)
            wrote = True
    if wrote:
        destination.flush()  # durable before the leaf naming them


def replicate_nodes(source: NodeStore, destination: NodeStore, roots: Iterable[bytes], *,
                    base_roots: Iterable[bytes] = ()) -> ReplicationStats:
    """Copy the trees under ``roots`` from ``source`` to ``destination``, sending only
    the nodes the destination lacks.

    ``base_roots``: roots of trees the destination is known to hold completely and the
    source can read too (e.g. the trees of the destination's current commit). The walk
    then compares the new trees with them level by level at the source and prunes every
    shared subtree without asking the destination; only nodes that differ from the base
    are checked at the destination. Without a base, every child of a differing node is
    checked there (one batched existence check per level).

    Cost: per tree level, one batched existence check and one batched fetch of the nodes
    that differ: O(changed nodes) requests and bytes (times the fanout in existence
    checks when there is no base), not O(tree size). Leaves are written as they are
    found; internal nodes are held until their children are written and flushed, then
    written level by level, lowest first, so that an interruption leaves only complete
    subtrees at the destination. Raises MissingNodeError when the source lacks a node,
    CorruptNodeError when a node does not match its address.
    """
    _check_store(source, "source")
    _check_store(destination, "destination")
    roots = _check_roots(roots, "root")
    base = _check_roots(base_roots, "base root")
    t0 = time.perf_counter()
    stats = ReplicationStats()
    new_at: dict[int, list[bytes]] = {}          # level -> new-side addresses to visit
    old_at: dict[int, set[bytes]] = {}           # level -> base-side addresses
    prefetched: dict[bytes, bytes] = {}
    for batch in _chunks(roots):
        got = _fetch(source, batch)
        for a in batch:
            prefetched[a] = got[a]
            new_at.setdefault(decode(got[a], a).level, []).append(a)
    for a, node in _children_hint(source, base).items():
        old_at.setdefault(node.level, set()).add(a)
    seen: set[bytes] = set(roots)
    held: dict[int, list[tuple[bytes, bytes]]] = {}   # level -> internal nodes to write
    level = max(new_at, default=-1)
    while level >= 0:
        old = old_at.pop(level, set())
        todo = new_at.pop(level, [])
        shared = old.intersection(todo)
        stats.skipped += len(shared)
        todo = [a for a in todo if a not in shared]
        # the base's differing nodes: their children tell which new children are shared
        if level > 0 and old:
            hints = _children_hint(source, [a for a in old if a not in shared])
            below = old_at.setdefault(level - 1, set())
            for node in hints.values():
                if node.level == level:
                    below.update(node.vals)
        for batch in _chunks(todo):
            present = _has_many(destination, batch)
            stats.skipped += len(present)
            missing = [a for a in batch if a not in present]
            if not missing:
                continue
            need = [a for a in missing if a not in prefetched]
            got = _fetch(source, need) if need else {}
            leaves = []
            for a in missing:
                data = prefetched.pop(a, None) or got[a]
                node = decode(data, a)
                if node.level != level:
                    raise CorruptNodeError(a, f"a level-{node.level} node where the tree "
                                              f"has level {level}")
                if level == 0:
                    leaves.append((a, data))
                    if getattr(node, "env", None) is not None:
                        _copy_value_chunks(source, destination, node, stats)
                else:
                    held.setdefault(level, []).append((a, data))
                    nxt = new_at.setdefault(level - 1, [])
                    for child in node.vals:
                        if child not in seen:
                            seen.add(child)
                            nxt.append(child)
                stats.by_level[level] = stats.by_level.get(level, 0) + 1
            if leaves:
                destination.put_many(leaves)
                stats.nodes += len(leaves)
                stats.bytes += sum(len(d) for _, d in leaves)
        level -= 1
    for lv in sorted(held):
        destination.flush()                # children durable before their parents
        for batch in _chunks(held[lv]):
            destination.put_many(batch)
            stats.nodes += len(batch)
            stats.bytes += sum(len(d) for _, d in batch)
    destination.flush()
    stats.seconds = time.perf_counter() - t0
    return stats


# -- datasets: commits and refs ----------------------------------------------------------------


def _check_branch(branch: object) -> str:
    if not isinstance(branch, str):
        raise TypeError(f"branch must be a str, not {type(branch).__name__}")
    if not branch or branch.startswith("/") or ".." in branch or any(
            ord(c) < 0x20 for c in branch):
        raise ValueError(f"bad branch name {branch!r}")
    return branch


class _Commit:
    __slots__ = ("address", "data", "version", "tree_ref", "parents")

    def __init__(self, address: bytes, data: bytes) -> None:
        try:
            rec = msgpack.unpackb(data, raw=False)
            ok = (isinstance(rec, list) and len(rec) >= 9 and rec[0] == COMMIT_MAGIC
                  and rec[1] in (1, 2) and isinstance(rec[2], bytes) and len(rec[2]) == 32
                  and isinstance(rec[3], list)
                  and all(isinstance(p, bytes) and len(p) == 32 for p in rec[3]))
        except Exception as e:  # msgpack raises several unrelated types
            raise CorruptNodeError(address, f"not a commit record ({e})") from None
        if not ok:
            raise CorruptNodeError(address, "not a commit record")
        self.address = address
        self.data = data
        self.version = rec[1]
        self.tree_ref = rec[2]     # v1: the default tree's root; v2: the root set address
        self.parents = rec[3]


def _commits_to_send(source: NodeStore, destination: NodeStore,
                     tip: bytes) -> tuple[list[_Commit], list[bytes]]:
    """The commits reachable from ``tip`` that the destination lacks, parents before
    children; and the commits found present there, where the walk stopped."""
    found: dict[bytes, _Commit] = {}
    boundary: list[bytes] = []
    frontier = [tip]
    while frontier:
        frontier = list(dict.fromkeys(a for a in frontier if a not in found))
        present = set()
        for batch in _chunks(frontier):
            present |= _has_many(destination, batch)
        boundary.extend(a for a in frontier if a in present)
        missing = [a for a in frontier if a not in present]
        nxt = []
        for batch in _chunks(missing):
            got = _fetch(source, batch)
            for a in batch:
                c = _Commit(a, got[a])
                found[a] = c
                nxt.extend(c.parents)
        frontier = nxt
    # topological order, parents first (iterative DFS post-order)
    order: list[_Commit] = []
    done: set[bytes] = set()
    for start in found:
        stack = [(start, False)]
        while stack:
            a, expanded = stack.pop()
            if a in done or a not in found:
                continue
            if expanded:
                done.add(a)
                order.append(found[a])
                continue
            stack.append((a, True))
            stack.extend((p, False) for p in found[a].parents if p not in done)
    return order, list(dict.fromkeys(boundary))


def _tree_roots(store: NodeStore, commits: list[bytes]) -> list[bytes]:
    """Every tree root of the given commits as ``store`` has them (hints: commits or root
    sets it lacks or cannot decode are left out)."""
    roots: list[bytes] = []
    rs_addrs = []
    for a, data in store.get_many(commits).items():
        try:
            c = _Commit(a, data)
        except CorruptNodeError:
            continue
        if c.version == 1:
            roots.append(c.tree_ref)
        else:
            rs_addrs.append(c.tree_ref)
    for data in store.get_many(rs_addrs).values():
        try:
            roots.extend(RootSet.decode(data).roots())
        except ValueError:
            continue
    return roots


def _generations(commits: list[_Commit]) -> list[list[_Commit]]:
    """``commits`` (parents first) grouped so that every commit's parents among them are
    in an earlier group: group = 1 + the deepest group of its parents."""
    depth: dict[bytes, int] = {}
    groups: list[list[_Commit]] = []
    for c in commits:
        d = max((depth[p] + 1 for p in c.parents if p in depth), default=0)
        depth[c.address] = d
        if d == len(groups):
            groups.append([])
        groups[d].append(c)
    return groups


def is_ancestor(store: NodeStore, ancestor: bytes, tip: bytes) -> bool:
    """Whether commit ``ancestor`` (a 32-byte address) is reachable from ``tip`` through
    parents in ``store`` (breadth-first, batched; stops as soon as it is found)."""
    seen = {tip}
    frontier = [tip]
    while frontier:
        if ancestor in frontier:
            return True
        nxt = []
        for batch in _chunks(frontier):
            got = store.get_many(batch)
            for a in batch:
                if a in got:
                    for p in _Commit(a, got[a]).parents:
                        if p not in seen:
                            seen.add(p)
                            nxt.append(p)
        frontier = nxt
    return False


def replicate(source: NodeStore, destination: NodeStore, branch: str = "main", *,
              force: bool = False, destination_ref: str | None = None) -> ReplicationStats:
    """Copy branch ``branch`` of the dataset in ``source`` to ``destination`` and move
    the destination's ``refs/heads/<branch>`` (or ``destination_ref``, a full ref name
    such as ``refs/remotes/origin/main``) to the source's tip.

    Sends, in this order, only what the destination lacks: the tree nodes of every new
    commit (all named trees of version-2 commits), then their root sets, then the commit
    records oldest first; each is verified against its address. The branch ref then moves
    by compare-and-swap. A fresh destination also gets ``HEAD`` (pointing at the branch)
    and the dataset's tree config, so that it opens as a dataset.

    Raises UnknownRefError when the source has no such branch, NonFastForwardError when
    the destination's branch is not an ancestor of the source's tip (unless ``force``) or
    moved during the transfer. Interrupting is safe: run it again to resume.
    """
    _check_store(source, "source")
    _check_store(destination, "destination")
    for store, what in ((source, "source"), (destination, "destination")):
        if store.kind == "git":
            # a Git-backed dataset's history is Git commits, not commit records
            raise ValueError(f"the {what} is a Git repository's node store: a Git-backed "
                             f"dataset syncs through Git remotes (VersionedKvStore.push/"
                             f"pull/clone); replicate_nodes copies its trees")
    _check_branch(branch)
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, not {type(force).__name__}")
    if destination_ref is not None:
        if not isinstance(destination_ref, str):
            raise TypeError(f"destination_ref must be a str, "
                            f"not {type(destination_ref).__name__}")
        if not destination_ref.startswith("refs/") or destination_ref.endswith("/"):
            raise ValueError(f"destination_ref must be a full ref name under refs/, "
                             f"got {destination_ref!r}")
        _check_branch(destination_ref[len("refs/"):])
    t0 = time.perf_counter()
    ref = HEADS + branch
    tip = source.get_ref(ref)
    if tip is None or len(tip) != 32:
        raise UnknownRefError(f"the source has no branch {branch!r}")
    dest_ref = destination_ref or ref
    dest_tip = destination.get_ref(dest_ref)
    stats = ReplicationStats()
    if dest_tip == tip:
        stats.seconds = time.perf_counter() - t0
        return stats
    if dest_tip is not None and not force and not is_ancestor(source, dest_tip, tip):
        raise NonFastForwardError(
            f"{dest_ref} at the destination ({dest_tip[:20].hex()}) is not an "
            f"ancestor of the source's tip ({tip[:20].hex()}); use force=True to replace it")

    commits, boundary = _commits_to_send(source, destination, tip)
    stats.skipped += len(boundary)
    # the trees of the commits the destination has (read at the source) are the base the
    # new trees are compared with, so that shared subtrees cost no remote check
    base = _tree_roots(source, boundary[:BASE_COMMITS])
    # trees first: every root of every new commit
    roots: list[bytes] = []
    root_sets: dict[bytes, bytes] = {}
    for c in commits:
        if c.version == 1:
            roots.append(c.tree_ref)
        else:
            root_sets[c.tree_ref] = b""
    if root_sets:
        want = list(root_sets)
        present = _has_many(destination, want)
        stats.skipped += len(present)
        for a in want:
            if a in present:
                del root_sets[a]          # its trees are complete there too
        for batch in _chunks(list(root_sets)):
            got = _fetch(source, batch)
            for a in batch:
                data = got[a]
                try:
                    rs = RootSet.decode(data)
                except ValueError as e:
                    raise CorruptNodeError(a, f"not a root set ({e})") from None
                root_sets[a] = data
                roots.extend(rs.roots())
    stats.add(replicate_nodes(source, destination, roots, base_roots=base))
    # then root sets, then commits oldest first
    if root_sets:
        items = list(root_sets.items())
        destination.put_many(items)
        destination.flush()
        stats.nodes += len(items)
        stats.bytes += sum(len(d) for _, d in items)
        stats.root_sets = len(items)
    for generation in _generations(commits):
        # a store may write one put_many's items in any order (S3: in parallel), so a
        # commit goes in a later call than its parents, with a flush between
        for batch in _chunks(generation):
            destination.put_many([(c.address, c.data) for c in batch])
            stats.nodes += len(batch)
            stats.bytes += sum(len(c.data) for c in batch)
        destination.flush()
    stats.commits = len(commits)
    # a fresh destination: make it open as a dataset on this branch with the same config
    config = source.get_ref(CONFIG_REF)
    if config is not None and destination.get_ref(CONFIG_REF) is None:
        destination.set_ref(CONFIG_REF, config, expected=None)
    if destination.get_ref(HEAD_REF) is None:
        destination.set_ref(HEAD_REF, f"ref: {ref}".encode(), expected=None)
    # the ref moves last, by compare-and-swap
    while not destination.set_ref(dest_ref, tip, expected=dest_tip):
        now = destination.get_ref(dest_ref)
        if now == tip:
            break
        if not force and (now is None or not is_ancestor(source, now, tip)):
            raise NonFastForwardError(
                f"{dest_ref} at the destination moved to "
                f"{'nothing' if now is None else now[:20].hex()} during the transfer; "
                f"it is not an ancestor of {tip[:20].hex()}")
        dest_tip = now
    destination.flush()
    stats.ref_moved = True
    stats.seconds = time.perf_counter() - t0
    return stats
