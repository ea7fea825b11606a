"""Wrong types raise TypeError, bad values ValueError (or SQLite's error); a failed call
changes nothing."""

import apsw
import pytest

from prollytree import UnknownRefError


@pytest.fixture
def s(mem_store):
    mem_store.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    mem_store.execute("INSERT INTO t VALUES (1, 'a'), (2, 'a')")
    mem_store.commit("base")
    return mem_store


@pytest.mark.parametrize("call, exc", [
    (lambda s: s.execute(b"SELECT 1"), TypeError),
    (lambda s: s.execute("SELECT 1", format=None), TypeError),
    (lambda s: s.execute("SELECT 1", format="xml"), ValueError),
    (lambda s: s.execute("SELECT 1", params=5), TypeError),
    (lambda s: s.execute("SELECT ?; SELECT ?", params=[1, 2]), ValueError),
    (lambda s: s.execute("INSERT INTO t VALUES (3, ?)", params=[object()]), TypeError),
    (lambda s: s.execute_many("SELECT 1"), TypeError),
    (lambda s: s.insert(5, []), TypeError),
    (lambda s: s.insert("t", [[3, "x"], [4]]), ValueError),
    (lambda s: s.create_table("x", [("a",)]), TypeError),
    (lambda s: s.create_table("x", []), ValueError),
    (lambda s: s.commit(None), TypeError),
    (lambda s: s.checkout("nope"), UnknownRefError),
    (lambda s: s.merge(5), TypeError),
    (lambda s: s.query_at_commit("nope", "SELECT 1"), UnknownRefError),
    (lambda s: s.query_at_commit("HEAD", 5), TypeError),
    (lambda s: s.query_at_commit("HEAD", "DELETE FROM t"), apsw.ReadOnlyError),
    (lambda s: s.execute("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"),
     ValueError),
    (lambda s: s.execute("CREATE TABLE t (a)"), apsw.SQLError),
    (lambda s: s.execute("CREATE UNIQUE INDEX tv ON t (v)"), apsw.ConstraintError),
    (lambda s: s.execute("ALTER TABLE t ADD COLUMN w TEXT NOT NULL"), apsw.SQLError),
    (lambda s: s.execute("INSERT INTO t VALUES (3, 'c'), (1, 'dup')"), apsw.ConstraintError),
])
def test_failed_calls_change_nothing(s, call, exc):
    before = {n: s.kv.tree(n).root_hash() for n in s.kv.list_trees()}
    with pytest.raises(exc):
        call(s)
    assert s.execute("SELECT * FROM t ORDER BY id") == [{"id": 1, "v": "a"}, {"id": 2, "v": "a"}]
    assert s.kv.tree_status() == []
    assert {n: s.kv.tree(n).root_hash() for n in s.kv.list_trees()} == before
    # the schema is unchanged too: the same statements still work
    s.execute("CREATE INDEX later ON t (v)")
    assert s.execute("SELECT id FROM t WHERE v = 'a' ORDER BY id") == [{"id": 1}, {"id": 2}]
