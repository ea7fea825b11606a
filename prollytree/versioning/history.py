"""Walks over the commit graph: log order, generation numbers, merge bases.

Everything here takes a ``read(commit_id) -> Commit`` function (commits are immutable, so
callers cache it). Generation numbers (1 for a root commit, 1 + the highest parent's
otherwise) order walks correctly even when many commits share one timestamp second, which
is the common case for programs that commit in a loop.
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable, Iterator

from .objects import Commit

Reader = Callable[[str], Commit]


class History:
    """Commit-graph queries over one backend's commits (memoised)."""

    def __init__(self, read: Reader) -> None:
        self.read = read
        self._gen: dict[str, int] = {}

    def generation(self, cid: str) -> int:
        gen = self._gen
        if cid in gen:
            return gen[cid]
        stack = [cid]
        while stack:
            c = stack[-1]
            if c in gen:
                stack.pop()
                continue
            parents = self.read(c).parents
            missing = [p for p in parents if p not in gen]
            if missing:
                stack.extend(missing)
                continue
            gen[c] = 1 + max((gen[p] for p in parents), default=0)
            stack.pop()
        return gen[cid]

    def walk(self, starts: Iterable[str]) -> Iterator[Commit]:
        """Every commit reachable from ``starts``, newest first (by commit time, then by
        generation, so a child always precedes its parents at equal times)."""
        heap: list = []
        seen: set = set()
        for s in starts:
            if s and s not in seen:
                seen.add(s)
                c = self.read(s)
                heapq.heappush(heap, (-c.timestamp, -self.generation(s), s))
        while heap:
            _, _, cid = heapq.heappop(heap)
            c = self.read(cid)
            yield c
            for p in c.parents:
                if p not in seen:
                    seen.add(p)
                    pc = self.read(p)
                    heapq.heappush(heap, (-pc.timestamp, -self.generation(p), p))

    def all_ids(self, starts: Iterable[str]) -> list[str]:
        return [c.id for c in self.walk(starts)]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is reachable from ``descendant`` (or equal)."""
        if ancestor == descendant:
            return True
        target_gen = self.generation(ancestor)
        stack, seen = [descendant], {descendant}
        while stack:
            c = stack.pop()
            if c == ancestor:
                return True
            if self.generation(c) <= target_gen:
                continue
            for p in self.read(c).parents:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return False

    def merge_bases(self, a: str, b: str) -> list[str]:
        """The best common ancestors of ``a`` and ``b`` (none of them an ancestor of
        another), highest generation first; empty when the histories are unrelated."""
        if a == b:
            return [a]
        P1, P2, STALE = 1, 2, 4
        flags: dict[str, int] = {a: P1, b: P2}
        heap = [(-self.generation(a), a), (-self.generation(b), b)]
        heapq.heapify(heap)
        found: list[str] = []
        while heap and any(not (flags[c] & STALE) for _, c in heap):
            _, c = heapq.heappop(heap)
            f = flags[c]
            if f & (P1 | P2) == (P1 | P2) and not f & STALE:
                found.append(c)
                f |= STALE
                flags[c] = f
            for p in self.read(c).parents:
                pf = flags.get(p, 0)
                if pf & f == f:
                    continue
                if not pf:
                    heapq.heappush(heap, (-self.generation(p), p))
                flags[p] = pf | f
        found = list(dict.fromkeys(found))
        if len(found) > 1:
            found = [c for c in found
                     if not any(o != c and self.is_ancestor(c, o) for o in found)]
        found.sort(key=lambda c: -self.generation(c))
        return found

    def merge_base(self, a: str, b: str) -> str | None:
        bases = self.merge_bases(a, b)
        return bases[0] if bases else None
