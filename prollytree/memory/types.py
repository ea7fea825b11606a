"""The memory system's value types: kinds, memories, their metadata, queries and results."""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass
from typing import Any, Sequence


class MemoryType(enum.Enum):
    """The four kinds of memory; each is a tree named ``memory/<value>``."""

    ShortTerm = "short_term"
    Semantic = "semantic"
    Episodic = "episodic"
    Procedural = "procedural"

    @property
    def tree(self) -> str:
        return "memory/" + self.value

    @property
    def id_prefix(self) -> str:
        return _PREFIX[self]

    @classmethod
    def of_id(cls, memory_id: str) -> "MemoryType":
        """The kind a memory id belongs to (ids start with ``st-``, ``se-``, ``ep-``,
        ``pr-``); ValueError for anything else."""
        if not isinstance(memory_id, str):
            raise TypeError(f"memory id must be a str, not {type(memory_id).__name__}")
        kind = _BY_PREFIX.get(memory_id[:3])
        if kind is None or len(memory_id) < 4:
            raise ValueError(f"not a memory id: {memory_id!r}")
        return kind


_PREFIX = {MemoryType.ShortTerm: "st-", MemoryType.Semantic: "se-",
           MemoryType.Episodic: "ep-", MemoryType.Procedural: "pr-"}
_BY_PREFIX = {v: k for k, v in _PREFIX.items()}


def to_timestamp(value: Any, what: str) -> float:
    """Seconds since the epoch from a number or a datetime (naive = UTC)."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number or a datetime, not bool")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    raise TypeError(f"{what} must be a number or a datetime, not {type(value).__name__}")


@dataclass(frozen=True)
class MemoryMetadata:
    """What is recorded about every memory. Times are seconds since the epoch."""

    created_at: float
    updated_at: float
    agent_id: str
    thread_id: str | None = None
    tags: tuple[str, ...] = ()
    ttl: float | None = None            # seconds, from creation
    access_count: int = 0
    source: str | None = None
    confidence: float = 1.0
    related: tuple[str, ...] = ()       # ids of related memories
    archived: bool = False

    @property
    def expires_at(self) -> float | None:
        return None if self.ttl is None else self.created_at + self.ttl

    def expired(self, now: float) -> bool:
        exp = self.expires_at
        return exp is not None and exp <= now


@dataclass(frozen=True)
class Memory:
    """One memory: ``kind`` says what it is within its type (turn, working, context,
    fact, relationship, episode, interaction, procedure, rule); ``content`` is a JSON
    value (a dict for every built-in kind); ``namespace`` is a '/'-separated path."""

    id: str
    memory_type: MemoryType
    kind: str
    namespace: str
    content: Any
    metadata: MemoryMetadata


@dataclass(frozen=True)
class MemoryResult:
    """A query hit: the memory and its score (BM25, cosine similarity, their fusion, or
    1.0 for a filter-only query)."""

    memory: Memory
    score: float

    @property
    def id(self) -> str:
        return self.memory.id

    @property
    def content(self) -> Any:
        return self.memory.content

    @property
    def metadata(self) -> MemoryMetadata:
        return self.memory.metadata


@dataclass
class MemoryQuery:
    """What to find. Filters combine with AND:

    * ``namespace``: the memory's namespace is this path or below it;
    * ``memory_types``: any of these kinds;
    * ``tags``: the memory has every one of these tags;
    * ``time_range``: ``(start, end)`` on creation time, inclusive (numbers or datetimes;
      None on one side leaves it open);
    * ``agent_id``: stored by this agent;
    * expired memories (TTL passed) and archived ones are left out unless asked for.

    ``text_query`` ranks by BM25; ``semantic_query`` (a text, embedded, or a vector) by
    cosine similarity; both together by reciprocal-rank fusion. Without either, matches
    come newest first. ``limit`` None: every match (ranked queries: 10)."""

    namespace: str | None = None
    memory_types: Sequence[MemoryType] | None = None
    tags: Sequence[str] | None = None
    time_range: tuple[Any, Any] | None = None
    text_query: str | None = None
    semantic_query: Any = None
    limit: int | None = None
    include_expired: bool = False
    agent_id: str | None = None
    include_archived: bool = False

    def checked(self) -> "MemoryQuery":
        """Validate field types and values (TypeError / ValueError naming the field)."""
        if self.namespace is not None and not isinstance(self.namespace, str):
            raise TypeError("MemoryQuery.namespace must be a str or None")
        if self.memory_types is not None:
            if isinstance(self.memory_types, (str, MemoryType)):
                raise TypeError("MemoryQuery.memory_types must be a list of MemoryType")
            for t in self.memory_types:
                if not isinstance(t, MemoryType):
                    raise TypeError(f"MemoryQuery.memory_types items must be MemoryType, "
                                    f"not {type(t).__name__}")
        if self.tags is not None:
            if isinstance(self.tags, str):
                raise TypeError("MemoryQuery.tags must be a list of str, not a str")
            for t in self.tags:
                if not isinstance(t, str):
                    raise TypeError("MemoryQuery.tags items must be str")
        if self.time_range is not None:
            if not isinstance(self.time_range, (tuple, list)) or len(self.time_range) != 2:
                raise TypeError("MemoryQuery.time_range must be a (start, end) pair")
            for v in self.time_range:
                if v is not None:
                    to_timestamp(v, "MemoryQuery.time_range bound")
        if self.text_query is not None and not isinstance(self.text_query, str):
            raise TypeError("MemoryQuery.text_query must be a str or None")
        if self.limit is not None:
            if isinstance(self.limit, bool) or not isinstance(self.limit, int):
                raise TypeError("MemoryQuery.limit must be an int or None")
            if self.limit < 0:
                raise ValueError(f"MemoryQuery.limit must be >= 0, got {self.limit}")
        for name in ("include_expired", "include_archived"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"MemoryQuery.{name} must be a bool")
        if self.agent_id is not None and not isinstance(self.agent_id, str):
            raise TypeError("MemoryQuery.agent_id must be a str or None")
        return self
