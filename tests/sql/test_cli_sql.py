"""git prolly sql: queries, scripts on stdin, --ref time travel, formats, errors."""

import json
import os
import shutil
import subprocess
import sys

import pytest

EXE = shutil.which("git-prolly", path=os.path.dirname(sys.executable))


def test_git_prolly_sql(tmp_path):
    if EXE is None:
        pytest.skip("git-prolly is not installed next to the test interpreter")
    env = dict(os.environ, HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.com",
               GIT_COMMITTER_NAME="C", GIT_COMMITTER_EMAIL="c@example.com")
    env.pop("GIT_PROLLY_DEBUG", None)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)

    def gp(*args, input=None):
        r = subprocess.run([EXE, *args], cwd=tmp_path, env=env, capture_output=True,
                           text=True, input=input)
        assert "Traceback" not in r.stderr, r.stderr
        return r

    assert gp("init").returncode == 0
    r = gp("sql", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); "
                  "INSERT INTO t VALUES (1, 'a'), (2, NULL)")
    assert r.returncode == 0 and r.stdout == "insert: 2 row(s)\n"
    assert gp("sql", "SELECT prolly_commit('rows') IS NOT NULL AS ok").stdout == "1\n"
    r = gp("sql", "--format", "json", input="UPDATE t SET v = 'b' WHERE id = 2;\n"
                                             "SELECT * FROM t ORDER BY id;\n")
    assert json.loads(r.stdout) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    assert gp("sql", "SELECT * FROM t ORDER BY id", "--ref", "HEAD", "--format",
              "csv").stdout == 'id,v\n1,"a"\n2,\n'
    assert gp("sql", "SELECT * FROM t ORDER BY id").stdout == "1\ta\n2\tb\n"
    r = gp("sql", "SELECT * FROM nope")
    assert r.returncode == 2 and r.stderr.startswith("error: SQL: no such table")
    r = gp("sql", "DELETE FROM t", "--ref", "HEAD")
    assert r.returncode == 2 and "read-only" in r.stderr
    subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict"], check=True,
                   capture_output=True)
