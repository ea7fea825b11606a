"""import / export (JSON Lines, CSV), progress bars, and behaviour at the edges of the
process: pipes closed early, terminals."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import pty
import subprocess
import threading

from .conftest import EXE, Runner


def test_import_export_round_trip(ds: Runner, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"key": "user:1", "value": "Alice"},
            {"key": "user:2", "value": {"name": "Bob", "age": 30}},   # JSON value
            {"key": "n", "value": 42},
            {"key_b64": base64.b64encode(b"\xff\xfek").decode(),
             "value_b64": base64.b64encode(b"\x80bin").decode()},
            {"key": "tab\tkey", "value": "line1\nline2"}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    r = ds.ok("import", str(src))
    assert r.stdout.startswith("Imported 5 pair(s) from ") and "staged" in r.stdout
    assert ds.ok("get", "user:2").stdout == '{"name":"Bob","age":30}\n'
    assert ds.ok("get", "n").stdout == "42\n"
    assert ds.ok("get", b"\xff\xfek", "--raw").out == b"\x80bin"
    ds.ok("commit", "-m", "import")

    # JSON Lines export, to a file and to standard output
    r = ds.ok("export", str(tmp_path / "out.jsonl"))
    assert r.stdout == f"Exported 5 pair(s) to {tmp_path / 'out.jsonl'}\n"
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines][-2] == {"key": "user:2",
                                                  "value": '{"name":"Bob","age":30}'}
    assert {"key_b64": base64.b64encode(b"\xff\xfek").decode(),
            "value_b64": base64.b64encode(b"\x80bin").decode()} in map(json.loads, lines)
    assert ds.ok("export", "-").stdout.splitlines() == lines
    assert ds.ok("export", "-", "--prefix", "user:").stdout.count("\n") == 2

    # CSV: binary columns only appear when needed; round trip through another dataset
    ds.ok("export", str(tmp_path / "all.csv"))
    table = list(csv.reader(io.StringIO((tmp_path / "all.csv").read_text())))
    assert table[0] == ["key", "value", "key_b64", "value_b64"] and len(table) == 6
    ds.ok("export", str(tmp_path / "users.csv"), "--prefix", "user:")
    assert (tmp_path / "users.csv").read_text() == (
        'key,value\nuser:1,Alice\nuser:2,"{""name"":""Bob"",""age"":30}"\n')
    other = tmp_path / "other"
    ds.ok("init", "--storage", "file", str(other))
    o = Runner(other, ds.env)
    r = o.ok("import", str(tmp_path / "all.csv"), "-m", "from csv")
    assert "and committed" in r.stdout
    assert o.ok("export", "-", "--format", "jsonl").stdout.splitlines() == lines
    # a CSV without header, from standard input
    r = o.ok("import", "-", "--format", "csv", "--no-header", input=b"x,1\ny,2\n")
    assert o.ok("list", "--values", "--prefix", "x").stdout == "x\t1\n"

    # export at an older ref; the current view includes staged changes
    ds.ok("set", "user:1", "Changed")
    assert '"Changed"' in ds.ok("export", "-", "--prefix", "user:1").stdout
    assert '"Alice"' in ds.ok("export", "-", "--prefix", "user:1", "--ref", "HEAD").stdout
    assert ds.ok("export", "-", "--ref", "HEAD~1").out == b""


def test_import_errors_change_nothing(ds: Runner, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a", "value": "1"}\n{"key": "b"}\n')
    r = ds.fails(2, "import", str(bad))
    assert "line 2" in r.stderr and "value" in r.stderr
    assert "nothing to commit" in ds.ok("status").stdout       # nothing was staged
    bad.write_text('{"key": "a", "value": "1"}\nnot json\n')
    assert "line 2: not valid JSON" in ds.fails(2, "import", str(bad)).stderr
    (tmp_path / "bad.csv").write_text("name,age\nx,1\n")
    assert "header" in ds.fails(2, "import", str(tmp_path / "bad.csv")).stderr
    (tmp_path / "data.txt").write_text("whatever")
    assert "--format" in ds.fails(2, "import", str(tmp_path / "data.txt")).stderr
    assert "does not exist" in ds.fails(2, "import", str(tmp_path / "nope.csv")).stderr
    (tmp_path / "latin1.csv").write_bytes(b"key,value\ncaf\xe9,1\n")
    assert "not valid UTF-8" in ds.fails(2, "import", str(tmp_path / "latin1.csv")).stderr
    assert "nothing to commit" in ds.ok("status").stdout


def _run_with_tty_stderr(args, cwd, env, stdout_tty=False):
    """Run git-prolly with stderr (and optionally stdout) on a pseudo-terminal; returns
    (exit code, stdout bytes, terminal bytes)."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def pump():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    p = subprocess.run([EXE, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                       stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave,
                       timeout=120)
    os.close(slave)
    t.join(timeout=10)
    os.close(master)
    return p.returncode, p.stdout, b"".join(chunks)


def test_progress_bar_and_terminal_output(ds: Runner, tmp_path):
    big = tmp_path / "big.jsonl"
    with open(big, "w") as f:
        for i in range(20000):
            f.write(json.dumps({"key": f"item:{i:06d}", "value": "x" * 40}) + "\n")
    assert big.stat().st_size > 1 << 20
    code, out, term = _run_with_tty_stderr(["import", str(big), "-m", "big"], ds.cwd, ds.env)
    assert code == 0, (out, term)
    assert out.startswith(b"Imported 20000 pair(s)")
    assert b"reading big.jsonl" in term and b"MB" in term       # the progress bar
    # piped stderr: no progress bar, nothing on stderr at all
    r = ds.ok("export", str(tmp_path / "out.jsonl"))
    assert r.err == b""
    # on a terminal: a rich table, coloured; NO_COLOR turns colour off, keeps the table
    code, _, term = _run_with_tty_stderr(["stats"], ds.cwd, ds.env, stdout_tty=True)
    assert code == 0 and b"Statistic" in term and b"\x1b[" in term
    env = dict(ds.env, NO_COLOR="1")
    code, _, term = _run_with_tty_stderr(["stats"], ds.cwd, env, stdout_tty=True)
    assert code == 0 and b"Statistic" in term and b"\x1b[1m" not in term
    # a reader that goes away early (| head) is not an error worth a traceback
    p = subprocess.Popen(f"'{EXE}' list | head -n 3", shell=True, cwd=ds.cwd, env=ds.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=120)
    assert out.decode().splitlines() == ["item:000000", "item:000001", "item:000002"]
    assert b"Traceback" not in err and b"Error" not in err
