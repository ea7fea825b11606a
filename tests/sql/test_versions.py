"""Versions of a SQL database: commits, time travel, branches, merges, system tables,
history independence, persistence across processes, Git integrity."""

import shutil
import subprocess
import sys
import textwrap

import apsw
import pytest

from prollytree import MergeConflictError
from prollytree.sql import ProllySQLStore
from prollytree.tree import ConflictResolution


def _users(s):
    s.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, city TEXT)")
    s.execute("CREATE INDEX users_age ON users (age)")
    s.execute("INSERT INTO users VALUES (1, 'Alice', 30, 'x'), (2, 'Bob', 25, 'y'), "
              "(3, 'Cy', 41, 'z')")


def test_seed_readme_example(tmp_path):
    s = ProllySQLStore(str(tmp_path / "data"))
    s.execute("CREATE TABLE users (id INTEGER, name TEXT, age INTEGER)")
    s.execute("INSERT INTO users VALUES (1, 'Alice', 30)")
    s.execute("INSERT INTO users VALUES (2, 'Bob', 25)")
    assert s.execute("SELECT * FROM users WHERE age > 26") == [
        {"id": 1, "name": "Alice", "age": 30}]
    cid = s.commit("Initial user data")
    assert len(cid) == 40 and s.log()[0]["message"] == "Initial user data"
    assert s.execute("UPDATE users SET age = 31 WHERE id = 1") == {"type": "update", "count": 1}
    s.commit("Alice is older")
    assert s.query_at_commit("HEAD~1", "SELECT age FROM users WHERE id = 1") == [{"age": 30}]
    assert s.query_at_commit(cid[:10], "SELECT age FROM users WHERE id = 1") == [{"age": 30}]
    assert s.execute("SELECT age FROM users WHERE id = 1") == [{"age": 31}]
    s.close()


def test_api_formats_and_params(mem_store):
    s = mem_store
    assert s.create_table("t", [("id", "INTEGER PRIMARY KEY"), ("v", "TEXT"), ("b", "BLOB")]) \
        == {"type": "create", "success": True}
    assert s.insert("t", [[1, 'o"ne', b"\x00"], [2, None, None], (3, True, 1.5)]) == \
        {"type": "insert", "count": 3}
    assert s.select("t", ["id", "v"], "id < 3") == [{"id": 1, "v": 'o"ne'}, {"id": 2, "v": None}]
    assert s.execute("SELECT id, v FROM t WHERE id = ?", "tuples", [1]) == (["id", "v"],
                                                                           [[1, 'o"ne']])
    assert s.execute("SELECT id FROM t WHERE id = :i", params={"i": 2}) == [{"id": 2}]
    assert s.execute("SELECT id, v FROM t WHERE id <= 2", "csv") == 'id,v\n1,"o""ne"\n2,\n'
    assert '"v": "o\\"ne"' in s.execute("SELECT v FROM t WHERE id = 1", "json")
    assert s.execute_many(["INSERT INTO t (v) VALUES ('x')", "SELECT count(*) AS n FROM t"]) \
        == [{"type": "insert", "count": 1}, [{"n": 4}]]
    with pytest.raises(ValueError, match="format"):
        s.execute("SELECT 1", "xml")
    with pytest.raises(TypeError):
        s.execute(b"SELECT 1")
    with pytest.raises(TypeError):
        s.commit(5)
    with pytest.raises(apsw.SQLError):
        s.execute("SELECT * FROM nope")
    # user data is bound, never spliced
    s.insert("t", [[10, "x'); DROP TABLE t; --", None]])
    assert s.execute("SELECT v FROM t WHERE id = 10")[0]["v"].startswith("x'")


def test_point_query_pushdown_in_query_plan(mem_store):
    s = mem_store
    _users(s)
    plan = " ".join(r["detail"] for r in s.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM users WHERE id = 2"))
    assert "prolly pk eq=1" in plan
    plan = " ".join(r["detail"] for r in s.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM users WHERE age BETWEEN 20 AND 35"))
    assert "index=users_age" in plan and "lo=>=" in plan and "hi=<=" in plan
    assert s.execute("SELECT name FROM users WHERE age BETWEEN 20 AND 35 ORDER BY name") == [
        {"name": "Alice"}, {"name": "Bob"}]


def test_drop_table_really_drops(mem_store):
    s = mem_store
    _users(s)
    s.commit("one")
    s.execute("DROP TABLE users")
    s.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, city TEXT)")
    assert s.execute("SELECT * FROM users") == []
    s.commit("two")
    assert s.execute("SELECT * FROM users") == []
    assert s.query_at_commit("HEAD~1", "SELECT count(*) AS n FROM users") == [{"n": 3}]
    assert not [t for t in s.kv.list_trees() if t.startswith("sql/i/")]


def test_same_content_same_root_hash():
    a = ProllySQLStore("a", "memory")
    b = ProllySQLStore("b", "memory")
    a.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    a.execute("CREATE INDEX tv ON t (v)")
    a.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    b.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    b.execute("INSERT INTO t VALUES (3, 'c'), (9, 'zz')")
    b.execute("INSERT INTO t VALUES (2, 'x'), (1, 'a')")
    b.execute("UPDATE t SET v = 'b' WHERE id = 2")
    b.execute("DELETE FROM t WHERE id = 9")
    b.execute("CREATE INDEX tv ON t (v)")
    a.commit("a")
    b.commit("b")
    for name in a.kv.list_trees():
        assert a.kv.tree_root(name) == b.kv.tree_root(name), name
    assert a.execute("SELECT prolly_hashof_table('t') AS h") == \
        b.execute("SELECT prolly_hashof_table('t') AS h")
    a.close()
    b.close()


def test_branches_checkout_and_cellwise_merge(mem_store):
    s = mem_store
    _users(s)
    s.commit("base")
    s.branch("feature")
    s.execute("UPDATE users SET age = 31 WHERE id = 1")
    s.execute("DELETE FROM users WHERE id = 3")
    s.commit("main edits")
    s.checkout("feature")
    assert s.execute("SELECT active_branch() AS b") == [{"b": "feature"}]
    s.execute("UPDATE users SET city = 'X' WHERE id = 1")
    s.execute("INSERT INTO users VALUES (4, 'Dee', 25, 'w')")
    s.commit("feature edits")
    s.checkout("main")
    s.merge("feature")
    assert s.execute("SELECT * FROM users ORDER BY id") == [
        {"id": 1, "name": "Alice", "age": 31, "city": "X"},
        {"id": 2, "name": "Bob", "age": 25, "city": "y"},
        {"id": 4, "name": "Dee", "age": 25, "city": "w"}]
    # the index follows the merged rows
    assert s.execute("SELECT id FROM users WHERE age = 25 ORDER BY id") == [{"id": 2}, {"id": 4}]
    assert s.execute("SELECT id FROM users WHERE age = 30") == []
    assert s.execute("SELECT id FROM users WHERE age = 31") == [{"id": 1}]
    assert len(s.log()[0]["parents"]) == 2


def test_conflicts_listed_then_resolved(mem_store):
    s = mem_store
    _users(s)
    s.commit("base")
    s.branch("other")
    s.execute("UPDATE users SET name = 'Ann' WHERE id = 1")
    s.commit("ours")
    s.checkout("other")
    s.execute("UPDATE users SET name = 'Anna' WHERE id = 1")
    s.commit("theirs")
    s.checkout("main")
    head = s.kv.current_commit()
    with pytest.raises(MergeConflictError):
        s.merge("other")
    assert s.kv.current_commit() == head
    assert s.execute("SELECT base_name, our_name, their_name FROM prolly_conflicts_users") == [
        {"base_name": "Alice", "our_name": "Ann", "their_name": "Anna"}]
    s.merge("other", ConflictResolution.TakeSource)
    assert s.execute("SELECT name FROM users WHERE id = 1") == [{"name": "Anna"}]
    assert s.execute("SELECT * FROM prolly_conflicts_users") == []


def test_system_tables_and_functions(mem_store):
    s = mem_store
    _users(s)
    c1 = s.execute("SELECT prolly_commit('first') AS c")[0]["c"]
    s.execute("UPDATE users SET age = age + 1 WHERE id = 2")
    s.execute("INSERT INTO users VALUES (9, 'Nu', 1, 'n')")
    assert sorted(r["status"] for r in s.execute("SELECT * FROM prolly_status")) == [
        "added", "modified"]
    c2 = s.commit("second")
    log = s.execute("SELECT commit_hash, message FROM prolly_log")
    assert [r["message"] for r in log[:2]] == ["second", "first"]
    assert log[0]["commit_hash"] == c2
    diff = s.execute("SELECT diff_type, from_age, to_age, to_id FROM prolly_diff_users "
                     "WHERE from_commit = ? AND to_commit = ? ORDER BY to_id", params=[c1, c2])
    assert diff == [{"diff_type": "modified", "from_age": 25, "to_age": 26, "to_id": 2},
                    {"diff_type": "added", "from_age": None, "to_age": 1, "to_id": 9}]
    hist = s.execute("SELECT age, commit_hash FROM prolly_history_users WHERE id = 2")
    assert [(r["age"], r["commit_hash"]) for r in hist] == [(26, c2), (25, c1)]
    plan = s.execute("EXPLAIN QUERY PLAN SELECT * FROM prolly_history_users WHERE id = 2")
    assert "INDEX 1:key" in plan[0]["detail"]
    full = s.execute("SELECT id, age, commit_hash FROM prolly_history_users "
                     "WHERE age > 0 ORDER BY commit_hash, id")
    assert {(r["id"], r["age"]) for r in full if r["commit_hash"] == c2} == {(2, 26), (9, 1)}
    assert s.execute("SELECT id, age FROM prolly_history_users WHERE commit_hash = ? "
                     "ORDER BY id", params=[c2]) == [{"id": 2, "age": 26}, {"id": 9, "age": 1}]
    joined = s.execute("SELECT u.id, u.age, o.age AS was FROM users u "
                       "JOIN prolly_at_users('HEAD~1') o ON o.id = u.id WHERE u.id = 2")
    assert joined == [{"id": 2, "age": 26, "was": 25}]
    plan = " ".join(r["detail"] for r in s.execute(
        "EXPLAIN QUERY PLAN SELECT u.id, o.age FROM users u "
        "JOIN prolly_at_users('HEAD~1') o ON o.id = u.id"))
    assert "prolly pk eq=1" in plan
    assert s.execute("SELECT count(*) AS n FROM users u LEFT JOIN prolly_at_users(?) o "
                     "ON o.id = u.id WHERE o.id IS NULL", params=[c1]) == [{"n": 1}]
    assert s.execute("SELECT id FROM prolly_at_users('HEAD~1') WHERE age BETWEEN 20 AND 30 "
                     "ORDER BY id") == [{"id": 1}, {"id": 2}]
    # a column added since reads as NULL in the past
    s.execute("ALTER TABLE users ADD COLUMN note TEXT DEFAULT 'n'")
    assert s.execute("SELECT id, note FROM prolly_at_users('HEAD~1') WHERE id = 1") == [
        {"id": 1, "note": None}]
    assert s.execute("SELECT id, note FROM users WHERE id = 1") == [{"id": 1, "note": "n"}]
    s.commit("note")
    s.execute("SELECT prolly_branch('b2')")
    assert {r["name"] for r in s.execute("SELECT name FROM prolly_branches")} == {"main", "b2"}
    s.execute("SELECT prolly_checkout('b2')")
    assert s.current_branch() == "b2"
    assert s.execute("SELECT prolly_hashof_table('users') AS h")[0]["h"] == \
        s.kv.tree_root("sql/t/users").hex()


def test_sql_transactions_never_leak_into_versions(mem_store):
    s = mem_store
    _users(s)
    s.execute("BEGIN")
    s.execute("DELETE FROM users")
    with pytest.raises(ValueError, match="transaction"):
        s.commit("mid-transaction")
    s.execute("ROLLBACK")
    assert s.execute("SELECT count(*) AS n FROM users") == [{"n": 3}]
    with pytest.raises(apsw.ConstraintError):
        s.execute("INSERT INTO users VALUES (5, 'e', 1, 'q'), (1, 'dup', 0, 'q')")
    assert s.execute("SELECT count(*) AS n FROM users") == [{"n": 3}]


def test_reopen_in_new_process_and_git_fsck(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    path = str(repo / "db")
    s = ProllySQLStore(path)
    _users(s)
    s.commit("one")
    s.execute("UPDATE users SET age = 99 WHERE id = 3")
    s.commit("two")
    s.execute("INSERT INTO users VALUES (7, 'staged', 7, 's')")   # staged, not committed
    s.close()
    code = textwrap.dedent(f"""
        from prollytree.sql import ProllySQLStore
        s = ProllySQLStore.open({path!r})
        print(s.execute("SELECT id, age FROM users WHERE age > 40 ORDER BY id", "csv"), end="")
        print(s.query_at_commit("HEAD~1", "SELECT age FROM users WHERE id = 3", "csv"), end="")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "id,age\n3,99\nage\n41\n"
    if shutil.which("git"):
        subprocess.run(["git", "-C", str(repo), "fsck", "--strict"], check=True,
                       capture_output=True)
    with pytest.raises(ValueError, match="not a dataset"):
        ProllySQLStore.open(str(tmp_path / "nothing"))


def test_merge_refuses_constraint_violations(mem_store):
    s = mem_store
    s.execute("CREATE TABLE acct (id INTEGER PRIMARY KEY, email TEXT UNIQUE, lo INTEGER, "
              "hi INTEGER, CHECK (lo <= hi))")
    s.execute("INSERT INTO acct VALUES (1, 'a@x', 0, 10)")
    s.commit("base")
    s.branch("b")
    s.execute("INSERT INTO acct VALUES (2, 'same@x', 0, 1)")
    s.execute("UPDATE acct SET lo = 8 WHERE id = 1")
    s.commit("ours")
    s.checkout("b")
    s.execute("INSERT INTO acct VALUES (3, 'same@x', 0, 1)")
    s.commit("theirs")
    s.checkout("main")
    head = s.kv.current_commit()
    with pytest.raises(MergeConflictError, match="UNIQUE acct.email"):
        s.merge("b")
    assert s.kv.current_commit() == head
    # a cell-wise merge that breaks a CHECK is refused too
    s.checkout("b")
    s.execute("DELETE FROM acct WHERE id = 3")
    s.execute("UPDATE acct SET hi = 5 WHERE id = 1")
    s.commit("theirs 2")
    s.checkout("main")
    with pytest.raises(MergeConflictError, match="CHECK"):
        s.merge("b")
    assert s.kv.current_commit() == head
    s.execute("UPDATE acct SET lo = 4 WHERE id = 1")
    s.commit("fix")
    s.merge("b")
    assert s.execute("SELECT id, lo, hi FROM acct ORDER BY id") == [
        {"id": 1, "lo": 4, "hi": 5}, {"id": 2, "lo": 0, "hi": 1}]


def test_detached_head_is_read_only(mem_store):
    s = mem_store
    _users(s)
    c1 = s.commit("one")
    s.execute("DELETE FROM users WHERE id = 1")
    s.commit("two")
    s.checkout(c1)
    assert s.execute("SELECT count(*) AS n FROM users") == [{"n": 3}]
    with pytest.raises(apsw.ReadOnlyError):
        s.execute("INSERT INTO users VALUES (8, 'x', 1, 'y')")
    from prollytree import ReadOnlyError
    with pytest.raises(ReadOnlyError):
        s.execute("CREATE TABLE z (a)")
    s.checkout("main")
    assert s.execute("SELECT count(*) AS n FROM users") == [{"n": 2}]


def test_shared_between_threads(mem_store):
    import threading
    s = mem_store
    s.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, who INTEGER)")
    errors = []

    def work(w):
        try:
            for i in range(50):
                s.execute("INSERT INTO c (who) VALUES (?)", params=[w])
                s.execute("SELECT count(*) FROM c WHERE who = ?", params=[w])
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s.execute("SELECT who, count(*) AS n FROM c GROUP BY who ORDER BY who") == [
        {"who": w, "n": 50} for w in range(4)]
    assert s.execute("SELECT count(DISTINCT id) AS n FROM c") == [{"n": 200}]


def test_conflicts_resolved_by_editing_the_conflicts_table(mem_store):
    s = mem_store
    s.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    s.execute("INSERT INTO u VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
    s.commit("base")
    s.branch("o")
    for i, n in ((1, "A1"), (2, "B1"), (3, "C1")):
        s.execute("UPDATE u SET name = ? WHERE id = ?", params=[n, i])
    s.commit("ours")
    s.checkout("o")
    for i, n in ((1, "A2"), (2, "B2"), (3, "C2")):
        s.execute("UPDATE u SET name = ? WHERE id = ?", params=[n, i])
    s.execute("UPDATE u SET age = 30 WHERE id = 3")
    s.commit("theirs")
    s.checkout("main")
    with pytest.raises(MergeConflictError):
        s.merge("o")
    assert len(s.execute("SELECT * FROM prolly_conflicts_u")) == 3
    assert s.execute("DELETE FROM prolly_conflicts_u WHERE our_id = 1") == {
        "type": "delete", "count": 1}
    s.execute("UPDATE prolly_conflicts_u SET our_name = their_name WHERE our_id = 2")
    assert s.execute("SELECT base_id FROM prolly_conflicts_u") == [{"base_id": 3}]
    with pytest.raises(MergeConflictError):
        s.merge("o")                 # one left: still nothing merged
    assert s.execute("SELECT name FROM u ORDER BY id") == [
        {"name": "A1"}, {"name": "B1"}, {"name": "C1"}]
    s.execute("UPDATE prolly_conflicts_u SET our_name = 'mine', our_age = their_age "
              "WHERE our_id = 3")
    s.merge("o")
    assert s.execute("SELECT * FROM u ORDER BY id") == [
        {"id": 1, "name": "A1", "age": 1}, {"id": 2, "name": "B2", "age": 2},
        {"id": 3, "name": "mine", "age": 30}]
    assert s.execute("SELECT * FROM prolly_conflicts_u") == []
