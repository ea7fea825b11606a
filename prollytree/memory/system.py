"""AgentMemorySystem: an agent's memory in a versioned prollytree dataset.

Four kinds of memory, each a tree of one commit (see :mod:`.records` for the layout),
searched by derived BM25 and vector indexes (:mod:`prollytree.search`) that follow the
current version. Writes are staged; :meth:`AgentMemorySystem.checkpoint` commits them.
Every public method holds one re-entrant lock, so a system object may be shared by
threads.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Sequence

from ..search import HashEmbedder, TextIndex, VectorIndex
from . import records as R
from .storage import TREES, MemoryStorage
from .types import Memory, MemoryQuery, MemoryResult, MemoryType, to_timestamp

_KEEP = object()  # "argument not given" for update()
_RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al.)
DEFAULT_SHORT_TERM_TTL = 24 * 3600.0


def _check_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, (list, tuple, set, frozenset)):
        raise TypeError("tags must be a list of str")
    out = []
    for t in tags:
        if not isinstance(t, str):
            raise TypeError("tags must be str")
        if t not in out:
            out.append(t)
    return out


def _check_confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"confidence must be a number, not {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"confidence must be within [0, 1], got {value}")
    return float(value)


def _check_ttl(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"ttl must be a number of seconds or None, not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"ttl must be > 0 seconds, got {value}")
    return float(value)


def _check_opt_str(value: Any, what: str) -> str | None:
    return None if value is None else _check_str(value, what)


class AgentMemorySystem:
    """Create or open the memory of agent ``agent_id`` at ``path`` (a dataset of the
    given ``storage_backend``, Git by default). ``embedder`` defaults to
    ``HashEmbedder(256)``; pass a :class:`~prollytree.search.WordLlamaEmbedder` for
    semantic search by meaning. Several agents may share one path, each with its id.

    ``short_term_ttl``: seconds a conversation turn lives (None: forever). ``clock``:
    a function returning seconds since the epoch (tests pass a fake one)."""

    def __init__(self, path: str | os.PathLike, agent_id: str, embedder: Any = None, *,
                 storage_backend: Any = None,
                 short_term_ttl: float | None = DEFAULT_SHORT_TERM_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        _check_str(agent_id, "agent_id")
        if not agent_id:
            raise ValueError("agent_id must not be empty")
        if not callable(clock):
            raise TypeError("clock must be callable")
        self._ttl = _check_ttl(short_term_ttl)
        self.agent_id = agent_id
        self.embedder = embedder if embedder is not None else HashEmbedder(256)
        self._clock = clock
        self._lock = threading.RLock()
        self._last_ns = 0
        self._storage = MemoryStorage(path, storage_backend)
        try:
            cache = self._storage.cache_dir()
            emb = self.embedder
            vec_file = None
            if cache is not None:
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                               for ch in f"{emb.id}-{emb.version}-{emb.dim}")
                vec_file = os.path.join(cache, f"vectors-{safe}.db")
            self._text = TextIndex(None if cache is None else os.path.join(cache, "text.db"),
                                   document=self._document)
            self._vec = VectorIndex(vec_file, embedder=emb, document=self._document)
        except BaseException:
            self._storage.close()
            raise
        # keys written since each index last synced (the staged overlay); at open, every
        # staged key (another process may have staged them before exiting)
        staged = self._storage.staged_keys()
        self._dirty = {"text": set(staged), "vec": set(staged)}
        self._reset = {"text": True, "vec": True}
        self._access: dict[str, int] = {}
        self.short_term = ShortTermMemory(self)
        self.semantic = SemanticMemory(self)
        self.episodic = EpisodicMemory(self)
        self.procedural = ProceduralMemory(self)

    @classmethod
    def init_with_thread_safe_git(cls, path: str | os.PathLike, agent_id: str,
                                  embedder: Any = None) -> "AgentMemorySystem":
        """The seed API's name: a Git-backed, thread-safe memory system (every system is)."""
        return cls(path, agent_id, embedder)

    # -- plumbing ------------------------------------------------------------------------------

    def _document(self, raw: bytes, value: bytes) -> str | None:
        return R.document(self._storage.key_in_tree(raw), value)

    def _now_ns(self) -> int:
        ns = max(R.ns_int(self._clock()), self._last_ns + 1)
        self._last_ns = ns
        return ns

    def _load(self, memory_id: str) -> dict | None:
        mtype = MemoryType.of_id(memory_id)
        raw = self._storage.get(mtype.tree, R.PRIMARY + memory_id.encode())
        return None if raw is None else R.decode(raw)

    def _write(self, old: dict | None, new: dict | None) -> None:
        """Stage the replacement of record ``old`` by ``new`` (either may be None),
        secondary keys included."""
        rec = new if new is not None else old
        tree = MemoryType(rec["type"]).tree
        pairs: dict[bytes, bytes | None] = {}
        before = dict(R.secondary_keys(old)) if old is not None else {}
        after = dict(R.secondary_keys(new)) if new is not None else {}
        for k in before.keys() - after.keys():
            pairs[k] = None
        for k, v in after.items():
            if before.get(k) != v:
                pairs[k] = v
        key = R.PRIMARY + rec["id"].encode()
        pairs[key] = None if new is None else R.encode(new)
        self._storage.put_batch(tree, sorted(pairs.items()))
        for d in self._dirty.values():
            d.add((tree, key))

    def _new(self, mtype: MemoryType, kind: str, namespace: str, content: dict, *,
             thread_id: str | None = None, tags: Any = None, ttl: float | None = None,
             source: str | None = None, confidence: float = 1.0,
             related: Iterable[str] = (), created_at: float | None = None) -> str:
        R.check_content(kind, content)
        ns = self._now_ns() if created_at is None else R.ns_int(created_at)
        rec = {
            "id": mtype.id_prefix + uuid.uuid4().hex, "type": mtype.value, "kind": kind,
            "namespace": namespace, "content": content, "created_at": ns / 1e9,
            "updated_at": ns / 1e9, "agent_id": self.agent_id, "thread_id": thread_id,
            "tags": _check_tags(tags), "ttl": _check_ttl(ttl),
            "source": _check_opt_str(source, "source"),
            "confidence": _check_confidence(confidence), "related": list(related),
            "access_count": 0, "archived": False,
        }
        R.secondary_keys(rec)  # validates the key parts before anything is staged
        self._write(None, rec)
        return rec["id"]

    def _memory(self, rec: dict) -> Memory:
        return R.to_memory(rec, self._access.get(rec["id"], 0))

    # -- every memory, wherever it lives ---------------------------------------------------------

    def get(self, memory_id: str) -> Memory | None:
        """The memory with this id (of any kind), or None. Counts an access (the count
        is recorded with the next checkpoint)."""
        with self._lock:
            rec = self._load(memory_id)
            if rec is None:
                return None
            self._access[memory_id] = self._access.get(memory_id, 0) + 1
            return self._memory(rec)

    def update(self, memory_id: str, content: Any = _KEEP, *, tags: Any = _KEEP,
               confidence: Any = _KEEP, source: Any = _KEEP, ttl: Any = _KEEP,
               related: Any = _KEEP) -> bool:
        """Change a memory's content (validated for its kind) and/or metadata; False
        when there is no such memory. The update time is set to now."""
        with self._lock:
            old = self._load(memory_id)
            if old is None:
                return False
            new = dict(old)
            if content is not _KEEP:
                R.check_content(old["kind"], content)
                new["content"] = content
            if tags is not _KEEP:
                new["tags"] = _check_tags(tags)
            if confidence is not _KEEP:
                new["confidence"] = _check_confidence(confidence)
            if source is not _KEEP:
                new["source"] = _check_opt_str(source, "source")
            if ttl is not _KEEP:
                new["ttl"] = _check_ttl(ttl)
            if related is not _KEEP:
                if isinstance(related, str):
                    raise TypeError("related must be a list of memory ids")
                new["related"] = [_check_str(r, "related id") for r in related]
            new["updated_at"] = max(self._now_ns() / 1e9, old["updated_at"])
            R.secondary_keys(new)
            self._write(old, new)
            return True

    def delete(self, memory_id: str) -> bool:
        """Delete a memory (of any kind); whether it existed."""
        with self._lock:
            old = self._load(memory_id)
            if old is None:
                return False
            self._write(old, None)
            self._access.pop(memory_id, None)
            return True

    def query(self, query: MemoryQuery | None = None) -> list[MemoryResult]:
        """Memories of every kind matching ``query`` (see :class:`MemoryQuery`)."""
        return self._query(query or MemoryQuery(), set(MemoryType))

    # -- search ----------------------------------------------------------------------------------

    def _sync_index(self, which: str) -> None:
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

    def _query(self, q: MemoryQuery, kinds: set[MemoryType]) -> list[MemoryResult]:
        if not isinstance(q, MemoryQuery):
            raise TypeError(f"query must be a MemoryQuery, not {type(q).__name__}")
        q.checked()
        if q.memory_types is not None:
            kinds = kinds & set(q.memory_types)
        now = self._clock()
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

        with self._lock:
            if not kinds:
                return []
            ranked = q.text_query is not None or q.semantic_query is not None
            if not ranked:
                hits = []
                for mtype in kinds:
                    for _, raw in self._storage.scan(mtype.tree, R.PRIMARY):
                        rec = R.decode(raw)
                        if keep(rec):
                            hits.append(rec)
                hits.sort(key=lambda r: (-r["created_at"], r["id"]))
                if q.limit is not None:
                    hits = hits[:q.limit]
                return [MemoryResult(self._memory(r), 1.0) for r in hits]
            limit = 10 if q.limit is None else q.limit
            if limit == 0:
                return []
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
                self._sync_index("text")
                got = []
                for name, raw, score in self._text.iter_search(q.text_query):
                    rec = load(name, raw)
                    if rec is not None and keep(rec):
                        got.append((rec, score))
                        if len(got) >= want:
                            break
                lists.append(got)
            if q.semantic_query is not None:
                self._sync_index("vec")

                def where(name: str, raw: bytes) -> bool:
                    rec = load(name, raw)
                    return rec is not None and keep(rec)
                found = self._vec.search(q.semantic_query, want, where=where)
                lists.append([(load(n, k), s) for n, k, s in found])
            if not both:
                return [MemoryResult(self._memory(r), s) for r, s in lists[0][:limit]]
            fused: dict[str, list] = {}
            for lst in lists:
                for rank, (rec, _) in enumerate(lst):
                    entry = fused.setdefault(rec["id"], [rec, 0.0])
                    entry[1] += 1.0 / (_RRF_K + rank + 1)
            best = sorted(fused.values(), key=lambda e: (-e[1], e[0]["id"]))[:limit]
            return [MemoryResult(self._memory(r), s) for r, s in best]

    # -- versions --------------------------------------------------------------------------------

    def _committed(self) -> None:
        """After a commit, checkout or merge: nothing is staged any more."""
        for d in self._dirty.values():
            d.clear()

    def checkpoint(self, message: str = "checkpoint") -> str:
        """Commit every memory written since the last checkpoint (and the access counts
        gathered since); returns the commit id."""
        _check_str(message, "message")
        with self._lock:
            for mid, n in sorted(self._access.items()):
                rec = self._load(mid)
                if rec is not None:
                    new = dict(rec, access_count=rec.get("access_count", 0) + n)
                    self._write(rec, new)
            cid = self._storage.commit(message)
            self._access.clear()
            self._committed()
            return cid

    def _discard(self) -> None:
        self._storage.discard_staged()
        self._access.clear()
        self._committed()
        self._reset = {k: True for k in self._reset}

    def rollback(self, checkpoint: str, message: str | None = None) -> str:
        """Return every memory to its state at ``checkpoint`` (any ref) by recording a new
        checkpoint equal to it (history is kept, so the rollback is audited too).
        Uncommitted memories are dropped. Returns the new commit id."""
        _check_str(checkpoint, "checkpoint")
        with self._lock:
            target = self._storage.resolve(checkpoint)
            if self._storage.current_branch() is None:
                raise ValueError("cannot roll back on a detached HEAD: checkout a branch first")
            self._discard()
            for tree in TREES:
                pairs = [(k, new) for k, _, new in self._storage.diff(tree, "HEAD", target)]
                if pairs:
                    self._storage.put_batch(tree, pairs)
            cid = self._storage.commit(message or f"Rollback to {target[:12]}")
            self._committed()
            return cid

    def list_checkpoints(self, limit: int | None = None) -> list[dict]:
        """Checkpoints of the current branch, newest first: dicts with id, message,
        timestamp."""
        with self._lock:
            return [{"id": c["id"], "message": c["message"], "timestamp": c["timestamp"]}
                    for c in self._storage.log(None, limit)]

    def compare_checkpoints(self, a: str, b: str) -> dict[str, dict[str, list[str]]]:
        """Per memory type (``"semantic"``...): the ids of memories ``added``,
        ``updated`` and ``removed`` from checkpoint ``a`` to ``b``. Cost grows with the
        differences (structural diff)."""
        _check_str(a, "a")
        _check_str(b, "b")
        with self._lock:
            out = {}
            for mtype in MemoryType:
                d = {"added": [], "updated": [], "removed": []}
                for k, old, new in self._storage.diff(mtype.tree, a, b):
                    if not k.startswith(R.PRIMARY):
                        continue
                    mid = k[len(R.PRIMARY):].decode()
                    d["added" if old is None else "removed" if new is None else "updated"
                      ].append(mid)
                out[mtype.value] = d
            return out

    def branch(self, name: str) -> str:
        """Create branch ``name`` at the current checkpoint and switch to it (uncommitted
        memories come along); returns the commit id."""
        with self._lock:
            return self._storage.create_branch(name)

    def checkout(self, ref: str, *, discard: bool = False) -> None:
        """Switch to a branch, or to any checkpoint read-only (detached). With
        uncommitted memories: ValueError unless ``discard``."""
        _check_str(ref, "ref")
        with self._lock:
            if self._storage.has_staged() and not discard:
                raise ValueError("there are uncommitted memories: checkpoint() them first, "
                                 "or pass discard=True")
            self._storage.checkout(ref, "discard")
            self._access.clear()
            self._committed()
            self._reset = {k: True for k in self._reset}

    def current_branch(self) -> str | None:
        with self._lock:
            return self._storage.current_branch()

    def list_branches(self) -> list[str]:
        with self._lock:
            return self._storage.list_branches()

    def merge(self, branch: str) -> str:
        """Three-way merge ``branch`` into the current one; a memory changed on both
        sides keeps the most recently updated version (a deletion loses to an update,
        but not to a mere access; access counts of both sides add up). Checkpoint
        first. Returns the resulting commit id."""
        _check_str(branch, "branch")

        def resolve(tree: str, key: bytes, base: bytes | None, src: bytes | None,
                    dst: bytes | None) -> bytes | None:
            if not key.startswith(R.PRIMARY):
                return src  # secondary keys follow records; pointers: take the source
            b = None if base is None else R.decode(base)
            if src is None or dst is None:
                kept = R.decode(src if dst is None else dst)
                # an update beats a deletion; a mere access count does not
                really = b is None or kept["updated_at"] != b["updated_at"]
                return (src if dst is None else dst) if really else None
            s_rec, d_rec = R.decode(src), R.decode(dst)
            if s_rec["updated_at"] == d_rec["updated_at"]:  # only access counts differ
                base_n = 0 if b is None else b.get("access_count", 0)
                n = s_rec.get("access_count", 0) + d_rec.get("access_count", 0) - base_n
                return R.encode(dict(s_rec, access_count=n))
            return src if s_rec["updated_at"] > d_rec["updated_at"] else dst

        with self._lock:
            if self._storage.has_staged():
                raise ValueError("there are uncommitted memories: checkpoint() them first")
            before = self._storage.current_commit()
            cid = self._storage.merge(branch, resolve)
            if cid != before and self._repair_secondary(before):
                cid = self._storage.commit(f"Merge {branch}: secondary keys repaired")
            self._committed()
            return cid

    def _repair_secondary(self, before: str) -> int:
        """After a merge: make the secondary keys of every record the merge touched
        agree with the record (a key-wise merge can keep a record one side updated while
        taking the other side's deletion of its secondary keys). Stages the fixes;
        returns how many. O(changes of the merge)."""
        st = self._storage
        fixes = 0
        for mtype in MemoryType:
            tree = mtype.tree
            for k, old, _ in st.diff(tree, before, "HEAD"):
                cur = st.get(tree, k)
                if k.startswith(R.PRIMARY):
                    if cur is None:
                        continue
                    for sk, sv in R.secondary_keys(R.decode(cur)):
                        if st.get(tree, sk) != sv:
                            st.put_batch(tree, [(sk, sv)])
                            fixes += 1
                else:
                    val = cur if cur is not None else old
                    mid = val.decode() if val else k.rsplit(b"\0", 1)[1].decode()
                    rec = self._load(mid)
                    belongs = rec is not None and (k, val) in R.secondary_keys(rec)
                    if cur is not None and not belongs:
                        st.put_batch(tree, [(k, None)])
                        fixes += 1
                    elif cur is None and belongs:
                        st.put_batch(tree, [(k, val)])
                        fixes += 1
        return fixes

    def history(self, memory_id: str) -> list[dict]:
        """Every committed version of one memory, newest first: dicts with commit,
        message, timestamp and memory (None where that commit deleted it)."""
        MemoryType.of_id(memory_id)
        with self._lock:
            tree = MemoryType.of_id(memory_id).tree
            key = R.PRIMARY + memory_id.encode()
            out = []
            for c in self._storage.commits_for_key(tree, key):
                raw = self._storage.get_at(c["id"], tree, key)
                out.append({"commit": c["id"], "message": c["message"],
                            "timestamp": c["timestamp"],
                            "memory": None if raw is None else R.to_memory(R.decode(raw))})
            return out

    def get_system_stats(self) -> dict:
        """Counts per type and kind, expired and archived memories, agents, branch,
        checkpoints and index sizes. O(memories)."""
        with self._lock:
            now = self._clock()
            by_type = {t.value: 0 for t in MemoryType}
            by_kind: dict[str, int] = {}
            agents: dict[str, int] = {}
            expired = archived = 0
            for mtype in MemoryType:
                for _, raw in self._storage.scan(mtype.tree, R.PRIMARY):
                    rec = R.decode(raw)
                    by_type[mtype.value] += 1
                    by_kind[rec["kind"]] = by_kind.get(rec["kind"], 0) + 1
                    agents[rec["agent_id"]] = agents.get(rec["agent_id"], 0) + 1
                    if rec.get("ttl") is not None and rec["created_at"] + rec["ttl"] <= now:
                        expired += 1
                    archived += bool(rec.get("archived"))
            return {"total": sum(by_type.values()), "by_type": by_type,
                    "by_kind": dict(sorted(by_kind.items())), "agents": agents,
                    "expired": expired, "archived": archived,
                    "branch": self._storage.current_branch(),
                    "commit": self._storage.current_commit(),
                    "checkpoints": len(self._storage.log()),
                    "uncommitted": self._storage.has_staged(),
                    "embedder": {"id": self.embedder.id, "version": self.embedder.version,
                                 "dim": self.embedder.dim}}

    def optimize(self, *, archive_after: float | None = 90 * 86400.0,
                 min_confidence: float = 0.1, consolidate: bool = True) -> dict[str, int]:
        """Housekeeping, staged like any write (checkpoint to keep it): delete memories
        whose TTL passed (``expired``); merge memories of the same kind and namespace
        with the same text into the most recently updated one, uniting tags and related
        ids and summing access counts (``consolidated``: how many were merged away);
        mark episodic memories older than ``archive_after`` seconds archived (left out
        of queries unless asked for; ``archived``); delete facts and relationships with
        confidence below ``min_confidence`` (``pruned``). Returns the four counts."""
        if archive_after is not None:
            _check_ttl(archive_after)
        _check_confidence(min_confidence)
        with self._lock:
            now = self._clock()
            counts = {"expired": 0, "consolidated": 0, "archived": 0, "pruned": 0}
            alive: list[dict] = []
            for mtype in MemoryType:
                for _, raw in self._storage.scan(mtype.tree, R.PRIMARY):
                    rec = R.decode(raw)
                    if rec.get("ttl") is not None and rec["created_at"] + rec["ttl"] <= now:
                        self._write(rec, None)
                        counts["expired"] += 1
                    elif rec["kind"] in ("fact", "relationship") \
                            and rec.get("confidence", 1.0) < min_confidence:
                        self._write(rec, None)
                        counts["pruned"] += 1
                    else:
                        alive.append(rec)
            if consolidate:
                groups: dict[tuple, list[dict]] = {}
                for rec in alive:
                    if rec["kind"] in ("working", "context"):
                        continue  # keyed by thread and key: never duplicates
                    norm = " ".join(R.text_of(dict(rec, tags=[])).lower().split())
                    groups.setdefault((rec["type"], rec["kind"], rec["namespace"], norm),
                                      []).append(rec)
                gone: set[str] = set()
                for group in groups.values():
                    if len(group) < 2:
                        continue
                    group.sort(key=lambda r: (r["updated_at"], r["id"]))
                    keep, rest = group[-1], group[:-1]
                    merged = dict(keep)
                    for r in rest:
                        merged["tags"] = _check_tags(merged["tags"] + r.get("tags", []))
                        merged["related"] = list(dict.fromkeys(
                            x for x in merged["related"] + r.get("related", [])
                            if x != keep["id"]))
                        merged["access_count"] += r.get("access_count", 0)
                        merged["confidence"] = max(merged["confidence"], r["confidence"])
                        self._write(r, None)
                        gone.add(r["id"])
                        counts["consolidated"] += 1
                    self._write(keep, merged)
                alive = [r for r in alive if r["id"] not in gone]
            if archive_after is not None:
                for rec in alive:
                    cur = self._load(rec["id"])
                    if cur is not None and cur["type"] == MemoryType.Episodic.value \
                            and not cur.get("archived") \
                            and cur["created_at"] < now - archive_after:
                        self._write(cur, dict(cur, archived=True))
                        counts["archived"] += 1
            return counts

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the dataset and the index caches. Uncommitted memories stay staged (a
        new process finds them)."""
        with self._lock:
            self._text.close()
            self._vec.close()
            self._storage.close()

    def __enter__(self) -> "AgentMemorySystem":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AgentMemorySystem(agent_id={self.agent_id!r})"


class _KindMemory:
    """What every kind offers: get/update/delete by id and queries restricted to it."""

    TYPE: MemoryType

    def __init__(self, system: AgentMemorySystem) -> None:
        self._sys = system

    def get(self, memory_id: str) -> Memory | None:
        """The memory with this id if it is of this kind (else None)."""
        if MemoryType.of_id(memory_id) is not self.TYPE:
            return None
        return self._sys.get(memory_id)

    def update(self, memory_id: str, *args: Any, **kwargs: Any) -> bool:
        if MemoryType.of_id(memory_id) is not self.TYPE:
            return False
        return self._sys.update(memory_id, *args, **kwargs)

    def delete(self, memory_id: str) -> bool:
        if MemoryType.of_id(memory_id) is not self.TYPE:
            return False
        return self._sys.delete(memory_id)

    def query(self, query: MemoryQuery | None = None) -> list[MemoryResult]:
        """Memories of this kind matching ``query``."""
        return self._sys._query(query or MemoryQuery(), {self.TYPE})

    def _scan_ids(self, prefix: bytes) -> list[dict]:
        """Records pointed at by the secondary keys under ``prefix`` (in key order)."""
        out = []
        st = self._sys._storage
        for k, v in st.scan(self.TYPE.tree, prefix):
            mid = v.decode() if v else k.rsplit(b"\0", 1)[1].decode()
            rec = self._sys._load(mid)
            if rec is not None:
                out.append(rec)
        return out


class ShortTermMemory(_KindMemory):
    """Conversation turns per thread (with the system's TTL), working memory per thread
    and key, and one session context per thread."""

    TYPE = MemoryType.ShortTerm

    def store_conversation_turn(self, thread_id: str, role: str, content: str,
                                metadata: dict | None = None, *, tags: Any = None,
                                ttl: Any = _KEEP) -> str:
        """Append a turn to thread ``thread_id``; returns its id."""
        R.part(thread_id, "thread_id")
        _check_str(role, "role")
        _check_str(content, "content")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError("metadata must be a dict or None")
        s = self._sys
        with s._lock:
            return s._new(self.TYPE, "turn", f"threads/{thread_id}/conversation",
                          {"role": role, "content": content, "metadata": metadata},
                          thread_id=thread_id, tags=tags,
                          ttl=s._ttl if ttl is _KEEP else ttl)

    def get_conversation_history(self, thread_id: str, limit: int | None = None, *,
                                 include_expired: bool = False) -> list[Memory]:
        """The thread's turns, oldest first (the last ``limit`` of them)."""
        prefix = b"t/" + R.part(thread_id, "thread_id") + b"\0"
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError("limit must be an int or None")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        s = self._sys
        with s._lock:
            now = s._clock()
            recs = [r for r in self._scan_ids(prefix)
                    if include_expired or r.get("ttl") is None
                    or r["created_at"] + r["ttl"] > now]
            if limit is not None:
                recs = recs[len(recs) - limit:] if limit else []
            return [s._memory(r) for r in recs]

    def clear_thread(self, thread_id: str) -> int:
        """Delete the thread's turns, working memory and session context; how many."""
        t = R.part(thread_id, "thread_id")
        s = self._sys
        with s._lock:
            recs = (self._scan_ids(b"t/" + t + b"\0") + self._scan_ids(b"w/" + t + b"\0")
                    + self._scan_ids(b"x/" + t))
            n = 0
            for r in recs:
                if r.get("thread_id") == thread_id and s.delete(r["id"]):
                    n += 1
            return n

    def set_working_memory(self, thread_id: str, key: str, value: Any) -> str:
        """Set ``key`` of the thread's working memory (a JSON value); returns the id."""
        wkey = b"w/" + R.part(thread_id, "thread_id") + b"\0" + R.part(key, "key")
        s = self._sys
        with s._lock:
            mid = s._storage.get(self.TYPE.tree, wkey)
            content = {"key": key, "value": value}
            if mid is not None and s.update(mid.decode(), content):
                return mid.decode()
            return s._new(self.TYPE, "working", f"threads/{thread_id}/working", content,
                          thread_id=thread_id)

    def get_working_memory(self, thread_id: str, key: str) -> Any:
        """The value of ``key`` in the thread's working memory, or None."""
        wkey = b"w/" + R.part(thread_id, "thread_id") + b"\0" + R.part(key, "key")
        s = self._sys
        with s._lock:
            mid = s._storage.get(self.TYPE.tree, wkey)
            rec = None if mid is None else s._load(mid.decode())
            return None if rec is None else rec["content"].get("value")

    def get_all_working_memory(self, thread_id: str) -> dict[str, Any]:
        """The thread's whole working memory, key -> value."""
        prefix = b"w/" + R.part(thread_id, "thread_id") + b"\0"
        with self._sys._lock:
            return {r["content"]["key"]: r["content"].get("value")
                    for r in self._scan_ids(prefix)}

    def set_session_context(self, thread_id: str, context: dict) -> str:
        """Replace the thread's session context (a JSON object); returns the id."""
        xkey = b"x/" + R.part(thread_id, "thread_id")
        if not isinstance(context, dict):
            raise TypeError("context must be a dict")
        s = self._sys
        with s._lock:
            mid = s._storage.get(self.TYPE.tree, xkey)
            if mid is not None and s.update(mid.decode(), {"context": context}):
                return mid.decode()
            return s._new(self.TYPE, "context", f"threads/{thread_id}/context",
                          {"context": context}, thread_id=thread_id)

    def get_session_context(self, thread_id: str) -> dict | None:
        xkey = b"x/" + R.part(thread_id, "thread_id")
        s = self._sys
        with s._lock:
            mid = s._storage.get(self.TYPE.tree, xkey)
            rec = None if mid is None else s._load(mid.decode())
            return None if rec is None else rec["content"]["context"]


class SemanticMemory(_KindMemory):
    """Facts about entities (with confidence and source) and relationships between them."""

    TYPE = MemoryType.Semantic

    def store_fact(self, entity_type: str, entity_id: str, facts: Any,
                   confidence: float = 1.0, source: str | None = None, *,
                   tags: Any = None) -> str:
        """Record ``facts`` (a JSON value, usually an object) about an entity; returns
        the id."""
        R.part(entity_type, "entity_type")
        R.part(entity_id, "entity_id")
        with self._sys._lock:
            return self._sys._new(
                self.TYPE, "fact", f"entities/{entity_type}/{entity_id}",
                {"entity_type": entity_type, "entity_id": entity_id, "facts": facts},
                tags=tags, source=source, confidence=confidence)

    def get_entity_facts(self, entity_type: str, entity_id: str) -> list[Memory]:
        """Every fact about the entity, oldest first."""
        prefix = (b"f/" + R.part(entity_type, "entity_type") + b"\0"
                  + R.part(entity_id, "entity_id") + b"\0")
        s = self._sys
        with s._lock:
            recs = sorted(self._scan_ids(prefix), key=lambda r: (r["created_at"], r["id"]))
            return [s._memory(r) for r in recs]

    def store_relationship(self, from_type: str, from_id: str, relation: str, to_type: str,
                           to_id: str, properties: dict | None = None,
                           confidence: float = 1.0, source: str | None = None, *,
                           tags: Any = None) -> str:
        """Record ``from --relation--> to``; returns the id."""
        for v, what in ((from_type, "from_type"), (from_id, "from_id"),
                        (relation, "relation"), (to_type, "to_type"), (to_id, "to_id")):
            R.part(v, what)
        if properties is not None and not isinstance(properties, dict):
            raise TypeError("properties must be a dict or None")
        with self._sys._lock:
            return self._sys._new(
                self.TYPE, "relationship", f"relationships/{relation}",
                {"from_type": from_type, "from_id": from_id, "relation": relation,
                 "to_type": to_type, "to_id": to_id, "properties": properties or {}},
                tags=tags, source=source, confidence=confidence)

    def get_entity_relationships(self, entity_type: str, entity_id: str) -> list[Memory]:
        """Relationships the entity takes part in (either end), oldest first."""
        prefix = (b"r/" + R.part(entity_type, "entity_type") + b"\0"
                  + R.part(entity_id, "entity_id") + b"\0")
        s = self._sys
        with s._lock:
            recs = sorted(self._scan_ids(prefix), key=lambda r: (r["created_at"], r["id"]))
            return [s._memory(r) for r in recs]


class EpisodicMemory(_KindMemory):
    """Episodes (what happened, in what context, with what outcome) and interactions,
    with an importance (kept as the memory's confidence)."""

    TYPE = MemoryType.Episodic

    def store_episode(self, description: str, context: Any = None, outcome: Any = None,
                      importance: float = 0.5, timestamp: Any = None, *,
                      tags: Any = None) -> str:
        """Record an episode at ``timestamp`` (default now); returns the id."""
        _check_str(description, "description")
        s = self._sys
        with s._lock:
            ts = s._now_ns() / 1e9 if timestamp is None else to_timestamp(timestamp, "timestamp")
            return s._new(self.TYPE, "episode", "episodes",
                          {"description": description, "context": context,
                           "outcome": outcome, "timestamp": ts},
                          tags=tags, confidence=importance)

    def store_interaction(self, interaction_type: str, summary: str,
                          participants: Sequence[str] = (), importance: float = 0.5,
                          timestamp: Any = None, *, tags: Any = None) -> str:
        R.part(interaction_type, "interaction_type")
        _check_str(summary, "summary")
        if isinstance(participants, str):
            raise TypeError("participants must be a list of str")
        parts = [_check_str(p, "participant") for p in participants]
        s = self._sys
        with s._lock:
            ts = s._now_ns() / 1e9 if timestamp is None else to_timestamp(timestamp, "timestamp")
            return s._new(self.TYPE, "interaction", f"interactions/{interaction_type}",
                          {"interaction_type": interaction_type, "summary": summary,
                           "participants": parts, "timestamp": ts},
                          tags=tags, confidence=importance)

    def get_episodes_in_period(self, start: Any, end: Any) -> list[Memory]:
        """Episodes and interactions with ``start <= timestamp <= end``, in time order.
        O(log n + matches)."""
        lo = to_timestamp(start, "start")
        hi = to_timestamp(end, "end")
        s = self._sys
        with s._lock:
            st = s._storage
            out = []
            lo_key = b"p/" + b"%020d" % R.ns_int(lo)
            for k, _ in st.scan(self.TYPE.tree, b"p/"):
                if k < lo_key:
                    continue
                ts_ns = int(k[2:22])
                if ts_ns > R.ns_int(hi):
                    break
                rec = s._load(k.rsplit(b"\0", 1)[1].decode())
                if rec is not None:
                    out.append(s._memory(rec))
            return out


class ProceduralMemory(_KindMemory):
    """Procedures (named steps, by category and priority) and rules (condition -> action,
    enabled or disabled)."""

    TYPE = MemoryType.Procedural

    def store_procedure(self, name: str, description: str, steps: Sequence[Any],
                        category: str = "general", priority: int = 1,
                        conditions: Any = None, *, tags: Any = None) -> str:
        _check_str(name, "name")
        _check_str(description, "description")
        R.part(category, "category")
        if isinstance(steps, str) or not isinstance(steps, (list, tuple)):
            raise TypeError("steps must be a list")
        with self._sys._lock:
            return self._sys._new(
                self.TYPE, "procedure", f"procedures/{category}",
                {"name": name, "description": description, "steps": list(steps),
                 "category": category, "priority": priority, "conditions": conditions},
                tags=tags)

    def store_rule(self, name: str, condition: Any, action: Any, category: str = "general",
                   priority: int = 1, enabled: bool = True, *, tags: Any = None) -> str:
        _check_str(name, "name")
        R.part(category, "category")
        with self._sys._lock:
            return self._sys._new(
                self.TYPE, "rule", f"rules/{category}",
                {"name": name, "condition": condition, "action": action,
                 "category": category, "priority": priority, "enabled": enabled},
                tags=tags)

    def _by_category(self, category: str, kind: str) -> list[Memory]:
        prefix = b"c/" + R.part(category, "category") + b"\0"
        s = self._sys
        with s._lock:
            recs = [r for r in self._scan_ids(prefix) if r["kind"] == kind]
            recs.sort(key=lambda r: (-r["content"]["priority"], r["created_at"], r["id"]))
            return [s._memory(r) for r in recs]

    def get_procedures_by_category(self, category: str) -> list[Memory]:
        """Procedures of ``category``, highest priority first."""
        return self._by_category(category, "procedure")

    def get_active_rules_by_category(self, category: str) -> list[Memory]:
        """Enabled rules of ``category``, highest priority first."""
        return [m for m in self._by_category(category, "rule") if m.content["enabled"]]

    def update_rule_status(self, rule_id: str, enabled: bool) -> bool:
        """Enable or disable a rule; False when there is no such rule."""
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, not {type(enabled).__name__}")
        s = self._sys
        with s._lock:
            if MemoryType.of_id(rule_id) is not self.TYPE:
                return False
            rec = s._load(rule_id)
            if rec is None or rec["kind"] != "rule":
                return False
            return s.update(rule_id, dict(rec["content"], enabled=enabled))
