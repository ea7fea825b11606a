"""A store-backed dataset over HTTP (prollytree.sync.http_store): the real server
(uvicorn, 127.0.0.1, a subprocess) and the client, checked against dict models, the
records the server gained (brute force), and hostile requests that must change
nothing."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

httpx = pytest.importorskip("httpx")

from prollytree.errors import AuthenticationError, NonFastForwardError  # noqa: E402
from prollytree.sync import open_dataset_store, replicate  # noqa: E402
from prollytree.sync.http_store import HttpNodeStore  # noqa: E402
from prollytree.versioning import StorageBackend, VersionedKvStore  # noqa: E402

from . import test_http as http_test  # noqa: E402

TOKEN = "s3cret-token"
API = "/prolly/v1/store"


class Server(http_test.Server):
    SERVE = ("prollytree.sync.http_store", "serve_store")
    REFS = API + "/refs"


def make(path, n: int) -> dict:
    s = VersionedKvStore(path, StorageBackend.File)
    model = {b"k%05d" % i: b"v%d" % i for i in range(n)}
    s.insert_batch(sorted(model.items()))
    s.commit("load")
    s.close()
    return model


def addresses(path) -> set:
    with open_dataset_store(str(path), read_only=True) as st:
        return set(st.addresses())


@pytest.fixture
def served(tmp_path):
    model = make(tmp_path / "srv", 4000)
    srv = Server(tmp_path / "srv", allow_push=True, token=TOKEN, max_put_bytes=8 << 20)
    try:
        yield srv, model
    finally:
        srv.stop()


def test_clone_push_pull_over_http(tmp_path, served):
    srv, model = served
    c = VersionedKvStore.clone(srv.url, tmp_path / "c")
    assert dict(c.iter_items()) == model
    assert c.list_remotes() == {"origin": srv.url}
    # pushing needs the token: none -> 401, wrong -> 403, nothing moves
    c.insert(b"new", b"1")
    c.commit("c1")
    model[b"new"] = b"1"
    refs = srv.refs()
    with pytest.raises(AuthenticationError, match="401"):
        c.push()
    with pytest.raises(AuthenticationError, match="403"):
        c.push(token="wrong")
    assert srv.refs() == refs
    before = addresses(tmp_path / "srv")
    r = c.push(token=TOKEN)
    assert r["status"] == "fast-forward"
    gained = addresses(tmp_path / "srv") - before
    assert r["nodes_sent"] == len(gained) and 0 < len(gained) < len(before) // 5
    # the token in the URL, redacted in reports
    c.remove_remote("origin")
    c.add_remote("origin", f"http://{TOKEN}@127.0.0.1:{srv.port}")
    c.insert(b"new2", b"2")
    c.commit("c2")
    model[b"new2"] = b"2"
    r = c.push()
    assert r["status"] == "fast-forward" and TOKEN not in json.dumps(r)
    # another copy pulls what was pushed
    d = VersionedKvStore(tmp_path / "d", StorageBackend.RocksDB)
    d.add_remote("origin", srv.url)
    d.pull()
    assert dict(d.iter_items()) == model
    # a diverged push is refused, the server's branch unchanged
    d.insert(b"d", b"1")
    d.commit("d")
    c.insert(b"c", b"1")
    c.commit("c3")
    c.push()
    refs = srv.refs()
    with pytest.raises(NonFastForwardError):
        d.push(token=TOKEN)
    assert srv.refs() == refs
    assert d.pull()["merged"] == "merge"
    assert d.push(token=TOKEN)["status"] == "fast-forward"
    c.close()
    d.close()
    srv.stop()
    with VersionedKvStore.open(str(tmp_path / "srv")) as s:
        assert dict(s.iter_items()) == {**model, b"d": b"1", b"c": b"1"}


def test_replicate_through_http_node_store(tmp_path, served):
    srv, model = served
    with HttpNodeStore(srv.url) as web, open_dataset_store(str(tmp_path / "x"),
                                                           "lmdb") as dst:
        st = replicate(web, dst, "main")
    assert st.commits == 2 and st.nodes == len(addresses(tmp_path / "x"))  # + the initial
    with VersionedKvStore(str(tmp_path / "x"), StorageBackend.LMDB) as x:
        assert dict(x.iter_items()) == model
        x.insert(b"from-x", b"1")
        x.commit("x")
    with open_dataset_store(str(tmp_path / "x"), read_only=True) as src, \
            HttpNodeStore(srv.url, token=TOKEN) as web:
        st = replicate(src, web, "main")
        assert st.commits == 1 and st.ref_moved
        assert replicate(src, web, "main").nodes == 0       # nothing left to send


def _put_body(items) -> bytes:
    return b"".join(a + struct.pack(">I", len(d)) + d for a, d in items)


def test_hostile_requests_change_nothing(tmp_path, served):
    srv, model = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refs = srv.refs()
    before = addresses(tmp_path / "srv")
    good = b"a fresh record"
    addr = hashlib.sha256(good).digest()
    bad = [
        # (path, body, headers, status)
        ("put", _put_body([(addr, good)]), {}, 401),
        ("put", _put_body([(addr, good)]), {"Authorization": "Bearer nope"}, 403),
        ("put", _put_body([(addr, good), (b"\1" * 32, b"lies")]), auth, 400),
        ("put", _put_body([(addr, good)])[:-3], auth, 400),
        ("put", b"x" * (9 << 20), auth, 413),
        ("has", b"\0" * 33, {}, 400),
        ("has", b"\0" * 32 * 10_001, {}, 413),
        ("get", b"\0" * 32 * 1_025, {}, 413),
        ("ref", json.dumps({"name": "refs/heads/main", "value": addr.hex(),
                            "expected": refs["refs/heads/main"]}).encode(), auth, 400),
        ("ref", json.dumps({"name": "refs/heads/../../config", "value": "00" * 32,
                            "expected": None}).encode(), auth, 400),
        ("ref", json.dumps({"name": "refs/prollytree/x", "value": "00" * 32,
                            "expected": None}).encode(), auth, 400),
        ("ref", json.dumps({"name": "HEAD", "value": b"ref: refs/heads/x".hex(),
                            "expected": refs["HEAD"]}).encode(), auth, 400),
        ("ref", json.dumps({"name": "refs/heads/x", "value": "zz",
                            "expected": None}).encode(), auth, 400),
        ("ref", b"not json", auth, 400),
    ]
    for path, body, headers, status in bad:
        r = httpx.post(srv.url + f"{API}/{path}", content=body, headers=headers)
        assert r.status_code == status, (path, status, r.status_code, r.text)
    assert httpx.get(srv.url + API + "/../../etc/passwd").status_code == 404
    assert httpx.get(srv.url + "/nodes/").status_code == 404
    assert srv.refs() == refs
    srv.stop()
    assert addresses(tmp_path / "srv") == before
    # a read-only server refuses every write
    ro = Server(tmp_path / "srv")
    try:
        r = httpx.post(ro.url + f"{API}/put", content=_put_body([(addr, good)]),
                       headers=auth)
        assert r.status_code == 403
        with pytest.raises(AuthenticationError, match="403"):
            with HttpNodeStore(ro.url, token=TOKEN) as web:
                web.put(addr, good)
        got = HttpNodeStore(ro.url)
        assert got.has_many([addr]) == set() and got.get(addr) is None
        got.close()
    finally:
        ro.stop()
    assert addresses(tmp_path / "srv") == before
