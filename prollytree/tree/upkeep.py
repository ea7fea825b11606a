"""ProllyTree's whole-tree operations: shape statistics, an outline, reachability,
garbage collection and the full check. Each walks every node under the root, so each
costs O(nodes); they are kept apart from the map operations of
:mod:`prollytree.tree.prolly_tree`, which cost O(depth) per key.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Iterator

from . import values as _values
from . import walk
from .codec import Envelope, Node


def locked(method):
    """Run ``method`` holding the tree's lock (reentrant: locked methods call each other)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class TreeUpkeep:
    """Mixin of :class:`~prollytree.tree.ProllyTree` (the state is the tree's)."""

    # -- whole-tree views ----------------------------------------------------------------

    def _walk(self) -> Iterator[tuple[bytes, Node]]:
        """Every node (address, node) reachable from the root, parents before children."""
        self._apply()
        stack = [self._root]
        load = self._cache.load
        while stack:
            addr = stack.pop()
            node = load(addr)
            yield addr, node
            if node.level:
                stack.extend(reversed(node.vals))

    @locked
    def stats(self) -> dict[str, Any]:
        """Shape statistics: num_nodes, num_leaves, num_internal_nodes, avg_node_size
        (entries per node), total_key_value_pairs, depth and total_node_bytes, and for a
        file store the bytes a compaction would free (reclaimable_bytes). O(nodes)."""
        self._apply()
        out = walk.shape(self._cache.load, self._cache.raw, self._root)
        store_stats = getattr(self._store, "stats", None)
        if store_stats is not None:  # the file store: bytes a compaction would free
            out["reclaimable_bytes"] = store_stats(self.reachable())["reclaimable_bytes"]
        return out

    @locked
    def value_stats(self) -> dict[str, int]:
        """Chunked values of this tree (see :func:`.values.usage`): how many, their
        total length, the distinct chunks stored and the bytes dedup saves. O(leaves)
        reads plus the chunk indexes; no value is read."""
        envs = [v for _, node in self._walk() if not node.level
                and getattr(node, "env", None) is not None
                for v in node.vals if type(v) is Envelope]
        return _values.usage(self._cache.raw, envs)

    @locked
    def traverse(self) -> str:
        """A readable outline of the tree: one line per node, indented by depth."""
        self._apply()
        lines: list[str] = []
        load = self._cache.load

        def show(addr: bytes, indent: int) -> None:
            node = load(addr)
            span = f"{node.first_key!r}..{node.last_key!r}" if node.size else "empty"
            kind = "leaf" if node.level == 0 else f"L{node.level}"
            lines.append(f"{'  ' * indent}{kind} {addr.hex()[:12]} entries={node.size} "
                         f"pairs={node.total} keys={span}")
            if node.level:
                for child in node.vals:
                    show(child, indent + 1)

        show(self._root, 0)
        return "\n".join(lines)

    @locked
    def reachable(self, extra_roots: Iterable[bytes] = ()) -> set[bytes]:
        """Addresses of every node reachable from the current root and ``extra_roots``.
        Leaves are not decoded: only internal nodes name children."""
        self._apply()
        return walk.reachable(self._cache.load, [self._root, *extra_roots],
                              raw=self._store.get)

    @locked
    def gc(self, extra_roots: Iterable[bytes] = ()) -> dict[str, int]:
        """Delete every stored node not reachable from the current root or from
        ``extra_roots``. Returns {"kept": n, "removed": m}."""
        self._writable()
        self.flush()
        extra = list(extra_roots)
        for r in extra:
            if not isinstance(r, bytes):
                raise TypeError("extra_roots must be bytes addresses")
        live = self.reachable(extra)
        dead = [a for a in self._store.addresses() if a not in live]
        removed = self._store.remove(dead) if dead else 0
        self._store.flush()
        return {"kept": len(live), "removed": removed}

    @locked
    def verify(self) -> dict[str, Any]:
        """Walk every node reachable from the root and check it (see
        :func:`prollytree.tree.walk.check`: present, hashing to its address, decodable,
        ordered, counts and chunk boundaries as the config says). Never raises for
        damage: returns ``{"nodes": checked, "missing": [hex], "damaged": [hex],
        "invalid": [hex], "problems": [{"kind", "node", "detail"}], "ok"}``."""
        self._apply()
        report = walk.check(self._store.get, [(self._root, self._config)])
        by_kind: dict[str, list] = {"missing-node": [], "damaged-node": [],
                                    "unreadable-node": [], "invariant": []}
        for p in report.problems:
            by_kind[p.kind].append(p.address.hex())
        return {"nodes": report.nodes, "missing": by_kind["missing-node"],
                "damaged": by_kind["damaged-node"] + by_kind["unreadable-node"],
                "invalid": by_kind["invariant"],
                "problems": [{"kind": p.kind, "node": p.address.hex(), "detail": p.detail}
                             for p in report.problems],
                "ok": not report.problems}

    fsck = verify
