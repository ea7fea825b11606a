"""Finding memories: the derived BM25 and vector indexes that follow the memory trees
(synced from the staged overlay before each ranked query), the query filter, and
reciprocal-rank fusion of text and semantic results."""

from __future__ import annotations

import os
from typing import Any, Callable

from ..search import TextIndex, VectorIndex
from . import records as R
from .storage import MemoryStorage
from .types import MemoryQuery, MemoryType, to_timestamp

RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al.)


def record_filter(q: MemoryQuery, kinds: set[MemoryType], now: float
                  ) -> Callable[[dict], bool]:
    """The predicate a record must pass to answer ``q`` (kinds, namespace, tags, time
    range, agent, expiry and archiving), ``now`` deciding what has expired."""
    lo = hi = None
    if q.time_range is not None:
        lo, hi = (None if v is None else to_timestamp(v, "time_range bound")
                  for v in q.time_range)
    tags = set(q.tags or ())
    ns = q.namespace

    def keep(rec: dict) -> bool:
        if MemoryType(rec["type"]) not in kinds:
            return False
        if ns is not None and ns and rec["namespace"] != ns \
                and not rec["namespace"].startswith(ns.rstrip("/") + "/"):
            return False
        if tags and not tags.issubset(rec.get("tags", ())):
            return False
        if lo is not None and rec["created_at"] < lo:
            return False
        if hi is not None and rec["created_at"] > hi:
            return False
        if q.agent_id is not None and rec["agent_id"] != q.agent_id:
            return False
        if not q.include_expired and rec.get("ttl") is not None \
                and rec["created_at"] + rec["ttl"] <= now:
            return False
        if not q.include_archived and rec.get("archived"):
            return False
        return True
    return keep


class MemoryIndexes:
    """The text and vector indexes of one memory dataset (cached under the dataset's
    cache directory when it has one, else in memory), and which staged keys each has
    not seen yet. The caller holds the system's lock."""

    def __init__(self, storage: MemoryStorage, embedder: Any) -> None:
        self._storage = storage
        cache = storage.cache_dir()
        vec_file = None
        if cache is not None:
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                           for ch in f"{embedder.id}-{embedder.version}-{embedder.dim}")
            vec_file = os.path.join(cache, f"vectors-{safe}.db")
        self._text = TextIndex(None if cache is None else os.path.join(cache, "text.db"),
                               document=self._document)
        try:
            self._vec = VectorIndex(vec_file, embedder=embedder, document=self._document)
        except BaseException:
            self._text.close()
            raise
        # keys written since each index last synced (the staged overlay); at open, every
        # staged key (another process may have staged them before exiting)
        staged = storage.staged_keys()
        self._dirty = {"text": set(staged), "vec": set(staged)}
        self._reset = {"text": True, "vec": True}

    def _document(self, raw: bytes, value: bytes) -> str | None:
        return R.document(self._storage.key_in_tree(raw), value)

    def staged(self, tree: str, key: bytes) -> None:
        """Note a staged write of ``key`` in ``tree``."""
        for d in self._dirty.values():
            d.add((tree, key))

    def committed(self) -> None:
        """After a commit, checkout or merge: nothing is staged any more."""
        for d in self._dirty.values():
            d.clear()

    def invalidate(self) -> None:
        """The current version changed under the indexes: the next sync replaces them."""
        self._reset = {k: True for k in self._reset}

    def _sync(self, which: str) -> None:
        index = self._text if which == "text" else self._vec
        dirty = self._dirty[which]
        replace = self._reset[which]
        st = self._storage
        for name, tree in st.index_sources():
            staged = {}
            for t, k in dirty:
                iname, raw = st.index_key(t, k)
                if iname == name:
                    staged[raw] = st.get(t, k)
            index.sync(tree, name=name, staged=staged, replace=replace)
        dirty.clear()
        self._reset[which] = False

    def ranked(self, q: MemoryQuery, keep: Callable[[dict], bool], limit: int
               ) -> list[tuple[dict, float]]:
        """The best ``limit`` records passing ``keep`` for ``q``'s text and/or semantic
        query, with their scores (fused by reciprocal rank when both are given)."""
        both = q.text_query is not None and q.semantic_query is not None
        want = 3 * limit if both else limit
        cache: dict[tuple[str, bytes], dict | None] = {}

        def load(name: str, raw: bytes) -> dict | None:
            if (name, raw) not in cache:
                loc = self._storage.from_index_key(name, raw)
                value = None if loc is None else self._storage.get(*loc)
                cache[(name, raw)] = None if value is None else R.decode(value)
            return cache[(name, raw)]

        lists = []
        if q.text_query is not None:
            self._sync("text")
            got = []
            for name, raw, score in self._text.iter_search(q.text_query):
                rec = load(name, raw)
                if rec is not None and keep(rec):
                    got.append((rec, score))
                    if len(got) >= want:
                        break
            lists.append(got)
        if q.semantic_query is not None:
            self._sync("vec")

            def where(name: str, raw: bytes) -> bool:
                rec = load(name, raw)
                return rec is not None and keep(rec)
            found = self._vec.search(q.semantic_query, want, where=where)
            lists.append([(load(n, k), s) for n, k, s in found])
        if not both:
            return lists[0][:limit]
        fused: dict[str, list] = {}
        for lst in lists:
            for rank, (rec, _) in enumerate(lst):
                entry = fused.setdefault(rec["id"], [rec, 0.0])
                entry[1] += 1.0 / (RRF_K + rank + 1)
        best = sorted(fused.values(), key=lambda e: (-e[1], e[0]["id"]))[:limit]
        return [(r, s) for r, s in best]

    def close(self) -> None:
        self._text.close()
        self._vec.close()
