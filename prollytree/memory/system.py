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
from typing import Any, Callable, Iterable

from ..search import HashEmbedder
from . import records as R
from .checks import KEEP, check_confidence, check_opt_str, check_str, check_tags, check_ttl
from .kinds import EpisodicMemory, ProceduralMemory, SemanticMemory, ShortTermMemory
from .ranking import MemoryIndexes, record_filter
from .storage import TREES, MemoryStorage
from .types import Memory, MemoryQuery, MemoryResult, MemoryType

DEFAULT_SHORT_TERM_TTL = 24 * 3600.0


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
        check_str(agent_id, "agent_id")
        if not agent_id:
            raise ValueError("agent_id must not be empty")
        if not callable(clock):
            raise TypeError("clock must be callable")
        self._ttl = check_ttl(short_term_ttl)
        self.agent_id = agent_id
        self.embedder = embedder if embedder is not None else HashEmbedder(256)
        self._clock = clock
        self._lock = threading.RLock()
        self._last_ns = 0
        self._storage = MemoryStorage(path, storage_backend)
        try:
            self._indexes = MemoryIndexes(self._storage, self.embedder)
        except BaseException:
            self._storage.close()
            raise
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
        self._indexes.staged(tree, key)

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
            "tags": check_tags(tags), "ttl": check_ttl(ttl),
            "source": check_opt_str(source, "source"),
            "confidence": check_confidence(confidence), "related": list(related),
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

    def update(self, memory_id: str, content: Any = KEEP, *, tags: Any = KEEP,
               confidence: Any = KEEP, source: Any = KEEP, ttl: Any = KEEP,
               related: Any = KEEP) -> bool:
        """Change a memory's content (validated for its kind) and/or metadata; False
        when there is no such memory. The update time is set to now."""
        with self._lock:
            old = self._load(memory_id)
            if old is None:
                return False
            new = dict(old)
            if content is not KEEP:
                R.check_content(old["kind"], content)
                new["content"] = content
            if tags is not KEEP:
                new["tags"] = check_tags(tags)
            if confidence is not KEEP:
                new["confidence"] = check_confidence(confidence)
            if source is not KEEP:
                new["source"] = check_opt_str(source, "source")
            if ttl is not KEEP:
                new["ttl"] = check_ttl(ttl)
            if related is not KEEP:
                if isinstance(related, str):
                    raise TypeError("related must be a list of memory ids")
                new["related"] = [check_str(r, "related id") for r in related]
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

    def _query(self, q: MemoryQuery, kinds: set[MemoryType]) -> list[MemoryResult]:
        if not isinstance(q, MemoryQuery):
            raise TypeError(f"query must be a MemoryQuery, not {type(q).__name__}")
        q.checked()
        if q.memory_types is not None:
            kinds = kinds & set(q.memory_types)
        keep = record_filter(q, kinds, self._clock())
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
            return [MemoryResult(self._memory(r), s)
                    for r, s in self._indexes.ranked(q, keep, limit)]

    # -- versions --------------------------------------------------------------------------------

    def _committed(self) -> None:
        """After a commit, checkout or merge: nothing is staged any more."""
        self._indexes.committed()

    def checkpoint(self, message: str = "checkpoint") -> str:
        """Commit every memory written since the last checkpoint (and the access counts
        gathered since); returns the commit id."""
        check_str(message, "message")
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
        self._indexes.invalidate()

    def rollback(self, checkpoint: str, message: str | None = None) -> str:
        """Return every memory to its state at ``checkpoint`` (any ref) by recording a new
        checkpoint equal to it (history is kept, so the rollback is audited too).
        Uncommitted memories are dropped. Returns the new commit id."""
        check_str(checkpoint, "checkpoint")
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
        check_str(a, "a")
        check_str(b, "b")
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
        check_str(ref, "ref")
        with self._lock:
            if self._storage.has_staged() and not discard:
                raise ValueError("there are uncommitted memories: checkpoint() them first, "
                                 "or pass discard=True")
            self._storage.checkout(ref, "discard")
            self._access.clear()
            self._committed()
            self._indexes.invalidate()

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
        check_str(branch, "branch")

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
            check_ttl(archive_after)
        check_confidence(min_confidence)
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
                        merged["tags"] = check_tags(merged["tags"] + r.get("tags", []))
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
            self._indexes.close()
            self._storage.close()

    def __enter__(self) -> "AgentMemorySystem":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AgentMemorySystem(agent_id={self.agent_id!r})"
