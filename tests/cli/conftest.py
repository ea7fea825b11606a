"""Helpers for the git-prolly tests: they drive the installed executable with subprocess
in temporary Git repositories and check its output, exit codes and the Git history.

CLI start-up dominates the run time, so tests batch several checks per scenario.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

EXE = shutil.which("git-prolly", path=os.path.dirname(sys.executable))

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.com",
    "GIT_COMMITTER_NAME": "Cid Committer", "GIT_COMMITTER_EMAIL": "cid@example.com",
}


def _env(home: Path) -> dict:
    env = dict(os.environ)
    env.update(GIT_ENV)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["PROLLYTREE_LOCK_TIMEOUT"] = "20"
    # let Python cache bytecode: without it every run recompiles prollytree's modules
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for k in ("NO_COLOR", "GIT_PROLLY_DEBUG", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(k, None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@dataclass
class Result:
    code: int
    out: bytes
    err: bytes

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8")

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8")

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def json(self):
        return json.loads(self.out)

    def __repr__(self) -> str:  # shown by pytest on a failed assertion
        return (f"Result(code={self.code}, out={self.out[:2000]!r}, "
                f"err={self.err[:2000]!r})")


class Runner:
    """``gp("set", "k", "v")`` runs git-prolly in ``cwd`` and returns a Result;
    ``gp.ok(...)`` also asserts exit code 0 and an empty stderr."""

    def __init__(self, cwd: Path, env: dict) -> None:
        self.cwd = cwd
        self.env = env

    def __call__(self, *args, cwd: Path | None = None, input: bytes | None = None,
                 env: dict | None = None) -> Result:
        e = dict(self.env)
        if env:
            e.update(env)
        r = subprocess.run([EXE, *[os.fsdecode(a) if isinstance(a, bytes) else str(a)
                                   for a in args]],
                           cwd=cwd or self.cwd, input=input if input is not None else b"",
                           capture_output=True, env=e, timeout=120)
        res = Result(r.returncode, r.stdout, r.stderr)
        assert b"Traceback" not in r.stderr, res
        return res

    def ok(self, *args, **kw) -> Result:
        r = self(*args, **kw)
        assert r.code == 0, r
        assert r.err == b"", r
        return r

    def fails(self, code: int, *args, **kw) -> Result:
        r = self(*args, **kw)
        assert r.code == code, r
        assert r.err.startswith(b"error: "), r
        assert r.err.count(b"\n") == 1, r          # a one-line cause
        return r

    def git(self, *args, cwd: Path | None = None, check: bool = True) -> str:
        r = subprocess.run(["git", *args], cwd=cwd or self.cwd, capture_output=True,
                           env=self.env, text=True)
        if check and r.returncode:
            raise AssertionError(f"git {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r.stdout


@pytest.fixture(scope="session", autouse=True)
def _executable():
    if EXE is None:
        pytest.fail("git-prolly is not installed next to the test interpreter: run "
                    "'pip install -e .' (scripts/test.sh does)")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def repo(tmp_path: Path, home: Path) -> Path:
    """A Git repository holding some code (one commit), identity configured."""
    r = tmp_path / "repo"
    r.mkdir()
    env = _env(home)
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "Repo User"],
                 ["config", "user.email", "repo@example.com"]):
        subprocess.run(["git", *args], cwd=r, check=True, env=env, capture_output=True)
    (r / "README.md").write_text("code\n")
    (r / "src").mkdir()
    (r / "src" / "app.py").write_text("print('hi')\n")
    subprocess.run(["git", "add", "-A"], cwd=r, check=True, env=env, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", "code"], cwd=r, check=True, env=env,
                   capture_output=True)
    return r


@pytest.fixture
def gp(repo: Path, home: Path) -> Runner:
    """A runner whose working directory is the repository root."""
    return Runner(repo, _env(home))


@pytest.fixture
def ds(gp: Runner, repo: Path) -> Runner:
    """A runner in ``repo/data``, a freshly initialised Git-backend dataset."""
    gp.ok("init", "data")
    return Runner(repo / "data", gp.env)
