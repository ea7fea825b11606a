"""The four memory kinds an :class:`~.system.AgentMemorySystem` offers (``short_term``,
``semantic``, ``episodic``, ``procedural``): each a view of the system restricted to one
memory type, with the kind's own records and lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from . import records as R
from .checks import KEEP, check_str
from .types import Memory, MemoryQuery, MemoryResult, MemoryType, to_timestamp

if TYPE_CHECKING:
    from .system import AgentMemorySystem


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
                                ttl: Any = KEEP) -> str:
        """Append a turn to thread ``thread_id``; returns its id."""
        R.part(thread_id, "thread_id")
        check_str(role, "role")
        check_str(content, "content")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError("metadata must be a dict or None")
        s = self._sys
        with s._lock:
            return s._new(self.TYPE, "turn", f"threads/{thread_id}/conversation",
                          {"role": role, "content": content, "metadata": metadata},
                          thread_id=thread_id, tags=tags,
                          ttl=s._ttl if ttl is KEEP else ttl)

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
        return self._of_entity(b"f/", entity_type, entity_id)

    def _of_entity(self, index: bytes, entity_type: str, entity_id: str) -> list[Memory]:
        """Records under ``index`` + the entity's key, oldest first."""
        prefix = (index + R.part(entity_type, "entity_type") + b"\0"
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
        return self._of_entity(b"r/", entity_type, entity_id)


class EpisodicMemory(_KindMemory):
    """Episodes (what happened, in what context, with what outcome) and interactions,
    with an importance (kept as the memory's confidence)."""

    TYPE = MemoryType.Episodic

    def store_episode(self, description: str, context: Any = None, outcome: Any = None,
                      importance: float = 0.5, timestamp: Any = None, *,
                      tags: Any = None) -> str:
        """Record an episode at ``timestamp`` (default now); returns the id."""
        check_str(description, "description")
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
        check_str(summary, "summary")
        if isinstance(participants, str):
            raise TypeError("participants must be a list of str")
        parts = [check_str(p, "participant") for p in participants]
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
        check_str(name, "name")
        check_str(description, "description")
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
        check_str(name, "name")
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
