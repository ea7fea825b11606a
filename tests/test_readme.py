"""Every example in the README runs as written: the Python blocks and the shell session."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
PY_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)
CONSOLE_BLOCKS = re.findall(r"```console\n(.*?)```", TEXT, re.S)


def git_env(tmp_path: Path) -> dict:
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "HOME": str(tmp_path), "PATH": bindir + os.pathsep + os.environ["PATH"],
            "GIT_AUTHOR_NAME": "Readme", "GIT_AUTHOR_EMAIL": "readme@example.invalid",
            "GIT_COMMITTER_NAME": "Readme", "GIT_COMMITTER_EMAIL": "readme@example.invalid"}


def test_readme_has_examples():
    assert len(PY_BLOCKS) >= 3 and CONSOLE_BLOCKS


@pytest.mark.parametrize("index", range(len(PY_BLOCKS)))
def test_python_block_runs(index, tmp_path):
    # blocks build on the ones before them (the tree example defines `tree`, ...)
    code = "\n".join(PY_BLOCKS[: index + 1])
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=git_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("index", range(len(CONSOLE_BLOCKS)))
def test_console_block_runs(index, tmp_path):
    lines = [ln[2:] for ln in CONSOLE_BLOCKS[index].splitlines() if ln.startswith("$ ")]
    script = "set -e\n" + "\n".join(ln.split("  #")[0] for ln in lines)
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=git_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the printed lines of the session (not starting with "$") appear in the output
    shown = [ln for ln in CONSOLE_BLOCKS[index].splitlines()
             if ln.strip() and not ln.startswith("$ ")]
    for line in shown:
        assert line in proc.stdout, (line, proc.stdout)


def test_demo_runs(tmp_path):
    demo = README.parent / "examples" / "demo.py"
    env = {k: v for k, v in git_env(tmp_path).items() if not k.startswith("GIT_")}
    proc = subprocess.run([sys.executable, str(demo)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "after merge, jp -> b'Tokyo'" in out
    assert "Correct the capital of Japan" in out       # printed by `git log`
    assert "same root from another order: True" in out
    assert "proof verifies: True" in out and "forged value verifies: False" in out
