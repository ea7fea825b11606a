"""How a memory is laid out in its tree.

Key layout inside ``memory/<type>`` (every part UTF-8; ``\\0`` separates free-form parts,
which therefore may not contain it):

* ``m/<id>`` -> the memory record (JSON): the one source of truth;
* secondary keys, derived from the record and rewritten with it, for ordered lookups:
  ``t/<thread>\\0<created ns>\\0<id>`` (conversation turns in order),
  ``w/<thread>\\0<key>`` -> id (working memory), ``x/<thread>`` -> id (session context),
  ``f/<entity type>\\0<entity id>\\0<id>`` (facts), ``r/<type>\\0<entity>\\0<id>``
  (relationships, one per endpoint), ``p/<time ns>\\0<id>`` (episodes and
  interactions by time), ``c/<category>\\0<id>`` (procedures and rules).
"""

from __future__ import annotations

import json
import math
from typing import Any

from .types import Memory, MemoryMetadata, MemoryType

PRIMARY = b"m/"

#: the fields each kind's content must have, with their types
REQUIRED: dict[str, dict[str, Any]] = {
    "turn": {"role": str, "content": str},
    "working": {"key": str},
    "context": {"context": dict},
    "fact": {"entity_type": str, "entity_id": str, "facts": object},
    "relationship": {"from_type": str, "from_id": str, "relation": str, "to_type": str,
                     "to_id": str},
    "episode": {"description": str, "timestamp": float},
    "interaction": {"interaction_type": str, "summary": str, "timestamp": float},
    "procedure": {"name": str, "steps": list, "category": str, "priority": int},
    "rule": {"name": str, "condition": object, "action": object, "category": str,
             "priority": int, "enabled": bool},
}

KIND_TYPE = {"turn": MemoryType.ShortTerm, "working": MemoryType.ShortTerm,
             "context": MemoryType.ShortTerm, "fact": MemoryType.Semantic,
             "relationship": MemoryType.Semantic, "episode": MemoryType.Episodic,
             "interaction": MemoryType.Episodic, "procedure": MemoryType.Procedural,
             "rule": MemoryType.Procedural}


def part(value: str, what: str) -> bytes:
    """A free-form key part: a str without NUL."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value.encode()


def check_content(kind: str, content: Any) -> None:
    if not isinstance(content, dict):
        raise TypeError(f"{kind} content must be a dict, not {type(content).__name__}")
    for name, typ in REQUIRED[kind].items():
        if name not in content:
            raise ValueError(f"{kind} content lacks {name!r}")
        v = content[name]
        if typ is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        elif typ is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        else:
            ok = isinstance(v, typ)
        if not ok:
            raise TypeError(f"{kind} content field {name!r} must be {typ.__name__}, "
                            f"not {type(v).__name__}")
    try:
        json.dumps(content, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{kind} content must be JSON-serialisable: {e}") from None


def ns_int(t: float) -> int:
    return max(0, int(round(t * 1e9)))


def secondary_keys(rec: dict) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs that index ``rec`` besides its primary key."""
    kind, c, mid = rec["kind"], rec["content"], rec["id"].encode()
    thread = rec.get("thread_id")
    if kind == "turn":
        return [(b"t/" + part(thread, "thread_id") + b"\0" + b"%020d" % ns_int(rec["created_at"])
                 + b"\0" + mid, b"")]
    if kind == "working":
        return [(b"w/" + part(thread, "thread_id") + b"\0" + part(c["key"], "key"), mid)]
    if kind == "context":
        return [(b"x/" + part(thread, "thread_id"), mid)]
    if kind == "fact":
        return [(b"f/" + part(c["entity_type"], "entity_type") + b"\0"
                 + part(c["entity_id"], "entity_id") + b"\0" + mid, b"")]
    if kind == "relationship":
        a = b"r/" + part(c["from_type"], "from_type") + b"\0" + part(c["from_id"], "from_id")
        b = b"r/" + part(c["to_type"], "to_type") + b"\0" + part(c["to_id"], "to_id")
        return sorted({(a + b"\0" + mid, b""), (b + b"\0" + mid, b"")})
    if kind in ("episode", "interaction"):
        return [(b"p/" + b"%020d" % ns_int(c["timestamp"]) + b"\0" + mid, b"")]
    if kind in ("procedure", "rule"):
        return [(b"c/" + part(c["category"], "category") + b"\0" + mid, b"")]
    raise ValueError(f"unknown memory kind {kind!r}")  # pragma: no cover


def _flatten(value: Any, out: list[str], keys: bool) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if keys:
                out.append(str(k))
            _flatten(v, out, True)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _flatten(v, out, keys)
    elif value is not None and not isinstance(value, bool):
        out.append(str(value))


def text_of(rec: dict) -> str:
    """The searchable text of a record: its content's values (and the keys of nested
    objects, e.g. fact names), plus its tags."""
    out: list[str] = []
    c = rec["content"]
    if isinstance(c, dict):
        for k, v in c.items():
            if k in ("timestamp", "priority", "enabled"):
                continue
            _flatten(v, out, True)
    else:
        _flatten(c, out, True)
    out.extend(rec.get("tags", ()))
    return " ".join(out)


def encode(rec: dict) -> bytes:
    return json.dumps(rec, sort_keys=True, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


def decode(raw: bytes) -> dict:
    return json.loads(raw)


def to_memory(rec: dict, extra_access: int = 0) -> Memory:
    meta = MemoryMetadata(
        created_at=rec["created_at"], updated_at=rec["updated_at"], agent_id=rec["agent_id"],
        thread_id=rec.get("thread_id"), tags=tuple(rec.get("tags", ())), ttl=rec.get("ttl"),
        access_count=rec.get("access_count", 0) + extra_access, source=rec.get("source"),
        confidence=rec.get("confidence", 1.0), related=tuple(rec.get("related", ())),
        archived=rec.get("archived", False))
    return Memory(id=rec["id"], memory_type=MemoryType(rec["type"]), kind=rec["kind"],
                  namespace=rec["namespace"], content=rec["content"], metadata=meta)


def document(key: bytes, value: bytes) -> str | None:
    """The search indexes' view of a memory tree's entry (``key`` within its tree):
    records only, secondary keys are not documents."""
    if not key.startswith(PRIMARY):
        return None
    try:
        return text_of(decode(value))
    except (ValueError, KeyError, TypeError):
        return None
