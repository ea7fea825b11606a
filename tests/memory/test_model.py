"""Every memory operation against a model made of dicts, across checkpoints, rollbacks,
branches and merges."""

from __future__ import annotations

import copy
import random

import pytest

from prollytree.memory import AgentMemorySystem, MemoryQuery, MemoryType
from prollytree.versioning import StorageBackend

from .conftest import FakeClock

VOCAB = ["apple", "banana", "cherry", "delta", "echo", "falcon", "granite", "harbor",
         "iris", "jungle", "kettle", "lemon"]
THREADS = ["t1", "t2", "t3"]
ENTITIES = [("person", "ann"), ("person", "bob"), ("city", "oslo")]
CATS = ["deploy", "support"]


class Model:
    """The expected memory: id -> entry; entries are plain dicts."""

    def __init__(self) -> None:
        self.mem: dict[str, dict] = {}
        self.tick = 0

    def put(self, mid: str, **entry) -> None:
        self.tick += 1
        old = self.mem.get(mid, {})
        self.mem[mid] = {**old, **entry, "updated": self.tick}

    def snapshot(self) -> dict:
        return copy.deepcopy(self.mem)


def words(rnd: random.Random, n: int = 3) -> str:
    return " ".join(rnd.sample(VOCAB, n))


def check(mem: AgentMemorySystem, model: dict[str, dict]) -> None:
    everything = mem.query(MemoryQuery(include_expired=True))
    assert {r.id for r in everything} == set(model)
    for mid, e in model.items():
        m = mem.get(mid)
        assert m is not None and m.kind == e["kind"]
        assert m.content == e["content"], (mid, m.content, e["content"])
        assert list(m.metadata.tags) == e.get("tags", [])
    # per-kind views
    for th in THREADS:
        want = sorted((e["order"], mid) for mid, e in model.items()
                      if e["kind"] == "turn" and e["thread"] == th)
        got = [m.id for m in mem.short_term.get_conversation_history(th)]
        assert got == [mid for _, mid in want]
        wm = {e["content"]["key"]: e["content"]["value"] for e in model.values()
              if e["kind"] == "working" and e["thread"] == th}
        assert mem.short_term.get_all_working_memory(th) == wm
    for et, eid in ENTITIES:
        want = {mid for mid, e in model.items() if e["kind"] == "fact"
                and (e["content"]["entity_type"], e["content"]["entity_id"]) == (et, eid)}
        assert {m.id for m in mem.semantic.get_entity_facts(et, eid)} == want
        want = {mid for mid, e in model.items() if e["kind"] == "relationship"
                and ((e["content"]["from_type"], e["content"]["from_id"]) == (et, eid)
                     or (e["content"]["to_type"], e["content"]["to_id"]) == (et, eid))}
        assert {m.id for m in mem.semantic.get_entity_relationships(et, eid)} == want
    for cat in CATS:
        want = {mid for mid, e in model.items() if e["kind"] == "rule"
                and e["content"]["category"] == cat and e["content"]["enabled"]}
        assert {m.id for m in mem.procedural.get_active_rules_by_category(cat)} == want
        want = {mid for mid, e in model.items() if e["kind"] == "procedure"
                and e["content"]["category"] == cat}
        assert {m.id for m in mem.procedural.get_procedures_by_category(cat)} == want
    eps = sorted((e["content"]["timestamp"], mid) for mid, e in model.items()
                 if e["kind"] == "episode" and 100 <= e["content"]["timestamp"] <= 500)
    got = mem.episodic.get_episodes_in_period(100, 500)
    assert sorted((m.content["timestamp"], m.id) for m in got) == eps
    # text search finds exactly the memories containing the word (all scores > 0)
    for w in VOCAB[:4]:
        want = {mid for mid, e in model.items() if w in e["words"]}
        got = mem.query(MemoryQuery(text_query=w, limit=10_000, include_expired=True))
        assert {r.id for r in got} == want, w
    # type filter + semantic search over one kind returns only that kind
    got = mem.query(MemoryQuery(semantic_query=VOCAB[0], memory_types=[MemoryType.Semantic],
                                limit=5))
    assert all(r.memory.memory_type is MemoryType.Semantic for r in got)
    n_sem = sum(1 for e in model.values() if e["kind"] in ("fact", "relationship"))
    assert len(got) == min(5, n_sem)


def random_op(rnd: random.Random, mem: AgentMemorySystem, model: Model, *,
              safe_for_merge: bool = False) -> None:
    ids = sorted(model.mem)
    r = rnd.random()
    if r < 0.15 and not safe_for_merge:
        th = rnd.choice(THREADS)
        text = words(rnd)
        mid = mem.short_term.store_conversation_turn(th, rnd.choice(["user", "assistant"]),
                                                     text)
        model.put(mid, kind="turn", thread=th, order=model.tick,
                  content={"role": mem.get(mid).content["role"], "content": text,
                           "metadata": None}, words=set(text.split()))
    elif r < 0.35:
        et, eid = rnd.choice(ENTITIES)
        text = words(rnd)
        mid = mem.semantic.store_fact(et, eid, {"info": text}, rnd.random(), "test")
        model.put(mid, kind="fact", content={"entity_type": et, "entity_id": eid,
                                             "facts": {"info": text}},
                  words=set(text.split()))
    elif r < 0.42 and not safe_for_merge:
        (a, b), (c, d) = rnd.sample(ENTITIES, 2)
        rel = rnd.choice(VOCAB)
        mid = mem.semantic.store_relationship(a, b, rel, c, d)
        model.put(mid, kind="relationship", content={
            "from_type": a, "from_id": b, "relation": rel, "to_type": c, "to_id": d,
            "properties": {}}, words={rel})
    elif r < 0.52:
        text = words(rnd)
        ts = float(rnd.randrange(0, 600))
        mid = mem.episodic.store_episode(text, None, None, 0.5, ts)
        model.put(mid, kind="episode", content={"description": text, "context": None,
                                                "outcome": None, "timestamp": ts},
                  words=set(text.split()))
    elif r < 0.58 and not safe_for_merge:
        cat = rnd.choice(CATS)
        name = rnd.choice(VOCAB)
        if rnd.random() < 0.5:
            mid = mem.procedural.store_rule(name, "always", "act", cat, rnd.randrange(3))
            model.put(mid, kind="rule", content={
                "name": name, "condition": "always", "action": "act", "category": cat,
                "priority": mem.get(mid).content["priority"], "enabled": True},
                words={name, "always", "act"})
        else:
            mid = mem.procedural.store_procedure(name, "how to", ["one", "two"], cat)
            model.put(mid, kind="procedure", content={
                "name": name, "description": "how to", "steps": ["one", "two"],
                "category": cat, "priority": 1, "conditions": None},
                words={name, "how", "to", "one", "two"})
    elif r < 0.64 and not safe_for_merge:
        th, key = rnd.choice(THREADS), rnd.choice(["goal", "mood"])
        value = rnd.choice(VOCAB)
        mid = mem.short_term.set_working_memory(th, key, value)
        model.put(mid, kind="working", thread=th, content={"key": key, "value": value},
                  words={key, value} | set(model.mem.get(mid, {}).get("tags", [])))
    elif r < 0.74 and ids:
        mid = rnd.choice(ids)
        tags = sorted(rnd.sample(VOCAB, 2))
        assert mem.update(mid, tags=tags)
        e = model.mem[mid]
        model.put(mid, tags=tags, words=(e["words"] - set(e.get("tags", []))) | set(tags)
                  | _content_words(e))
    elif r < 0.8 and ids:
        facts = [i for i in ids if model.mem[i]["kind"] == "fact"]
        if facts:
            mid = rnd.choice(facts)
            text = words(rnd)
            c = dict(model.mem[mid]["content"], facts={"info": text})
            assert mem.update(mid, c)
            model.put(mid, content=c, words=set(text.split()) | set(model.mem[mid].get("tags", [])))
    elif r < 0.86 and ids:
        rules = [i for i in ids if model.mem[i]["kind"] == "rule"]
        if rules and not safe_for_merge:
            mid = rnd.choice(rules)
            en = rnd.random() < 0.5
            assert mem.procedural.update_rule_status(mid, en)
            model.put(mid, content=dict(model.mem[mid]["content"], enabled=en))
    elif r < 0.95 and ids:
        mid = rnd.choice(ids)
        if safe_for_merge and model.mem[mid]["kind"] in ("turn", "working"):
            return
        assert mem.delete(mid)
        del model.mem[mid]
    elif not safe_for_merge:
        th = rnd.choice(THREADS)
        gone = [mid for mid, e in model.mem.items() if e.get("thread") == th]
        assert mem.short_term.clear_thread(th) == len(gone)
        for mid in gone:
            del model.mem[mid]


def _content_words(e: dict) -> set:
    c = e["content"]
    if e["kind"] == "fact":
        return set(c["facts"]["info"].split())
    if e["kind"] in ("turn",):
        return set(c["content"].split())
    if e["kind"] == "episode":
        return set(c["description"].split())
    if e["kind"] == "working":
        return {c["key"], c["value"]}
    if e["kind"] == "relationship":
        return {c["relation"]}
    if e["kind"] == "rule":
        return {c["name"], "always", "act"}
    return {c["name"], "how", "to", "one", "two"}


def three_way(base: dict, ours: dict, theirs: dict) -> dict:
    out = {}
    for mid in set(base) | set(ours) | set(theirs):
        b, o, t = base.get(mid), ours.get(mid), theirs.get(mid)
        if o == t:
            v = o
        elif o == b:
            v = t
        elif t == b:
            v = o
        elif o is None or t is None:
            v = o if t is None else t      # an update wins over a delete
        else:
            v = o if o["updated"] > t["updated"] else t
        if v is not None:
            out[mid] = v
    return out


SEEDS = int(__import__("os").environ.get("MEMORY_SEEDS", "4"))


@pytest.mark.parametrize("seed,backend", [(s, StorageBackend.InMemory) for s in range(SEEDS)]
                         + [(100, StorageBackend.Git), (101, StorageBackend.File)])
def test_model_with_checkpoints_rollbacks_and_merges(seed, backend, tmp_path, monkeypatch):
    rnd = random.Random(seed)
    ids = random.Random(seed + 1000)  # deterministic memory ids: a seed replays exactly
    monkeypatch.setattr("prollytree.memory.system.uuid.uuid4",
                        lambda: __import__("uuid").UUID(int=ids.getrandbits(128)))
    mem = AgentMemorySystem(tmp_path / "m", "agent", storage_backend=backend,
                            short_term_ttl=None, clock=FakeClock())
    model = Model()
    snaps: dict[str, dict] = {}
    for round_ in range(6):
        for _ in range(rnd.randint(5, 25)):
            random_op(rnd, mem, model)
        check(mem, model.mem)
        cid = mem.checkpoint(f"round {round_}")
        snaps[cid] = model.snapshot()
        if rnd.random() < 0.4 and len(snaps) > 1:
            target = rnd.choice(list(snaps))  # insertion order: commit ids vary by run
            for _ in range(3):
                random_op(rnd, mem, model)   # uncommitted work is dropped by rollback
            cid = mem.rollback(target)
            model.mem = copy.deepcopy(snaps[target])
            snaps[cid] = model.snapshot()
            check(mem, model.mem)
        if rnd.random() < 0.5:
            # try a line of reasoning on a branch, then merge it
            base = model.snapshot()
            mem.branch(f"idea{round_}")
            for _ in range(rnd.randint(3, 10)):
                random_op(rnd, mem, model, safe_for_merge=True)
            mem.checkpoint("idea")
            theirs = model.snapshot()
            check(mem, theirs)
            mem.checkout("main" if "main" in mem.list_branches() else "master")
            model.mem = copy.deepcopy(base)
            check(mem, model.mem)
            for _ in range(rnd.randint(0, 8)):
                random_op(rnd, mem, model, safe_for_merge=True)
            mem.checkpoint("main work")
            cid = mem.merge(f"idea{round_}")
            model.mem = three_way(base, model.mem, theirs)
            snaps[cid] = model.snapshot()
            check(mem, model.mem)
    # compare_checkpoints agrees with the snapshots
    ids = list(snaps)
    a, b = ids[0], ids[-1]
    d = mem.compare_checkpoints(a, b)
    added = {x for k in d.values() for x in k["added"]}
    removed = {x for k in d.values() for x in k["removed"]}
    updated = {x for k in d.values() for x in k["updated"]}
    sa, sb = snaps[a], snaps[b]
    assert added == set(sb) - set(sa)
    assert removed == set(sa) - set(sb)
    assert updated <= set(sa) & set(sb)
    assert {m for m in set(sa) & set(sb)
            if (sa[m]["content"], sa[m].get("tags")) != (sb[m]["content"], sb[m].get("tags"))
            } <= updated
