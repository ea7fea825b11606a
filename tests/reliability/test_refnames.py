"""check_ref_name against the ``git check-ref-format`` binary itself."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prollytree.errors import InvalidRefNameError
from prollytree.versioning.refnames import (
    MAX_COMPONENT_BYTES, MAX_REF_BYTES, check_ref_name,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")

# One bash process checks a whole batch: names arrive NUL-separated on stdin and one
# status per name comes back (a process per name would cost ~2 ms each).
_SCRIPT = r'''
while IFS= read -r -d '' mode && IFS= read -r -d '' n; do
  case "$mode" in
    branch) git check-ref-format --branch "$n" >/dev/null 2>&1 ;;
    tag)    case "$n" in -*) false ;; *) git check-ref-format "refs/tags/$n" ;; esac ;;
    ref)    git check-ref-format "$n" ;;
    heads)  git check-ref-format "refs/heads/$n" ;;
  esac
  echo $?
done
'''


def git_accepts(pairs: list[tuple[str, str]]) -> list[bool]:
    """For each (mode, name): does git accept it? (mode: branch, tag, ref, heads)"""
    data = b"".join(m.encode() + b"\0" + n.encode("utf-8") + b"\0" for m, n in pairs)
    env = dict(os.environ, GIT_CEILING_DIRECTORIES="/", LC_ALL="C")
    out = subprocess.run(["bash", "-c", _SCRIPT], input=data, capture_output=True,
                         check=True, cwd="/", env=env).stdout.split()
    assert len(out) == len(pairs)
    return [s == b"0" for s in out]


def ours(name: str, what: str) -> bool:
    try:
        check_ref_name(name, what)
        return True
    except InvalidRefNameError as e:
        assert name[:10].replace("\\", "\\\\") in str(e) or repr(name)[:10] in str(e)
        return False


TABLE = [
    # (name, valid as a branch) - one or more per rule of git-check-ref-format(1)
    ("main", True), ("feature/x", True), ("a/b/c", True), ("é-ü", True), ("日本", True),
    ("@", True), ("a@b", True), ("@@", True), ("{", True), ("a{b}", True), ("x.lock.y", True),
    ("a.loc", True), ("refs/heads/x", True), ("v1.0", True), ("a-", True), ("_", True),
    ("HEAD", False), ("-x", False),                     # --branch only
    (".a", False), ("a/.b", False), (".", False), ("..", False),      # rule 1: leading dot
    ("a.lock", False), ("a.lock/b", False), ("x/.lock", False),       # rule 1: .lock
    ("a..b", False), ("a/../b", False),                                # rule 2
    ("a b", False), ("a\tb", False), ("a\x01", False), ("a\x7f", False), ("a~1", False),
    ("a^", False), ("a:b", False),                                     # rule 3
    ("a?", False), ("a*", False), ("a[b", False),                      # rule 4
    ("/a", False), ("a/", False), ("a//b", False),                     # rule 5
    ("a.", False), ("a/b.", False),                                    # rule 6
    ("a@{b", False), ("@{-1}", False), ("x@{u}", False),               # rule 7
    ("a\\b", False),                                                   # rule 9
    ("", False),
]


@pytest.mark.parametrize("what", ["branch", "heads"])
def test_table_matches_git(what):
    names = [n for n, _ in TABLE if n]     # git cannot take an empty argv element check
    git = git_accepts([(what, n) for n in names])
    for n, g in zip(names, git):
        mine = ours(n, "branch") if what == "branch" else ours("refs/heads/" + n, "ref")
        assert mine == g, (n, mine, g)
    expected = {n: v for n, v in TABLE}
    for n, g in zip(names, git):
        if what == "branch":
            assert g == expected[n], n


def test_table_tags_and_full_refs():
    names = [n for n, _ in TABLE if n]
    for what in ("tag", "ref"):
        git = git_accepts([(what, n) for n in names])
        for n, g in zip(names, git):
            assert ours(n, what) == g, (what, n, g)


def test_rule_is_named():
    cases = {"a..b": "'..'", "a.lock": ".lock", ".a": "starts with '.'", "a b": "space",
             "a~": "'~'", "a@{": "'@{'", "a//b": "'//'", "a.": "ends with '.'",
             "-x": "starts with '-'", "HEAD": "HEAD", "a\x01": "control", "": "empty"}
    for name, rule in cases.items():
        with pytest.raises(InvalidRefNameError, match=None) as ei:
            check_ref_name(name)
        assert rule in str(ei.value), (name, str(ei.value))
        assert isinstance(ei.value, ValueError)


def test_types_and_modes():
    with pytest.raises(TypeError):
        check_ref_name(b"main")
    with pytest.raises(TypeError):
        check_ref_name(None)
    with pytest.raises(ValueError):
        check_ref_name("main", what="remote-ish")
    with pytest.raises(InvalidRefNameError, match="Unicode"):
        check_ref_name("a\udc80")
    assert check_ref_name("main") == "main"


def test_length_limits():
    ok = "a" * MAX_COMPONENT_BYTES
    assert check_ref_name(ok) == ok
    with pytest.raises(InvalidRefNameError, match="bytes"):
        check_ref_name("a" * (MAX_COMPONENT_BYTES + 1))
    with pytest.raises(InvalidRefNameError, match="bytes"):
        check_ref_name("é" * (MAX_COMPONENT_BYTES // 2 + 1))  # 2 bytes each in UTF-8
    long = "/".join(["b" * 200] * 6)
    assert len(("refs/heads/" + long).encode()) > MAX_REF_BYTES
    with pytest.raises(InvalidRefNameError, match="limit"):
        check_ref_name(long)


def test_longest_accepted_name_is_storable_by_git(tmp_path):
    """A name at the component limit can really be created by git (its .lock too)."""
    name = "x" * MAX_COMPONENT_BYTES
    check_ref_name(name)
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path / "r"), "-c", "user.name=t", "-c",
                    "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   check=True, env=env)
    r = subprocess.run(["git", "-C", str(tmp_path / "r"), "branch", name], env=env,
                       capture_output=True)
    assert r.returncode == 0, r.stderr


# Names built mostly from the characters the rules are about.
_ALPHABET = st.sampled_from(list("ab/.@{}-~^:?*[\\ lockHEAD") + ["\x01", "\x7f", "é", "日"])
_NAMES = st.lists(_ALPHABET, min_size=1, max_size=14).map("".join)


def _within_limits(n: str) -> bool:
    return all(len(c.encode()) <= MAX_COMPONENT_BYTES for c in n.split("/"))


@settings(max_examples=12, deadline=None)
@given(st.lists(_NAMES, min_size=20, max_size=40))
def test_hypothesis_names_match_git(names):
    names = [n for n in names if _within_limits(n)]
    # a full ref starting with "-" cannot be asked of the binary: `git check-ref-format
    # -x` reads it as an option (usage error), so those are left out of the "ref" mode
    pairs = ([("branch", n) for n in names] + [("tag", n) for n in names]
             + [("ref", n) for n in names if not n.startswith("-")])
    git = git_accepts(pairs)
    for (mode, n), g in zip(pairs, git):
        assert ours(n, mode) == g, (mode, n, g)
