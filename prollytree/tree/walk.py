"""The one tree walker: reachability, the full invariant check and shape statistics.

``verify``/``fsck`` of trees and versioned stores, garbage collection and ``stats`` all
walk trees through these functions, so what "reachable" and "intact" mean is written
once:

* :func:`reachable` — addresses of every node under some roots (leaves are not read).
* :func:`check` — every node under some roots, each distinct node once: present, hashing
  to its address (SHA-256), decodable, keys strictly ascending, each child at the level
  below whose first key and pair count are what its parent records, and chunk
  boundaries where the :class:`TreeConfig` puts them (a node ends exactly at the first
  boundary; only the last node of a level may end elsewhere). Damage is reported, never
  raised.
* :func:`shape` — node counts, sizes and depth.

Costs: O(nodes) node reads; :func:`check` hashes each key once more for the boundary
rule.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, NamedTuple

from ..errors import CorruptNodeError, ProllyError
from .chunker import Chunker
from .codec import EMPTY_ROOT, Envelope, Node, decode
from .config import TreeConfig
from .values import check_value, chunk_refs

_sha256 = hashlib.sha256


def reachable(load: Callable[[bytes], Node], roots: Iterable[bytes],
              seen: set | None = None, progress: Callable[[int], None] | None = None,
              raw: Callable[[bytes], bytes | None] | None = None) -> set[bytes]:
    """Addresses of every node reachable from ``roots`` (added to ``seen`` when given).
    Without ``raw``, leaves are not loaded: only internal nodes name children. With
    ``raw`` (stored bytes by address), every leaf is read too, and the chunks and chunk
    indexes of its chunked values (see :mod:`.values`) count as reachable: what garbage
    collection must keep. ``load`` may raise for a missing node (the caller decides what
    that means)."""
    seen = set() if seen is None else seen
    stack = [r for r in roots if r not in seen]
    leaves: list = []
    while stack:
        addr = stack.pop()
        if addr in seen:
            continue
        seen.add(addr)
        node = load(addr)
        if progress is not None:
            progress(1)
        if node.level > 1 or (node.level == 1 and raw is not None):
            stack.extend(v for v in node.vals if v not in seen)
        elif node.level == 1:
            seen.update(node.vals)              # leaves named, not read
        elif getattr(node, "env", None) is not None:
            leaves.append(node)                 # a leaf holding chunked values
    for leaf in leaves:
        for v in leaf.vals:
            if type(v) is Envelope:
                seen.update(chunk_refs(raw, v))
    return seen


class Problem(NamedTuple):
    """One damaged or missing node: ``kind`` is "missing-node", "damaged-node" (bytes
    do not hash to the address or do not decode), "unreadable-node" (the store failed)
    or "invariant" (the node is intact but the tree around it is not well formed)."""

    kind: str
    address: bytes
    root: bytes
    detail: str


class CheckReport(NamedTuple):
    nodes: int          #: distinct nodes checked
    bytes: int          #: their total encoded size
    problems: list      #: Problem tuples


def _boundary_problem(node: Node, config: TreeConfig, rightmost: bool) -> str | None:
    """Why ``node`` does not end where the chunk rule ends nodes (None: it does)."""
    ch = Chunker(config, node.level)
    keys = node.keys
    n = len(keys)
    if n == 0:
        return None
    hits = ch.hits(keys)
    first_cut = None
    for i in hits:
        if i + 1 >= ch.min_size:
            first_cut = i + 1
            break
    if n > ch.max_size:
        return f"holds {n} entries, more than max_chunk_size {ch.max_size}"
    if first_cut is not None and first_cut < n and first_cut <= ch.max_size:
        return f"entry {first_cut - 1} is a chunk boundary but the node goes on to {n}"
    if not rightmost and first_cut != n and n != ch.max_size:
        return "the node ends where the chunk rule sets no boundary"
    return None


def check(raw: Callable[[bytes], bytes | None], roots: Iterable[tuple[bytes, TreeConfig]],
          seen: set | None = None, progress: Callable[[int], None] | None = None
          ) -> CheckReport:
    """Check every node under ``roots`` ((root address, config) pairs); ``raw(address)``
    returns a node's stored bytes or None (it may raise CorruptNodeError or another
    prollytree error: reported as damage). Nodes in ``seen`` are skipped (and checked
    ones are added), so several checks can share the work. Returns a
    :class:`CheckReport`."""
    seen = set() if seen is None else seen
    problems: list[Problem] = []
    nodes = nbytes = 0
    for root, config in roots:
        # (address, level expected or None, first key expected, pair count expected,
        #  whether the node is the last of its level)
        stack: list = [(root, None, None, None, True)]
        while stack:
            addr, level, first, count, rightmost = stack.pop()
            if addr in seen:
                continue
            seen.add(addr)
            nodes += 1
            if progress is not None:
                progress(1)
            try:
                data = raw(addr)
            except CorruptNodeError as e:
                problems.append(Problem("damaged-node", addr, root, str(e)))
                continue
            except (ProllyError, ValueError, KeyError, OSError) as e:
                problems.append(Problem("unreadable-node", addr, root, str(e)))
                continue
            if data is None:
                if addr != EMPTY_ROOT:  # the canonical empty tree need not be stored
                    problems.append(Problem("missing-node", addr, root, "not in the store"))
                continue
            nbytes += len(data)
            if _sha256(data).digest() != addr:
                problems.append(Problem("damaged-node", addr, root,
                                        "content does not hash to its address"))
                continue
            try:
                node = decode(data, addr)
            except (ProllyError, ValueError) as e:
                problems.append(Problem("damaged-node", addr, root, str(e)))
                continue
            keys = node.keys
            why = None
            if level is not None and node.level != level:
                why = f"level {node.level} where its parent expects {level}"
            elif any(a >= b for a, b in zip(keys, keys[1:])):
                why = "keys are not strictly ascending"
            elif first is not None and (not keys or keys[0] != first):
                why = "its first key differs from the one its parent records"
            elif count is not None and node.total != count:
                why = f"holds {node.total} pairs where its parent records {count}"
            else:
                why = _boundary_problem(node, config, rightmost)
            if why is not None:
                problems.append(Problem("invariant", addr, root, why))
            if not node.level and getattr(node, "env", None) is not None:
                for v in node.vals:  # chunked values: every chunk, in full
                    if type(v) is not Envelope:
                        continue
                    visited, bad = check_value(raw, v)
                    for a in visited:
                        if a not in seen:
                            seen.add(a)
                            nodes += 1
                    for a, why in bad:
                        kind = "missing-node" if why == "missing chunk" else "damaged-node"
                        problems.append(Problem(kind, a, root, why))
            if node.level:
                last = len(node.vals) - 1
                counts = node.counts or [None] * len(node.vals)
                for i in range(last, -1, -1):
                    stack.append((node.vals[i], node.level - 1, keys[i], counts[i],
                                  rightmost and i == last))
    return CheckReport(nodes, nbytes, problems)


def shape(load: Callable[[bytes], Node], raw: Callable[[bytes], bytes], root: bytes
          ) -> dict:
    """num_nodes, num_leaves, num_internal_nodes, avg_node_size (entries per node),
    total_key_value_pairs, depth and total_node_bytes of the tree at ``root``."""
    leaves = internal = entries = nbytes = 0
    stack = [root]
    top = load(root)
    while stack:
        addr = stack.pop()
        node = load(addr)
        if node.level:
            internal += 1
            stack.extend(node.vals)
        else:
            leaves += 1
        entries += node.size
        nbytes += len(raw(addr))
    n = leaves + internal
    return {"num_nodes": n, "num_leaves": leaves, "num_internal_nodes": internal,
            "avg_node_size": entries / n if n else 0.0,
            "total_key_value_pairs": top.total, "depth": top.level + 1,
            "total_node_bytes": nbytes}
