"""examples/agent_memory.py runs offline and shows what it promises."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_memory.py"


def test_agent_memory_example_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["HOME"] = str(tmp_path)  # no Git identity configured: the store supplies one
    proc = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("Stored 1 memories, checkpoint: ")
    assert "believed: -40°C" in out and "after rollback: 22°C" in out
    assert any(line.startswith("audit trail: ['Rollback to ") for line in out)
    assert "procedures on main before merge: 0" in out
    assert "procedures on main after merge: ['pack for Tokyo']" in out
    assert "semantic: ['turn', 'fact']" in out
