"""Statement splitting and classification (SQLite's own completeness check decides)."""

from prollytree.sql.dml import insert_target, split_upsert
from prollytree.sql.statements import dml_kind, kind_of, split


def test_split_keeps_semicolons_inside_literals_and_comments():
    sql = "SELECT ';' AS a; -- a comment; still\nSELECT 2 /* ; */; ;  -- only a comment"
    assert [s.strip() for s in split(sql)] == [
        "SELECT ';' AS a;", "-- a comment; still\nSELECT 2 /* ; */;"]
    assert split("SELECT 1") == ["SELECT 1"]
    assert split("  -- nothing\n") == []


def test_kinds():
    assert kind_of("/* x */ create temp table t(a)") == "create_temp"
    assert kind_of("CREATE UNIQUE INDEX i ON t(a)") == "create_index"
    assert kind_of("CREATE TABLE IF NOT EXISTS t AS SELECT 1") == "ctas"
    assert kind_of('CREATE TABLE "as" (a)') == "create_table"
    assert kind_of("drop view v") == "drop_view"
    assert kind_of("ALTER TABLE t ADD COLUMN b") == "alter_table"
    assert dml_kind("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x") == "insert"
    assert dml_kind("WITH x AS (SELECT 'update') DELETE FROM t") == "delete"
    assert dml_kind("REPLACE INTO t VALUES (1)") == "insert"


def test_insert_targets_and_upserts():
    assert insert_target('INSERT INTO "my t" ("a b", c) VALUES (1, 2)')[:3] == (
        "my t", ["a b", "c"], False)
    assert insert_target("insert or replace into main.t default values")[:3] == (
        "t", None, True)
    head, target, sets, where = split_upsert(
        "INSERT INTO t (a, b) VALUES (1, 'on conflict') ON CONFLICT (a) DO UPDATE SET "
        "b = excluded.b || '(x)' WHERE b <> 'keep';")
    assert head.rstrip() == "INSERT INTO t (a, b) VALUES (1, 'on conflict')"
    assert target == ["a"] and sets.strip() == "b = excluded.b || '(x)'"
    assert where.strip() == "b <> 'keep'"
    assert split_upsert("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING")[1:] == (
        None, None, None)
    assert split_upsert("INSERT INTO t SELECT * FROM u JOIN v ON u.a = v.a") is None
