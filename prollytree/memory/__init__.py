"""Agent memory on prollytree: short-term, semantic, episodic and procedural memories in
one versioned dataset (each kind a tree of one commit), with checkpoints, rollback,
branches, merges, an audit trail per memory, and offline BM25 and semantic search.

```python
from prollytree.memory import AgentMemorySystem, MemoryQuery, MemoryType
memory = AgentMemorySystem("./agent_memory", "assistant_001")
memory.semantic.store_fact("location", "tokyo", {"timezone": "JST"}, 0.9, "weather_api")
memory.semantic.query(MemoryQuery(text_query="Tokyo", limit=5))
memory.checkpoint("Weather session")
```
"""

from .system import (
    AgentMemorySystem, EpisodicMemory, ProceduralMemory, SemanticMemory, ShortTermMemory,
)
from .types import Memory, MemoryMetadata, MemoryQuery, MemoryResult, MemoryType

__all__ = [
    "AgentMemorySystem", "ShortTermMemory", "SemanticMemory", "EpisodicMemory",
    "ProceduralMemory", "Memory", "MemoryMetadata", "MemoryQuery", "MemoryResult",
    "MemoryType",
]
