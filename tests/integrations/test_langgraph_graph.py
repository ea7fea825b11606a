"""A real LangGraph StateGraph on ProllyCheckpointSaver: run to an interrupt, resume in a
new process, time-travel and fork from an earlier checkpoint."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("langgraph")

GRAPH = textwrap.dedent("""
    import operator, sys
    from typing import Annotated, TypedDict
    from langgraph.graph import StateGraph, START, END
    from langgraph.types import interrupt, Command
    from prollytree.integrations.langgraph import ProllyCheckpointSaver

    class State(TypedDict):
        log: Annotated[list, operator.add]
        approved: str

    def plan(state):
        return {"log": ["planned"]}

    def approve(state):
        answer = interrupt("approve the plan?")
        return {"log": [f"approval:{answer}"], "approved": answer}

    def act(state):
        return {"log": [f"acted({state['approved']})"]}

    def build(path):
        g = StateGraph(State)
        g.add_node("plan", plan)
        g.add_node("approve", approve)
        g.add_node("act", act)
        g.add_edge(START, "plan")
        g.add_edge("plan", "approve")
        g.add_edge("approve", "act")
        g.add_edge("act", END)
        saver = ProllyCheckpointSaver(path)
        return g.compile(checkpointer=saver), saver
""")

STEP1 = GRAPH + textwrap.dedent("""
    app, saver = build(sys.argv[1])
    config = {"configurable": {"thread_id": "t1"}}
    out = app.invoke({"log": ["start"]}, config)
    print("interrupted:", out["__interrupt__"][0].value)
    print("next:", app.get_state(config).next)
    saver.close()
""")

STEP2 = GRAPH + textwrap.dedent("""
    app, saver = build(sys.argv[1])
    config = {"configurable": {"thread_id": "t1"}}
    print("next:", app.get_state(config).next)
    out = app.invoke(Command(resume="yes"), config)
    print("final:", out["log"])
    # time travel: the checkpoint right after "plan" ran (before the approval)
    history = list(app.get_state_history(config))
    print("checkpoints:", len(history))
    before = next(s for s in history if s.next == ("approve",))
    print("past values:", before.values["log"])
    # fork: change the past state and run on from there; the original thread is intact
    fork_config = app.update_state(before.config, {"log": ["edited"]})
    out = app.invoke(None, fork_config)
    print("fork interrupted:", out["__interrupt__"][0].value)
    out = app.invoke(Command(resume="no"), fork_config)
    print("fork final:", out["log"])
    print("latest:", app.get_state(config).values["log"])
    print("original kept:", any(s.values.get("log") == ["start", "planned", "approval:yes",
                                                        "acted(yes)"]
                                for s in app.get_state_history(config)))
    # every checkpoint is a commit of the dataset
    log = saver.storage.log()
    print("commits:", sum(1 for c in log if c["message"].startswith("checkpoint t1 ")) >= len(history))
    saver.close()
""")


def run(script: str, path: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", script, path], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_interrupt_resume_in_new_process_time_travel_and_fork(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = str(tmp_path / "graph-state")
    assert run(STEP1, path) == ["interrupted: approve the plan?", "next: ('approve',)"]
    out = run(STEP2, path)
    assert out[0] == "next: ('approve',)"
    assert out[1] == "final: ['start', 'planned', 'approval:yes', 'acted(yes)']"
    assert int(out[2].split()[1]) >= 4
    assert out[3] == "past values: ['start', 'planned']"
    assert out[4] == "fork interrupted: approve the plan?"
    assert out[5] == "fork final: ['start', 'planned', 'edited', 'approval:no', 'acted(no)']"
    assert out[6] == "latest: ['start', 'planned', 'edited', 'approval:no', 'acted(no)']"
    assert out[7] == "original kept: True"
    assert out[8] == "commits: True"
