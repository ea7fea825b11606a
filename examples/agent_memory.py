"""Agent memory, offline: the seed README's example, then rollback, a branch and a merge.

Run: python examples/agent_memory.py   (needs the `search` extra; no network, no model
download: the default embedder is a deterministic hash embedder; pass
WordLlamaEmbedder() for search by meaning with the weights the wordllama wheel ships).
"""

import tempfile

from prollytree.memory import AgentMemorySystem, MemoryQuery, MemoryType

path = tempfile.mkdtemp(prefix="agent-memory-") + "/agent_memory"

# -- the seed example, in Python ---------------------------------------------------------
memory = AgentMemorySystem.init_with_thread_safe_git(path, "assistant_001", None)
memory.short_term.store_conversation_turn("session_123", "user",
                                          "What's the weather in Tokyo?", None)
fact = memory.semantic.store_fact("location", "tokyo", {"timezone": "JST", "temp": "22°C"},
                                  0.9, "weather_api")
results = memory.semantic.query(MemoryQuery(memory_types=[MemoryType.Semantic],
                                            text_query="Tokyo", limit=5))
commit_id = memory.checkpoint("Weather session")
print(f"Stored {len(results)} memories, checkpoint: {commit_id[:12]}")

# -- a wrong belief, then a rollback -------------------------------------------------------
memory.update(fact, {"entity_type": "location", "entity_id": "tokyo",
                     "facts": {"timezone": "UTC", "temp": "-40°C"}}, source="broken_sensor")
memory.checkpoint("Bad sensor reading")
print("believed:", memory.get(fact).content["facts"]["temp"])
memory.rollback(commit_id)
print("after rollback:", memory.get(fact).content["facts"]["temp"])
print("audit trail:", [h["message"] for h in memory.history(fact)])

# -- try a line of reasoning on a branch, then merge it --------------------------------------
memory.branch("plan-trip")
memory.procedural.store_procedure("pack for Tokyo", "what to bring",
                                  ["umbrella", "light jacket"], "travel", priority=2)
memory.checkpoint("Plan the trip")
memory.checkout("main")
print("procedures on main before merge:",
      len(memory.procedural.get_procedures_by_category("travel")))
memory.merge("plan-trip")
print("procedures on main after merge:",
      [p.content["name"] for p in memory.procedural.get_procedures_by_category("travel")])

# -- search by words and by meaning --------------------------------------------------------
hits = memory.query(MemoryQuery(semantic_query="weather in Japan", limit=2))
print("semantic:", [h.memory.kind for h in hits])
print("checkpoints:", [c["message"] for c in memory.list_checkpoints()])
memory.close()
