"""The memory view: the kinds of agent memory a dataset holds and a search over them,
through :class:`prollytree.memory.AgentMemorySystem`'s public API (``get_system_stats``,
``query``). Memories are read from the working copy of the current branch.

The memory system opens its own store object on the dataset, which only the Git backend
allows while the app holds the dataset open (the File and RocksDB backends admit one
open writer per dataset): on other backends the view says so.
"""

from __future__ import annotations

import json
from typing import Any

from .params import BadRequest

MEMORY_PREFIX = "memory/"


class MemoryView:
    def __init__(self, store: Any) -> None:
        self.store = store
        self._system = None

    def present(self) -> bool:
        """Whether the current commit (or the staged trees) hold agent memory."""
        return any(t.startswith(MEMORY_PREFIX) for t in self.store.list_trees())

    def available(self) -> str | None:
        """None when the view can open the memory system, else why not."""
        try:
            import prollytree.memory  # noqa: F401
        except ImportError as e:
            return f"the memory layer is not installed ({e.name} is missing)"
        from prollytree import StorageBackend
        if self.store.storage_backend() is not StorageBackend.Git:
            return (f"the memory view needs a Git-backed dataset; this one uses the "
                    f"{self.store.storage_backend().name} backend, which admits one open "
                    f"writer (query it with prollytree.memory instead)")
        return None

    def system(self):
        if self._system is None:
            from prollytree.memory import AgentMemorySystem
            self._system = AgentMemorySystem(self.store.path, "web-ui",
                                             storage_backend=self.store.storage_backend())
        return self._system

    def close(self) -> None:
        if self._system is not None:
            self._system.close()
            self._system = None

    def page(self, text: str, kind: str, namespace: str, tag: str, limit: int) -> dict:
        """Stats and the memories matching the search (newest first without ``text``;
        ranked by BM25 with it)."""
        why = self.available()
        out: dict = {"present": self.present(), "unavailable": why, "q": text, "kind": kind,
                     "namespace": namespace, "tag": tag, "stats": None, "results": []}
        if why is not None or not out["present"]:
            return out
        from prollytree.memory import MemoryQuery, MemoryType
        types = None
        if kind:
            try:
                types = [MemoryType(kind)]
            except ValueError:
                raise BadRequest(f"kind must be one of "
                                 f"{', '.join(t.value for t in MemoryType)}, not {kind!r}") \
                    from None
        system = self.system()
        stats = system.get_system_stats()
        out["stats"] = {k: stats[k] for k in ("total", "by_type", "by_kind", "agents",
                                              "expired", "archived")}
        q = MemoryQuery(namespace=namespace or None, memory_types=types,
                        tags=[tag] if tag else None, text_query=text or None, limit=limit)
        for r in system.query(q):
            m = r.memory
            md = m.metadata
            out["results"].append({
                "id": m.id, "type": m.memory_type.value, "kind": m.kind,
                "namespace": m.namespace, "content": m.content,
                "content_text": json.dumps(m.content, ensure_ascii=False, indent=1)[:2000],
                "score": r.score, "created_at": md.created_at, "agent_id": md.agent_id,
                "tags": list(md.tags), "confidence": md.confidence})
        return out
