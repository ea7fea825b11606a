"""The SQL console (against plain SQLite running the same statements) and the memory
view (against what was stored)."""

from __future__ import annotations

import base64
import sqlite3

import pytest

from prollytree import StorageBackend, VersionedKvStore

STEPS = [
    ["CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, data BLOB)",
     "INSERT INTO users VALUES (1, 'ann', x'00ff'), (2, '<b>bob</b>', NULL), (3, 'cy', x'01')"],
    ["UPDATE users SET name = 'ann 2' WHERE id = 1", "DELETE FROM users WHERE id = 3",
     "INSERT INTO users VALUES (4, 'dee', NULL)"],
]
QUERY = "SELECT id, name, data FROM users ORDER BY id"


@pytest.fixture(scope="module")
def sqlapp(tmp_path_factory):
    pytest.importorskip("apsw")
    from starlette.testclient import TestClient

    from prollytree.sql import ProllySQLStore
    from prollytree.web import create_app
    path = str(tmp_path_factory.mktemp("sqlds") / "ds")
    model = sqlite3.connect(":memory:")
    snapshots = []
    with ProllySQLStore(path, StorageBackend.File) as sql:
        for i, step in enumerate(STEPS):
            for stmt in step:
                sql.execute(stmt)
                model.execute(stmt)
            sql.commit(f"step {i}")
            snapshots.append(model.execute(QUERY).fetchall())
    sql = ProllySQLStore.open(path)
    with TestClient(create_app(sql.kv, sql=sql)) as c:
        yield c, sql, snapshots
    sql.close()


def rows_of(doc: dict) -> list[tuple]:
    return [tuple(base64.b64decode(v["b64"]) if isinstance(v, dict) else v for v in r)
            for r in doc["rows"]]


def test_query_at_any_ref_matches_sqlite(sqlapp):
    c, _sql, snapshots = sqlapp
    for ref, want in [("HEAD~1", snapshots[0]), ("HEAD", snapshots[1]),
                      ("main", snapshots[1])]:
        doc = c.get("/api/sql", params={"ref": ref, "q": QUERY}).json()
        assert doc["columns"] == ["id", "name", "data"]
        assert rows_of(doc) == want, ref
        assert doc["tables"] == ["users"]
    # paged one row at a time: the same rows
    got, params = [], {"ref": "HEAD~1", "q": QUERY, "limit": 1}
    while params:
        doc = c.get("/api/sql", params=params).json()
        got += rows_of(doc)
        params = doc["next"]
    assert got == snapshots[0]
    # aggregates and several statements (the last one's rows)
    doc = c.get("/api/sql", params={"q": "SELECT count(*) AS n FROM users"}).json()
    assert doc["rows"] == [[3]]
    doc = c.get("/api/sql", params={"q": "SELECT 1; SELECT 2 AS two"}).json()
    assert doc["columns"] == ["two"] and doc["rows"] == [[2]]


def test_sql_errors_and_read_only(sqlapp, tmp_path):
    c, _sql, _ = sqlapp
    r = c.get("/api/sql", params={"q": "WITH x AS (SELECT 1) DELETE FROM users; SELECT 1"})
    assert r.status_code == 400 and "read-only" in r.json()["error"]
    # statements that are not queries never run: ATTACH would create a file
    target = tmp_path / "attached.db"
    for q in [f"ATTACH DATABASE '{target}' AS e", "DELETE FROM users",
              f"SELECT 1; ATTACH '{target}' AS e", f"VACUUM INTO '{target}'",
              "PRAGMA writable_schema = 1"]:
        r = c.get("/api/sql", params={"q": q})
        assert r.status_code == 400 and "queries only" in r.json()["error"], q
    assert not target.exists()
    r = c.get("/api/sql", params={"q": "SELECT nonsense FROM nowhere"})
    assert r.status_code == 400 and "SQL error" in r.json()["error"]
    r = c.get("/api/sql", params={"q": QUERY, "ref": "nope"})
    assert r.status_code == 404
    r = c.get("/api/sql", params={"system": "sqlite_master"})
    assert r.status_code == 400 and "no system table" in r.json()["error"]
    assert c.get("/api/sql").status_code == 400
    assert c.get("/api/sql", params={"q": QUERY, "offset": "-1"}).status_code == 400


def test_system_tables(sqlapp):
    c, sql, _ = sqlapp
    doc = c.get("/api/sql", params={"system": "prolly_log"}).json()
    assert [r[0] for r in doc["rows"]] == [e["id"] for e in sql.kv.log()]
    doc = c.get("/api/sql", params={"system": "prolly_history_users", "limit": 2}).json()
    assert len(doc["rows"]) == 2 and doc["next"] is not None
    html = c.get("/sql").text
    assert "prolly_diff_users" in html and 'href="/sql"' in html


def test_sql_page_escapes_and_shows_blobs(sqlapp):
    c, _sql, _ = sqlapp
    html = c.get("/sql", params={"ref": "HEAD~1", "q": QUERY}).text
    assert "&lt;b&gt;bob&lt;/b&gt;" in html and "<b>bob</b>" not in html
    assert "x&#39;00ff&#39;" in html and "NULL" in html


def test_without_sql_there_is_no_console(tmp_path):
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    with VersionedKvStore(str(tmp_path / "plain"), StorageBackend.File) as s, \
            TestClient(create_app(s)) as c:
        assert c.get("/sql").status_code == 404
        assert 'href="/sql"' not in c.get("/").text
        assert 'href="/memory"' not in c.get("/").text


# -- memory ------------------------------------------------------------------------------


@pytest.fixture
def memory_path(tmp_path, monkeypatch):
    pytest.importorskip("prollytree.memory")
    for k, v in {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.com",
                 "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@example.com"}.items():
        monkeypatch.setenv(k, v)
    from prollytree.memory import AgentMemorySystem
    path = str(tmp_path / "mem")
    m = AgentMemorySystem(path, "agent-1")
    m.semantic.store_fact("city", "tokyo", {"name": "Tokyo", "timezone": "JST"}, 0.9, "api")
    m.semantic.store_fact("city", "paris", {"name": "Paris", "timezone": "CET"}, 0.8, "api")
    m.episodic.store_episode("Talked about <script>travel</script> plans", {"who": "ann"})
    m.checkpoint("facts")
    m.close()
    return path


def test_memory_view_kinds_and_search(memory_path):
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    with VersionedKvStore.open(memory_path) as s, TestClient(create_app(s)) as c:
        doc = c.get("/api/memory").json()
        assert doc["present"] is True and doc["unavailable"] is None
        assert doc["stats"]["total"] == 3
        assert doc["stats"]["by_type"]["semantic"] == 2
        assert doc["stats"]["by_type"]["episodic"] == 1
        assert len(doc["results"]) == 3
        hit = c.get("/api/memory", params={"q": "Tokyo"}).json()["results"]
        assert [r["content"]["facts"]["name"] for r in hit] == ["Tokyo"]
        only = c.get("/api/memory", params={"kind": "episodic"}).json()["results"]
        assert [r["type"] for r in only] == ["episodic"]
        assert c.get("/api/memory", params={"kind": "nope"}).status_code == 400
        html = c.get("/memory").text
        assert 'href="/memory"' in html and "&lt;script&gt;travel" in html
        assert "<script>travel" not in html


def test_memory_view_on_a_file_dataset_explains(tmp_path):
    pytest.importorskip("prollytree.memory")
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    with VersionedKvStore(str(tmp_path / "f"), StorageBackend.File) as s:
        s.tree("memory/semantic").insert(b"x", b"y")
        s.commit("memory-like tree")
        with TestClient(create_app(s)) as c:
            doc = c.get("/api/memory").json()
            assert doc["present"] is True and "Git-backed" in doc["unavailable"]
            assert c.get("/memory").status_code == 200
