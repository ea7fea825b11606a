"""A small dataset with branches, a tag, a merge, binary and HTML-looking keys, and a
large value, shared by the web tests (built once per module, read-only tests)."""

from __future__ import annotations

import json
import os
import warnings

import pytest

# Starlette's TestClient warns that it will move from httpx to httpx2; httpx works
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")


def pytest_configure(config):
    config.addinivalue_line("filterwarnings",
                            "ignore:Using `httpx` with `starlette.testclient`")

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from prollytree import StorageBackend, VersionedKvStore  # noqa: E402

XSS_KEY = b"<script>alert('k')</script>"
XSS_VALUE = b"<img src=x onerror=alert('v')>"
BIN_KEY = b"bin:\x00\xff\x80"
BIN_VALUE = bytes(range(256)) * 2
BIG_KEY = b"big"
BIG_VALUE = b"0123456789abcdef" * 20000          # 320 kB: truncated in the viewer
JSON_VALUE = json.dumps({"name": "Alice", "tags": ["a", "b"], "n": 1}).encode()


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch):
    for k, v in {"GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.com",
                 "GIT_COMMITTER_NAME": "Ann Author",
                 "GIT_COMMITTER_EMAIL": "ann@example.com"}.items():
        monkeypatch.setenv(k, v)


def build(path: str, backend=StorageBackend.File) -> dict:
    """Build the dataset; returns the model: {commit label: {key: value}} and ids."""
    s = VersionedKvStore(path, backend)
    model: dict = {}
    ids: dict = {}
    cur: dict = {}

    def commit(label: str, msg: str, **_) -> None:
        ids[label] = s.commit(msg)
        model[label] = dict(cur)

    def put(k: bytes, v: bytes) -> None:
        s.insert(k, v)
        cur[k] = v

    def rm(k: bytes) -> None:
        s.delete(k)
        cur.pop(k, None)

    for i in range(30):
        put(f"user:{i:03d}".encode(), f"value {i}".encode())
    put(b"user:alice", b"Alice v1")
    put(b"user:bob", b"Bob v1")
    put(b"config", JSON_VALUE)
    put(XSS_KEY, XSS_VALUE)
    put(BIN_KEY, BIN_VALUE)
    put(BIG_KEY, BIG_VALUE)
    commit("c1", "Initial data\n\nwith a body line")
    s.tag("v1")
    s.branch("feature")
    # main moves on
    put(b"user:alice", b"Alice on main")
    put(b"user:dave", b"Dave")
    s.tree("ns/people").insert(b"p:1", b"one on main")
    s.tree("ns/people").insert(b"p:2", b"two")
    commit("c2", "main: alice and dave")
    base_main = dict(cur)
    # feature: conflicting alice, new carol, bob deleted
    s.checkout("feature")
    cur = dict(model["c1"])
    put(b"user:alice", b"Alice on feature")
    put(b"user:carol", b"Carol")
    rm(b"user:bob")
    s.tree("ns/people").insert(b"p:1", b"one on feature")
    s.tree("ns/places").insert(b"here", b"there")
    commit("f1", "feature: alice, carol, no bob")
    # a side branch merged back into main (a merge commit with two parents)
    s.checkout("main")
    cur = dict(base_main)
    s.branch("side")
    s.checkout("side")
    put(b"side:1", b"from side")
    commit("s1", "side work")
    s.checkout("main")
    cur = dict(base_main)
    put(b"main:2", b"main again")
    commit("c3", "main again")
    ids["merge"] = s.merge("side")
    cur[b"side:1"] = b"from side"
    model["merge"] = dict(cur)
    s.close()
    return {"model": model, "ids": ids}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("webds") / "ds")
    os.environ.setdefault("GIT_AUTHOR_NAME", "Ann Author")
    info = build(path)
    store = VersionedKvStore.open(path)
    yield dict(info, path=path, store=store)
    store.close()


@pytest.fixture(scope="module")
def client(dataset):
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    with TestClient(create_app(dataset["store"])) as c:
        yield c
