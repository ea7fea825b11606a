"""AgentMemorySystem: the seed example, persistence across processes, threads, TTL,
optimize, filters, audit trail, caches, bad input."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from prollytree.memory import AgentMemorySystem, MemoryQuery, MemoryType
from prollytree.search import CallableEmbedder, HashEmbedder
from prollytree.versioning import StorageBackend


def test_seed_example(tmp_path):
    memory = AgentMemorySystem.init_with_thread_safe_git(tmp_path / "agent_memory",
                                                         "assistant_001", None)
    tid = memory.short_term.store_conversation_turn("session_123", "user",
                                                    "What's the weather in Tokyo?", None)
    fid = memory.semantic.store_fact("location", "tokyo",
                                     {"timezone": "JST", "temp": "22°C"}, 0.9, "weather_api")
    results = memory.semantic.query(MemoryQuery(memory_types=[MemoryType.Semantic],
                                                text_query="Tokyo", limit=5))
    assert [r.id for r in results] == [fid]
    r = results[0]
    assert r.score > 0 and r.metadata.confidence == 0.9 and r.metadata.source == "weather_api"
    assert r.metadata.agent_id == "assistant_001"
    commit_id = memory.checkpoint("Weather session")
    assert len(commit_id) == 40
    assert memory.list_checkpoints()[0] == {"id": commit_id, "message": "Weather session",
                                            "timestamp": memory.list_checkpoints()[0]["timestamp"]}
    # both kinds answer a system-wide query; the turn is found by its words too
    assert {x.id for x in memory.query(MemoryQuery(text_query="weather tokyo"))} == {tid, fid}
    memory.close()


PERSIST = textwrap.dedent("""
    import sys
    from prollytree.memory import AgentMemorySystem, MemoryQuery
    path, step = sys.argv[1], sys.argv[2]
    m = AgentMemorySystem(path, "a1")
    if step == "write":
        m.semantic.store_fact("person", "ann", {"likes": "green tea"}, 0.8, "chat")
        m.checkpoint("facts")
        m.short_term.store_conversation_turn("s1", "user", "remember the blue kettle")
        m.procedural.store_rule("greet", "new user", "say hello", "social")
        # closed with two memories uncommitted
    else:
        hits = m.query(MemoryQuery(text_query="kettle tea"))
        print(sorted(h.memory.kind for h in hits))
        print(len(m.short_term.get_conversation_history("s1")))
        print([r.content["name"] for r in m.procedural.get_active_rules_by_category("social")])
        print(m.get_system_stats()["total"], m.get_system_stats()["uncommitted"])
        print(m.query(MemoryQuery(semantic_query="green tea", limit=1))[0].memory.kind)
    m.close()
""")


def run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_reopened_by_a_new_process_with_everything_in_place(tmp_path):
    path = str(tmp_path / "mem")
    run(PERSIST, path, "write")
    out = run(PERSIST, path, "read").splitlines()
    assert out == ["['fact', 'turn']", "1", "['greet']", "3 True", "fact"]
    # the derived caches can be deleted: the next process rebuilds them
    caches = list(tmp_path.rglob("memory-cache"))
    assert caches
    for c in caches:
        shutil.rmtree(c)
    assert run(PERSIST, path, "read").splitlines() == out


@pytest.mark.parametrize("backend", [StorageBackend.File, StorageBackend.InMemory])
def test_other_backends(tmp_path, backend):
    m = AgentMemorySystem(tmp_path / "m", "a", storage_backend=backend)
    fid = m.semantic.store_fact("x", "y", {"colour": "teal"}, 0.5, "s")
    c1 = m.checkpoint("one")
    m.update(fid, {"entity_type": "x", "entity_id": "y", "facts": {"colour": "amber"}})
    m.checkpoint("two")
    assert [h["memory"].content["facts"]["colour"] for h in m.history(fid)] == ["amber", "teal"]
    assert [r.id for r in m.query(MemoryQuery(text_query="amber"))] == [fid]
    m.rollback(c1)
    assert m.get(fid).content["facts"]["colour"] == "teal"
    assert m.query(MemoryQuery(text_query="amber")) == []
    assert [r.id for r in m.query(MemoryQuery(text_query="teal"))] == [fid]
    m.close()


def test_threads_share_one_system(tmp_path):
    m = AgentMemorySystem(tmp_path / "m", "a", storage_backend=StorageBackend.File)
    errors = []

    def worker(n: int) -> None:
        try:
            for i in range(30):
                m.short_term.store_conversation_turn(f"t{n}", "user", f"message {i} from {n}")
                if i % 10 == 0:
                    m.query(MemoryQuery(text_query="message", limit=3))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for n in range(4):
        turns = m.short_term.get_conversation_history(f"t{n}")
        assert [t.content["content"] for t in turns] == [f"message {i} from {n}"
                                                          for i in range(30)]
    assert len(m.query(MemoryQuery(text_query="message", limit=1000))) == 120
    m.close()


def test_ttl_expiry_and_optimize(tmp_path, clock):
    m = AgentMemorySystem(tmp_path / "m", "a", storage_backend=StorageBackend.InMemory,
                          short_term_ttl=60, clock=clock)
    old = m.short_term.store_conversation_turn("t", "user", "old question")
    ep = m.episodic.store_episode("ancient event", timestamp=clock.t)
    low = m.semantic.store_fact("p", "q", {"v": "maybe"}, 0.05, "rumour")
    d1 = m.semantic.store_fact("p", "q", {"v": "sure"}, 0.7, "a", tags=["x"])
    d2 = m.semantic.store_fact("p", "q", {"v": "sure"}, 0.9, "b", tags=["y"])
    clock.advance(61)
    new = m.short_term.store_conversation_turn("t", "user", "new question")
    assert [t.id for t in m.short_term.get_conversation_history("t")] == [new]
    assert [t.id for t in m.short_term.get_conversation_history("t", include_expired=True)] \
        == [old, new]
    assert {r.id for r in m.query(MemoryQuery(text_query="question"))} == {new}
    assert {r.id for r in m.query(MemoryQuery(text_query="question", include_expired=True))} \
        == {old, new}
    clock.advance(100 * 86400)
    counts = m.optimize(archive_after=30 * 86400, min_confidence=0.1)
    assert counts == {"expired": 2, "consolidated": 1, "archived": 1, "pruned": 1}
    assert m.get(old) is None and m.get(low) is None and m.get(d1) is None
    kept = m.get(d2)
    assert set(kept.metadata.tags) == {"x", "y"} and kept.metadata.confidence == 0.9
    assert m.get(ep).metadata.archived
    assert m.query(MemoryQuery(text_query="ancient")) == []
    assert [r.id for r in m.query(MemoryQuery(text_query="ancient", include_archived=True))] \
        == [ep]
    assert m.optimize() == {"expired": 0, "consolidated": 0, "archived": 0, "pruned": 0}


def test_filters_against_brute_force(tmp_path, clock):
    m = AgentMemorySystem(tmp_path / "m", "a", storage_backend=StorageBackend.InMemory,
                          short_term_ttl=None, clock=clock)
    ids = {}
    for i in range(40):
        tags = [t for t in ("red", "blue", "green") if i % (2 + ["red", "blue", "green"].index(t)) == 0]
        if i % 3 == 0:
            mid = m.semantic.store_fact("city", f"c{i % 4}", {"note": f"word{i % 5} city"}, 0.5,
                                        "s", tags=tags)
        elif i % 3 == 1:
            mid = m.episodic.store_episode(f"word{i % 5} trip", timestamp=1000 + i, tags=tags)
        else:
            mid = m.short_term.store_conversation_turn(f"th{i % 2}", "user", f"word{i % 5} chat",
                                                       tags=tags)
        ids[mid] = m.get(mid)
        clock.advance(10)
    allm = list(ids.values())
    created = sorted(x.metadata.created_at for x in allm)
    lo, hi = created[5], created[30]
    lo_dt = dt.datetime.fromtimestamp(created[7] - 1, dt.timezone.utc)
    cases = [
        (MemoryQuery(namespace="entities/city"), lambda x: x.namespace.startswith("entities/city/")),
        (MemoryQuery(namespace="entities/city/c1"), lambda x: x.namespace == "entities/city/c1"),
        (MemoryQuery(tags=["red", "blue"]), lambda x: {"red", "blue"} <= set(x.metadata.tags)),
        (MemoryQuery(time_range=(lo, hi)), lambda x: lo <= x.metadata.created_at <= hi),
        (MemoryQuery(time_range=(lo_dt, None)), lambda x: lo_dt.timestamp() <= x.metadata.created_at),
        (MemoryQuery(memory_types=[MemoryType.Episodic, MemoryType.ShortTerm], tags=["green"]),
         lambda x: x.memory_type is not MemoryType.Semantic and "green" in x.metadata.tags),
        (MemoryQuery(text_query="word2", tags=["red"], limit=100),
         lambda x: "red" in x.metadata.tags and "word2" in str(x.content)),
        (MemoryQuery(semantic_query="word3", namespace="episodes", limit=100),
         lambda x: x.namespace == "episodes"),
    ]
    for q, pred in cases:
        got = m.query(q)
        assert {r.id for r in got} == {x.id for x in allm if pred(x)}, q
    # filter-only queries come newest first and honour the limit
    got = m.query(MemoryQuery(limit=3))
    assert [r.id for r in got] == [x.id for x in sorted(allm, key=lambda x: -x.metadata.created_at)][:3]
    # a vector works as a semantic query
    v = m.embedder.embed(["word1 trip"])[0]
    top = m.query(MemoryQuery(semantic_query=v, limit=1))[0]
    assert top.memory.content["description"] == "word1 trip"
    # hybrid: both kinds of ranking, fused
    both = m.query(MemoryQuery(text_query="word4", semantic_query="word4 chat", limit=5))
    assert len(both) == 5 and all(r.score > 0 for r in both)


def test_agents_share_a_store(tmp_path):
    a = AgentMemorySystem(tmp_path / "m", "alice", storage_backend=StorageBackend.File)
    a.semantic.store_fact("p", "x", {"k": "from alice"}, 1.0, "s")
    a.checkpoint("alice")
    a.close()
    b = AgentMemorySystem(tmp_path / "m", "bob", storage_backend=StorageBackend.File)
    b.semantic.store_fact("p", "x", {"k": "from bob"}, 1.0, "s")
    facts = b.semantic.get_entity_facts("p", "x")
    assert [f.metadata.agent_id for f in facts] == ["alice", "bob"]
    assert [r.memory.metadata.agent_id for r in b.query(MemoryQuery(agent_id="alice"))] == ["alice"]
    b.close()


def test_audit_trail_compare_and_branches(tmp_path):
    m = AgentMemorySystem(tmp_path / "m", "a")
    fid = m.semantic.store_fact("user", "u1", {"plan": "basic"}, 0.6, "signup")
    c1 = m.checkpoint("signup")
    m.update(fid, {"entity_type": "user", "entity_id": "u1", "facts": {"plan": "pro"}},
             confidence=0.9, source="billing")
    rid = m.procedural.store_rule("upsell", "plan == basic", "offer pro", "sales")
    c2 = m.checkpoint("upgrade")
    hist = m.history(fid)
    assert [h["commit"] for h in hist] == [c2, c1]
    assert [h["memory"].content["facts"]["plan"] for h in hist] == ["pro", "basic"]
    assert hist[0]["memory"].metadata.source == "billing"
    diff = m.compare_checkpoints(c1, c2)
    assert diff["semantic"] == {"added": [], "updated": [fid], "removed": []}
    assert diff["procedural"]["added"] == [rid]
    # a branch to try a line of reasoning, dropped
    m.branch("what-if")
    m.procedural.update_rule_status(rid, False)
    m.delete(fid)
    m.checkpoint("what if we stop upselling")
    assert m.procedural.get_active_rules_by_category("sales") == []
    main = "master" if "master" in m.list_branches() else "main"
    m.checkout(main)
    assert [r.id for r in m.procedural.get_active_rules_by_category("sales")] == [rid]
    assert m.get(fid) is not None
    assert {r.id for r in m.query(MemoryQuery(text_query="pro"))} == {fid, rid}
    # uncommitted memories block a checkout unless discarded
    m.semantic.store_fact("user", "u2", {}, 0.5, "x")
    with pytest.raises(ValueError, match="checkpoint"):
        m.checkout("what-if")
    m.checkout("what-if", discard=True)
    assert m.get(fid) is None and m.semantic.get_entity_facts("user", "u2") == []
    # detached at an old checkpoint: read-only, queries answer for that version
    m.checkout(c1)
    assert [r.id for r in m.query(MemoryQuery(text_query="basic"))] == [fid]
    assert m.query(MemoryQuery(text_query="upsell")) == []


def test_bad_input(tmp_path):
    m = AgentMemorySystem(tmp_path / "m", "a", storage_backend=StorageBackend.InMemory)
    with pytest.raises(TypeError):
        AgentMemorySystem(tmp_path / "m2", 5)
    with pytest.raises(ValueError):
        AgentMemorySystem(tmp_path / "m2", "")
    with pytest.raises(ValueError, match="not a memory id"):
        m.get("nope")
    with pytest.raises(TypeError):
        m.get(3)
    with pytest.raises(ValueError, match="confidence"):
        m.semantic.store_fact("a", "b", {}, 1.5, "s")
    with pytest.raises(ValueError, match="NUL"):
        m.short_term.store_conversation_turn("bad\0thread", "user", "x")
    with pytest.raises(TypeError):
        m.short_term.store_conversation_turn("t", "user", 42)
    with pytest.raises(TypeError):
        m.semantic.store_fact("a", "b", {"x": object()}, 0.5, "s")
    with pytest.raises(TypeError):
        m.query(MemoryQuery(memory_types=MemoryType.Semantic))
    with pytest.raises(ValueError):
        m.query(MemoryQuery(limit=-1))
    with pytest.raises(TypeError):
        m.query("tokyo")
    with pytest.raises(ValueError, match="lacks"):
        fid = m.semantic.store_fact("a", "b", {}, 0.5, "s")
        m.update(fid, {"facts": 1})
    assert m.get_system_stats()["total"] == 1  # failed calls changed nothing
    assert m.update("se-" + "0" * 32, tags=["x"]) is False
    assert m.delete("se-" + "0" * 32) is False


def test_embedder_mismatch_is_a_clear_error(tmp_path):
    m = AgentMemorySystem(tmp_path / "m", "a", HashEmbedder(32))
    m.semantic.store_fact("a", "b", {"x": "tokyo"}, 0.5, "s")
    m.query(MemoryQuery(semantic_query="tokyo"))
    m.checkpoint("one")
    m.close()
    # another embedder: its own cache, built from the dataset, nothing lost
    calls = []
    emb = CallableEmbedder("mine", "1", 8, lambda t: calls.append(len(t)) or np.ones((len(t), 8)))
    m2 = AgentMemorySystem(tmp_path / "m", "a", emb)
    assert len(m2.query(MemoryQuery(semantic_query="tokyo"))) == 1 and calls
