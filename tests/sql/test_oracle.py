"""Plain SQLite is the oracle: the same statements on a ProllySQLStore and on an in-memory
SQLite database with native tables give the same results (or both fail)."""

import math
import os

import apsw
import pytest
from hypothesis import given, settings, strategies as st

from prollytree.sql import ProllySQLStore

SCHEMA = [
    "CREATE TABLE t1 (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL)",
    "CREATE TABLE t2 (k TEXT PRIMARY KEY NOT NULL, x INTEGER NOT NULL, y TEXT UNIQUE, "
    "CHECK (x >= -50))",
    "CREATE TABLE t3 (p INTEGER, q TEXT, r BLOB, PRIMARY KEY (p, q))",
    "CREATE TABLE t4 (v INTEGER, w TEXT)",
]

CORPUS = [
    "SELECT * FROM t1 ORDER BY id",
    "SELECT * FROM t2 ORDER BY k",
    "SELECT * FROM t3 ORDER BY p, q",
    "SELECT v, w FROM t4 ORDER BY v, w",
    "SELECT count(*), sum(a), min(b), max(c), avg(a) FROM t1",
    "SELECT a, count(*) FROM t1 GROUP BY a HAVING count(*) > 0 ORDER BY a",
    "SELECT t1.id, t2.k FROM t1 JOIN t2 ON t1.a = t2.x ORDER BY 1, 2",
    "SELECT t1.id, t2.k FROM t1 LEFT JOIN t2 ON t1.a = t2.x ORDER BY 1, 2",
    "SELECT t1.id, t2.k FROM t1 RIGHT JOIN t2 ON t1.a = t2.x ORDER BY 1, 2",
    "SELECT t1.id, t2.k FROM t1 FULL OUTER JOIN t2 ON t1.a = t2.x ORDER BY 1, 2",
    "SELECT * FROM t1 WHERE id = 3",
    "SELECT * FROM t1 WHERE id BETWEEN 2 AND 7 ORDER BY id",
    "SELECT * FROM t1 WHERE id > 4 ORDER BY id DESC",
    "SELECT * FROM t1 WHERE id < '5' ORDER BY id",
    "SELECT * FROM t1 WHERE id IN (1, 3, 5, 99) ORDER BY id",
    "SELECT * FROM t1 WHERE a = 2 ORDER BY id",
    "SELECT * FROM t1 WHERE a >= 1 AND a < 4 ORDER BY id",
    "SELECT * FROM t2 WHERE k = 'b'",
    "SELECT * FROM t2 WHERE k >= 'b' AND k < 'd' ORDER BY k",
    "SELECT * FROM t2 WHERE y = 'y1'",
    "SELECT * FROM t3 WHERE p = 1 ORDER BY q",
    "SELECT * FROM t3 WHERE p = 1 AND q > 'a' ORDER BY q",
    "SELECT * FROM t3 WHERE p > 0 ORDER BY p DESC, q DESC",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
    "SELECT i, (SELECT count(*) FROM t1 WHERE id <= i) FROM n",
    "WITH big AS (SELECT * FROM t1 WHERE a > 0) SELECT count(*) FROM big",
    "SELECT id, a, row_number() OVER (ORDER BY a, id), sum(a) OVER (PARTITION BY b "
    "ORDER BY id) FROM t1 ORDER BY id",
    "SELECT id FROM t1 WHERE a IN (SELECT x FROM t2) ORDER BY id",
    "SELECT id FROM t1 WHERE EXISTS (SELECT 1 FROM t3 WHERE t3.p = t1.id) ORDER BY id",
    "SELECT b, group_concat(id, ',') FROM (SELECT * FROM t1 ORDER BY id) GROUP BY b ORDER BY b",
    "SELECT DISTINCT a FROM t1 ORDER BY a",
    "SELECT * FROM t1 ORDER BY a DESC, id LIMIT 3 OFFSET 1",
    "SELECT typeof(a), typeof(b), typeof(c) FROM t1 ORDER BY id",
    "SELECT x, count(*) FROM t2 GROUP BY x ORDER BY x",
    "SELECT a FROM t1 UNION SELECT x FROM t2 ORDER BY 1",
    "SELECT a FROM t1 INTERSECT SELECT x FROM t2 ORDER BY 1",
    "SELECT a FROM t1 EXCEPT SELECT x FROM t2 ORDER BY 1",
    "SELECT * FROM t1 a JOIN t1 b ON a.id = b.a ORDER BY a.id, b.id",
    "SELECT * FROM t4 WHERE v IS NULL ORDER BY w",
    "SELECT * FROM t2 WHERE k = 'B' COLLATE NOCASE",
    "SELECT * FROM t2 WHERE k > 'B' COLLATE NOCASE ORDER BY k",
    "SELECT * FROM t2 ORDER BY k COLLATE NOCASE DESC, x",
    "SELECT * FROM t1 WHERE b = 'X' COLLATE NOCASE ORDER BY id",
    "SELECT * FROM t1 WHERE id IN (SELECT a FROM t1) ORDER BY id DESC",
    "SELECT * FROM t1 WHERE id > 2 AND id <= 5 AND a > 0 ORDER BY id",
    "SELECT * FROM t3 WHERE p IN (1, 2) AND q IN ('a', 'b') ORDER BY p, q",
]


class Pair:
    def __init__(self):
        self.store = ProllySQLStore("unused", "memory")
        self.oracle = apsw.Connection(":memory:")

    def run(self, sql, params=None):
        err_o = err_s = None
        res_o = res_s = None
        try:
            res_o = list(self.oracle.execute(sql, params))
        except apsw.Error as e:
            err_o = e
        try:
            res_s = self.store.execute(sql, "tuples", params)
        except (apsw.Error, ValueError) as e:
            err_s = e
        assert (err_o is None) == (err_s is None), (sql, err_o, err_s)
        if err_o is None and isinstance(res_s, tuple):
            assert _norm(res_s[1]) == _norm(res_o), sql
        return err_o

    def compare_corpus(self):
        for q in CORPUS:
            self.run(q)

    def close(self):
        self.store.close()
        self.oracle.close()


def _norm(rows):
    out = []
    for r in rows:
        out.append(tuple(round(v, 9) if isinstance(v, float) and math.isfinite(v) else v
                         for v in r))
    return out


def check_indexes(store):
    """Invariant: every index tree holds exactly the entries its table's rows give."""
    from prollytree.sql.rows import decode_row
    from prollytree.sql.vtable import index_key
    for schema in _live_schemas(store):
        rows = list(store.trees.tree(schema.tree).items())
        for idx in schema.indexes:
            want = sorted((index_key(idx, decode_row(v), k), k) for k, v in rows)
            assert list(store.trees.tree(idx.tree).items()) == want, idx.name


def _live_schemas(store):
    from prollytree.sql.schema import Shadow
    sh = Shadow()
    try:
        for k, v in store.trees.tree("sql/catalog").items():
            if k.startswith(b"t\x00"):
                sh.load_entry(v)
        return [sh.schema(n) for n in sh.tables()]
    finally:
        sh.close()


def _dump(db, ref=None):
    out = {}
    for t, order in (("t1", "id"), ("t2", "k"), ("t3", "p, q"), ("t4", "v, w")):
        q = f"SELECT * FROM {t} ORDER BY {order}"
        try:
            if isinstance(db, ProllySQLStore):
                rows = db.query_at_commit(ref, q, "tuples")[1]
            else:
                rows = list(db.execute(q))
        except apsw.SQLError:   # e.g. a column renamed at that point
            rows = None
        out[t] = None if rows is None else _norm([tuple(r) for r in rows])
    return out


@pytest.fixture
def pair():
    p = Pair()
    for s in SCHEMA:
        p.run(s)
    yield p
    p.close()


SEED = [
    "INSERT INTO t1 VALUES (1, 1, 'x', 1.5), (2, 2, 'y', NULL), (3, NULL, 'x', -2.0)",
    "INSERT INTO t1 (a, b, c) VALUES (2, 'z', 0.25), (3, 'y', 3)",
    "INSERT INTO t1 VALUES ('7', '4', 5, '2.5')",
    "INSERT INTO t2 VALUES ('a', 1, 'y1'), ('b', 2, 'y2'), ('c', 2, NULL), ('d', 9, NULL)",
    "INSERT INTO t3 VALUES (1, 'a', x'00'), (1, 'b', NULL), (2, 'a', x'ff'), (3, 'c', 'txt')",
    "INSERT INTO t4 VALUES (1, 'one'), (NULL, 'nothing'), (1, 'one'), (2, NULL)",
]


def test_corpus_matches_sqlite(pair):
    for s in SEED:
        pair.run(s)
    pair.compare_corpus()
    pair.run("CREATE INDEX i1 ON t1 (a, b)")
    pair.run("CREATE INDEX i4 ON t4 (w)")
    pair.compare_corpus()
    check_indexes(pair.store)


def test_constraints_match_sqlite(pair):
    for s in SEED:
        pair.run(s)
    assert pair.run("INSERT INTO t1 VALUES (1, 0, 'dup', 0)") is not None
    assert pair.run("INSERT INTO t2 VALUES ('e', 1, 'y1')") is not None      # UNIQUE y
    assert pair.run("INSERT INTO t2 VALUES ('e', NULL, 'q')") is not None    # NOT NULL
    assert pair.run("INSERT INTO t2 VALUES ('e', -51, 'q')") is not None     # CHECK
    assert pair.run("INSERT INTO t1 VALUES ('abc', 0, 'x', 0)") is not None  # datatype
    assert pair.run("INSERT INTO t3 VALUES (1, 'a', NULL)") is not None
    assert pair.run("UPDATE t2 SET y = 'y1' WHERE k = 'b'") is not None
    assert pair.run("UPDATE t1 SET id = 2 WHERE id = 1") is not None
    # a multi-row statement failing half-way changes nothing
    assert pair.run("INSERT INTO t1 VALUES (50, 0, 'n', 0), (1, 0, 'dup', 0)") is not None
    pair.run("INSERT OR IGNORE INTO t1 VALUES (1, 0, 'ign', 0), (60, 6, 'new', 6)")
    pair.run("INSERT OR REPLACE INTO t1 VALUES (2, 0, 'rep', 0)")
    pair.run("REPLACE INTO t2 VALUES ('z', 5, 'y2')")                        # evicts 'b'
    pair.run("UPDATE OR REPLACE t1 SET id = 3 WHERE id = 2")
    pair.compare_corpus()
    # an untyped key: 1 and 1.0 are the same key, as in SQLite
    pair.run("CREATE TABLE u (k PRIMARY KEY, v)")
    pair.run("INSERT INTO u VALUES (1, 'int'), (2.5, 'real'), ('1', 'text')")
    assert pair.run("INSERT INTO u VALUES (1.0, 'dup')") is not None
    for q in ["SELECT * FROM u WHERE k = 1.0", "SELECT * FROM u WHERE k = 1",
              "SELECT * FROM u WHERE k > 1 ORDER BY k", "SELECT * FROM u ORDER BY k DESC"]:
        pair.run(q)


def test_transactions_match_sqlite(pair):
    for s in SEED:
        pair.run(s)
    for s in ["BEGIN", "INSERT INTO t1 VALUES (100, 1, 'b', 1)", "DELETE FROM t2 WHERE k = 'a'",
              "SAVEPOINT sp", "UPDATE t1 SET a = a + 10", "INSERT INTO t1 VALUES (100, 0, '', 0)",
              "ROLLBACK TO sp", "INSERT INTO t4 VALUES (7, 'seven')", "RELEASE sp", "ROLLBACK"]:
        pair.run(s)
        pair.compare_corpus()
    for s in ["BEGIN", "INSERT INTO t1 VALUES (100, 1, 'b', 1)",
              "INSERT INTO t1 VALUES (101, 1, 'b', 1), (100, 0, '', 0)", "COMMIT"]:
        pair.run(s)
    pair.compare_corpus()


def test_alter_and_drop_match_sqlite(pair):
    for s in SEED:
        pair.run(s)
    pair.run("CREATE INDEX i1 ON t1 (b)")
    for s in ["ALTER TABLE t1 ADD COLUMN d TEXT DEFAULT 'dd'", "INSERT INTO t1 (a) VALUES (42)",
              "ALTER TABLE t1 RENAME COLUMN b TO bb", "SELECT * FROM t1 WHERE bb = 'x' ORDER BY id",
              "ALTER TABLE t1 DROP COLUMN c", "SELECT * FROM t1 ORDER BY id",
              "ALTER TABLE t4 RENAME TO t5", "SELECT * FROM t5 ORDER BY v, w",
              "DROP TABLE t5", "SELECT * FROM t5",
              "CREATE TABLE t5 (v INTEGER, w TEXT)", "SELECT * FROM t5",
              "DROP INDEX i1", "SELECT * FROM t1 WHERE bb = 'x' ORDER BY id",
              "CREATE VIEW v1 AS SELECT id, a FROM t1 WHERE a > 1",
              "CREATE TABLE c1 AS SELECT id, a, b || '!' AS bang, a * 1.5 AS f FROM t1 "
              "WHERE a > 0",
              "SELECT * FROM c1 ORDER BY id", "SELECT typeof(bang), typeof(f) FROM c1",
              "CREATE TABLE c1 AS SELECT 1", "CREATE TABLE IF NOT EXISTS c1 AS SELECT 1",
              "SELECT count(*) FROM c1",
              "SELECT * FROM v1 ORDER BY id"]:
        pair.run(s)


def test_autoincrement_matches_sqlite(pair):
    for s in ["CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
              "INSERT INTO ai (v) VALUES ('a'), ('b'), ('c')", "DELETE FROM ai WHERE id = 3",
              "INSERT INTO ai (v) VALUES ('d')", "INSERT INTO ai VALUES (10, 'e')",
              "DELETE FROM ai WHERE id >= 4", "INSERT INTO ai (v) VALUES ('f')",
              "BEGIN", "INSERT INTO ai (v) VALUES ('g')", "ROLLBACK",
              "INSERT INTO ai (v) VALUES ('h')", "SELECT * FROM ai ORDER BY id",
              "ALTER TABLE ai RENAME TO ai2", "DELETE FROM ai2",
              "INSERT INTO ai2 (v) VALUES ('i')", "SELECT * FROM ai2 ORDER BY id",
              "DROP TABLE ai2",
              "CREATE TABLE ai2 (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
              "INSERT INTO ai2 (v) VALUES ('j')", "SELECT * FROM ai2 ORDER BY id"]:
        pair.run(s)


def test_insert_select_and_returning(pair):
    for s in SEED:
        pair.run(s)
    pair.run("INSERT INTO t4 SELECT a, b FROM t1 WHERE a IS NOT NULL")
    pair.run("INSERT INTO t1 (a, b) SELECT x, k FROM t2")
    pair.run("INSERT INTO t4 SELECT x, k FROM t2 RETURNING v, w")
    pair.run("DELETE FROM t1 WHERE id IN (SELECT id FROM t1 ORDER BY id LIMIT 2)")
    pair.run("UPDATE t1 SET a = (SELECT max(x) FROM t2) WHERE b = 'x'")
    pair.run("UPDATE t1 SET id = id + 100 WHERE id > 3")
    pair.compare_corpus()
    check_indexes(pair.store)


# -- hypothesis: random statement sequences -------------------------------------------------

small = st.integers(-3, 12)
text = st.sampled_from(["a", "b", "c", "x", "y", "", "é", "a'b"])
val = st.one_of(st.none(), small, text, st.floats(-5, 5).map(lambda f: round(f, 2)))


def _lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


stmt = st.one_of(
    st.tuples(st.sampled_from(["INSERT", "INSERT OR IGNORE", "INSERT OR REPLACE"]),
              st.one_of(st.none(), small), val, val, val).map(
        lambda t: f"{t[0]} INTO t1 VALUES ({_lit(t[1])}, {_lit(t[2])}, {_lit(t[3])}, "
                  f"{_lit(t[4])})"),
    st.tuples(st.sampled_from(["INSERT", "INSERT OR REPLACE"]), text, small,
              st.one_of(st.none(), text)).map(
        lambda t: f"{t[0]} INTO t2 VALUES ({_lit(t[1])}, {t[2]}, {_lit(t[3])})"),
    st.tuples(small, text, val).map(
        lambda t: f"INSERT INTO t3 VALUES ({t[0]}, {_lit(t[1])}, {_lit(t[2])})"),
    st.tuples(val, text).map(lambda t: f"INSERT INTO t4 VALUES ({_lit(t[0])}, {_lit(t[1])})"),
    st.tuples(st.sampled_from(["a", "b", "c", "id"]), val, st.sampled_from(["=", "<", ">="]),
              small).map(lambda t: f"UPDATE t1 SET {t[0]} = {_lit(t[1])} WHERE id {t[2]} {t[3]}"),
    st.tuples(small, text).map(lambda t: f"UPDATE t2 SET x = x + {t[0]} WHERE k = {_lit(t[1])}"),
    st.tuples(st.sampled_from(["id", "a"]), st.sampled_from(["=", "<", ">"]), small).map(
        lambda t: f"DELETE FROM t1 WHERE {t[0]} {t[1]} {t[2]}"),
    st.tuples(text).map(lambda t: f"DELETE FROM t2 WHERE y >= {_lit(t[0])}"),
    st.tuples(small).map(lambda t: f"DELETE FROM t3 WHERE p = {t[0]}"),
    st.tuples(small).map(lambda t: f"DELETE FROM t4 WHERE v < {t[0]}"),
    st.just("VERSION"),
    st.tuples(small, val, val).map(
        lambda t: f"INSERT INTO t1 VALUES ({t[0]}, {_lit(t[1])}, 'u', {_lit(t[2])}) "
                  f"ON CONFLICT (id) DO UPDATE SET a = excluded.a, c = c + 1"),
    st.tuples(text, small).map(
        lambda t: f"INSERT INTO t2 VALUES ({_lit(t[0])}, {t[1]}, NULL) ON CONFLICT DO NOTHING"),
    st.sampled_from(["ALTER TABLE t4 ADD COLUMN z INTEGER DEFAULT 3",
                     "ALTER TABLE t4 DROP COLUMN z", "ALTER TABLE t4 RENAME COLUMN w TO w2",
                     "ALTER TABLE t4 RENAME COLUMN w2 TO w",
                     "UPDATE t4 SET z = v * 2 WHERE v > 1"]),
    st.sampled_from(["BEGIN", "COMMIT", "ROLLBACK", "CREATE INDEX ia ON t1 (a)",
                     "DROP INDEX ia", "CREATE UNIQUE INDEX ub ON t1 (b)", "DROP INDEX ub",
                     "CREATE INDEX iw ON t4 (w, v)", "DROP INDEX iw"]),
)


@settings(max_examples=int(os.environ.get("SQL_ORACLE_EXAMPLES", "60")), deadline=None)
@given(st.lists(stmt, max_size=25))
def test_random_statement_sequences_match_sqlite(stmts):
    p = Pair()
    try:
        for s in SCHEMA:
            p.run(s)
        versions = []
        for s in stmts:
            in_txn = not p.oracle.get_autocommit()
            if s.startswith(("CREATE", "DROP", "ALTER")) and in_txn:
                continue  # schema changes inside BEGIN are refused by design
            if s == "VERSION":
                if not in_txn:  # a version commit: remember what each table held
                    versions.append((p.store.commit("v"), _dump(p.oracle)))
                continue
            p.run(s)
        p.compare_corpus()
        check_indexes(p.store)
        for cid, dump in versions:  # time travel gives back exactly those tables
            assert _dump(p.store, cid) == dump
    finally:
        p.close()


def test_defaults_and_upsert_match_sqlite(pair):
    for s in SEED:
        pair.run(s)
    for s in [
        "CREATE TABLE d (id INTEGER PRIMARY KEY, a TEXT DEFAULT 'da', b INTEGER DEFAULT 7, "
        "c TEXT UNIQUE, n INTEGER NOT NULL DEFAULT 0)",
        "INSERT INTO d (id) VALUES (1)",
        "INSERT INTO d (id, a, b, c) VALUES (2, NULL, NULL, 'c2')",
        "INSERT INTO d VALUES (3, NULL, NULL, 'c3', 5)",
        "INSERT INTO d DEFAULT VALUES",
        "INSERT INTO d (id, c) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET a = excluded.c, "
        "b = b + 1",
        "INSERT INTO d (id, c) VALUES (1, 'y') ON CONFLICT DO NOTHING",
        "INSERT INTO d (id, c) VALUES (9, 'c2'), (10, 'new') ON CONFLICT (c) DO UPDATE "
        "SET n = n + 100 WHERE excluded.id > 5",
        "INSERT INTO d (id, c) VALUES (2, 'q') ON CONFLICT (id) DO UPDATE SET c = 'c3'",
        "INSERT INTO t2 VALUES ('a', 5, 'new') ON CONFLICT (k) DO UPDATE SET x = excluded.x",
        "INSERT INTO t1 (id, a) SELECT id, a * 10 FROM t1 WHERE true ON CONFLICT (id) "
        "DO UPDATE SET a = excluded.a",
        "INSERT INTO d (id, c) VALUES (20, 'z') ON CONFLICT (a) DO NOTHING",
        "SELECT * FROM d ORDER BY id",
    ]:
        pair.run(s)
    pair.compare_corpus()
