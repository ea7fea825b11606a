"""init, set/get/delete, list, status, commit, log: output, exit codes, Git history."""

from __future__ import annotations

import base64
import json

from .conftest import Runner


def test_init_set_commit_session(gp: Runner, repo):
    r = gp.ok("init", "data")
    assert r.stdout.startswith("Initialized empty prollytree dataset in ")
    assert "(Git backend, branch main)" in r.stdout
    again = gp.ok("init", "data")
    assert again.stdout.startswith("Reinitialized existing prollytree dataset")

    ds = Runner(repo / "data", gp.env)
    ds.ok("set", "user:alice", "Alice Johnson")
    ds.ok("set", "user:bob", "Bob Smith")
    st = ds.ok("status")
    assert st.lines[0] == "On branch main"
    assert "Changes to be committed:" in st.stdout
    assert "  added:    user:alice" in st.lines and "  added:    user:bob" in st.lines

    c = ds.ok("commit", "-m", "Add users")
    assert c.lines[0].startswith("[main ") and c.lines[0].endswith("] Add users")
    assert c.lines[1] == " 2 added, 0 modified, 0 deleted"
    assert ds.ok("get", "user:alice").stdout == "Alice Johnson\n"
    assert "nothing to commit" in ds.ok("status").stdout

    # a real Git commit on the repository's branch, the user's files untouched
    assert gp.git("log", "--format=%s").splitlines() == ["Add users", "code"]
    assert gp.git("log", "-1", "--format=%an <%ae>") == "Ann Author <ann@example.com>\n"
    assert gp.git("status", "--porcelain") == ""
    assert (repo / "README.md").read_text() == "code\n"
    assert "data/.prolly/ROOT" in gp.git("ls-tree", "-r", "--name-only", "HEAD")
    gp.git("fsck", "--strict")

    # -C runs anywhere; commands work from a subdirectory of the dataset
    (repo / "data" / "sub").mkdir()
    assert gp.ok("-C", "data/sub", "get", "user:bob").stdout == "Bob Smith\n"

    # update and delete
    ds.ok("set", "user:alice", "Alice Williams")
    ds.ok("delete", "user:bob")
    st = ds.ok("status", "--json").json()
    assert st["branch"] == "main" and not st["detached"]
    assert st["staged"] == [{"key": "user:alice", "status": "modified"},
                            {"key": "user:bob", "status": "deleted"}]
    c = ds.ok("commit", "-m", "Rename", "-m", "second paragraph", "--json").json()
    assert c["changes"] == {"added": 0, "modified": 1, "deleted": 1}
    assert c["branch"] == "main" and len(c["commit"]) == 40
    assert gp.git("log", "-1", "--format=%H") == c["commit"] + "\n"
    assert gp.git("log", "-1", "--format=%B").strip() == "Rename\n\nsecond paragraph"

    # nothing staged: exit 1, no commit
    r = ds.fails(1, "commit", "-m", "empty")
    assert "nothing to commit" in r.stderr
    assert len(gp.git("log", "--format=%H").split()) == 3
    ds.ok("commit", "-m", "empty on purpose", "--allow-empty")
    assert len(gp.git("log", "--format=%H").split()) == 4


def test_get_missing_and_errors(ds: Runner, gp: Runner, tmp_path):
    ds.ok("set", "a", "1")
    r = ds.fails(1, "get", "missing")
    assert r.stderr == "error: key not found: missing\n" and r.out == b""
    r = ds.fails(1, "delete", "a", "missing")
    assert "missing" in r.stderr and "nothing was deleted" in r.stderr
    assert ds.ok("get", "a").stdout == "1\n"            # 'a' was not deleted

    # not a dataset: outside any dataset, one line, exit 2
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    r = ds.fails(2, "get", "a", cwd=outside)
    assert "not a prollytree dataset" in r.stderr
    r = gp.fails(2, "status")                           # the repo root is not a dataset
    assert "git-prolly init" in r.stderr

    # usage errors: exit 2, one line, no traceback
    r = ds.fails(2, "get")
    assert "Missing argument" in r.stderr
    r = ds.fails(2, "set", "k", "--file", str(tmp_path / "nope.bin"))
    assert "does not exist" in r.stderr
    r = ds.fails(2, "-C", str(tmp_path / "nowhere"), "status")
    assert "does not exist" in r.stderr
    r = ds.fails(2, "frobnicate")
    assert "No such command" in r.stderr
    r = ds.fails(2, "set", "k", "v", "--file", str(tmp_path / "nope.bin"))
    r = ds.fails(2, "get", "a", "--ref", "nosuchbranch")
    assert "unknown ref 'nosuchbranch'" in r.stderr
    r = ds.fails(2, "log", "HEAD~99")
    assert "unknown ref" in r.stderr

    # value from a file and from standard input, byte for byte
    blob = bytes(range(256)) * 3
    (tmp_path / "v.bin").write_bytes(blob)
    ds.ok("set", "file", "--file", str(tmp_path / "v.bin"))
    ds.ok("set", "stdin", input=b"line1\nline2\n")
    ds.ok("set", "dash", "--file", "-", input=b"\x00\x01")
    assert ds.ok("get", "file", "--raw").out == blob
    assert ds.ok("get", "stdin").out == b"line1\nline2\n\n"
    assert ds.ok("get", "dash", "--raw").out == b"\x00\x01"
    assert ds.ok("get", "dash").stdout == 'b"\\x00\\x01"\n'
    r = ds.ok("get", "file", "--json").json()
    assert base64.b64decode(r["value_b64"]) == blob and r["key"] == "file"


def test_non_utf8_keys_and_values(ds: Runner):
    ds.ok("set", b"k\xff\xfe", b"v\xc3")                # raw bytes through argv
    ds.ok("set", "tab\tkey", "multi\nline")
    ds.ok("set", "emoji:\U0001f600", "caf\u00e9")
    ds.ok("set", 'b"literal', "looks like an escape")
    ds.ok("commit", "-m", "odd keys")
    keys = ds.ok("list").lines
    assert keys == ['b"b\\"literal"', "emoji:\U0001f600", 'b"k\\xff\\xfe"',
                    'b"tab\\tkey"']
    table = ds.ok("list", "--values").lines
    assert 'b"k\\xff\\xfe"\tb"v\\xc3"' in table
    assert 'b"tab\\tkey"\tb"multi\\nline"' in table       # tabs never split a row
    assert "emoji:\U0001f600\tcaf\u00e9" in table
    assert ds.ok("get", b"k\xff\xfe").stdout == 'b"v\\xc3"\n'
    assert ds.ok("get", b"k\xff\xfe", "--raw").out == b"v\xc3"
    assert ds.ok("get", "tab\tkey").stdout == "multi\nline\n"   # get keeps text as is
    docs = ds.ok("list", "--values", "--json").json()
    assert {"key_b64": base64.b64encode(b"k\xff\xfe").decode(),
            "value_b64": base64.b64encode(b"v\xc3").decode()} in docs
    assert {"key": "tab\tkey", "value": "multi\nline"} in docs
    assert {"key": "emoji:\U0001f600", "value": "caf\u00e9"} in docs
    # history, show, diff and status cope too
    ds.ok("delete", b"k\xff\xfe")
    assert 'deleted:  b"k\\xff\\xfe"' in ds.ok("status").stdout
    ds.ok("commit", "-m", "drop")
    assert '- b"k\\xff\\xfe" = b"v\\xc3"' in ds.ok("show").lines
    h = ds.ok("history", b"k\xff\xfe").lines
    assert len(h) == 2 and h[0].split("\t")[2:4] == ["deleted", "(deleted)"]
    d = ds.ok("diff", "HEAD~1", "HEAD", "--format", "json").json()
    assert d == [{"key_b64": base64.b64encode(b"k\xff\xfe").decode(), "change": "deleted",
                  "old_b64": base64.b64encode(b"v\xc3").decode(), "new": None}]


def test_list_prefix_ref_and_log(ds: Runner):
    for i in range(5):
        ds.ok("set", f"user:{i}", f"u{i}")
    ds.ok("set", "item:1", "x")
    ds.ok("commit", "-m", "first")
    ds.ok("set", "user:0", "changed")
    ds.ok("delete", "item:1")
    ds.ok("set", "user:9", "new")            # staged: the current view includes it
    assert ds.ok("list", "--prefix", "user:").lines == [
        "user:0", "user:1", "user:2", "user:3", "user:4", "user:9"]
    assert ds.ok("list").lines[0] == "user:0"                # item:1 staged for deletion
    assert ds.ok("list", "--prefix", "user:0", "--values").lines == ["user:0\tchanged"]
    assert ds.ok("list", "--ref", "HEAD", "--prefix", "user:0", "--values").lines == [
        "user:0\tu0"]
    assert ds.ok("list", "--ref", "HEAD", "--json").json()[0] == {"key": "item:1"}
    assert ds.ok("keys-at", "HEAD", "--values", "--prefix", "item").lines == ["item:1\tx"]
    ds.ok("commit", "-m", "second")

    log = ds.ok("log", "--kv-summary").stdout
    assert "commit " in log and "(HEAD -> main)" in log
    assert "Keys:   1 added, 1 modified, 1 deleted" in log
    assert "Keys:   6 added, 0 modified, 0 deleted" in log
    assert "Author: Ann Author <ann@example.com>" in log
    one = ds.ok("log", "--oneline", "--kv-summary", "--limit", "2").lines
    assert len(one) == 2
    assert one[0].endswith("second  [+1 ~1 -1]") and "(HEAD -> main)" in one[0]
    assert one[1].endswith("first  [+6 ~0 -0]")
    docs = ds.ok("log", "--json", "-n", "3", "--kv-summary").json()
    assert [d["message"] for d in docs] == ["second", "first", "code"]
    assert docs[0]["changes"] == {"added": 1, "modified": 1, "deleted": 1}
    assert docs[0]["parents"] == [docs[1]["id"]]
    assert docs[0]["author"] == "Ann Author <ann@example.com>"
    assert ds.ok("log", "--limit", "0").out == b""
    # the same history through the Git CLI
    assert [line.split(" ", 1)[1] for line in
            ds.git("log", "--oneline").splitlines()] == ["second", "first", "code"]

    show = ds.ok("show", "HEAD~1", "--keys-only").lines
    assert show[0] == "commit " + docs[1]["id"]
    assert "+ user:3" in show and "+ item:1" in show
    full = ds.ok("show").lines
    assert "~ user:0: u0 -> changed" in full and "- item:1 = x" in full
    assert "+ user:9 = new" in full
    sj = ds.ok("show", "--json").json()
    assert sj["id"] == docs[0]["id"] and len(sj["changes"]) == 3


def test_piped_output_has_no_colour_and_colour_is_forced(ds: Runner):
    ds.ok("set", "k", "v")
    ds.ok("commit", "-m", "one")
    plain = ds.ok("list", "--values")
    assert b"\x1b[" not in plain.out and plain.stdout == "k\tv\n"
    forced = ds.ok("--color", "always", "list", "--values")
    assert b"\x1b[" in forced.out and "Key" in forced.stdout     # a rich table
    nocolor = ds.ok("--color", "always", "list", "--values", env={"NO_COLOR": "1"})
    assert "Key" in nocolor.stdout                               # --color always wins
    never = ds.ok("--color", "never", "log", "-n", "1")
    assert b"\x1b[" not in never.out
    # global --json works for every data command
    assert ds.ok("--json", "get", "k").json() == {"key": "k", "value": "v"}
    assert json.loads(ds.ok("--json", "branch").out)[0]["name"] == "main"


def test_git_prolly_through_git_and_help(ds: Runner, gp: Runner):
    # Git runs git-<name> from PATH: `git prolly ...` is the same program
    ds.ok("set", "k", "v")
    assert ds.git("prolly", "get", "k") == "v\n"
    ds.git("prolly", "commit", "-m", "through git")
    assert gp.git("log", "-1", "--format=%s") == "through git\n"
    top = ds.ok("--help").stdout
    assert "Commands:" in top and "verify-proof" in top
    assert ds.ok("--version").stdout.startswith("git-prolly ")
    # every command has --help text with an example (checked in-process: cheaper)
    from click.testing import CliRunner

    from prollytree.cli.main import cli
    names = sorted(cli.commands)
    assert set(names) >= {
        "init", "set", "get", "delete", "list", "status", "commit", "log", "show",
        "history", "keys-at", "branch", "checkout", "diff", "merge", "revert", "stats",
        "proof", "verify-proof", "fsck", "gc", "import", "export"}
    for name in names:
        r = CliRunner().invoke(cli, [name, "--help"])
        assert r.exit_code == 0, (name, r.output)
        assert "Example" in r.output and "git-prolly " + name in r.output, name
    assert "Usage: git-prolly get" in ds.ok("get", "-h").stdout


def test_missing_cli_extra_gives_a_clear_message():
    import subprocess
    import sys
    code = ("import sys; sys.modules['click'] = None\n"
            "from prollytree.cli import run; run()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "pip install 'prollytree-py[cli]'" in proc.stderr and "Traceback" not in proc.stderr
