"""The HTTP server (``git prolly serve``'s app under uvicorn, started here on 127.0.0.1
in a subprocess) and the http:// remote: clone/fetch/pull/push against dict models,
tokens, compare-and-swap, and hostile requests crafted by hand, each of which must
change nothing on the server (refs compared before and after, ``git fsck --strict``)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from hashlib import sha1

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from prollytree.errors import (AuthenticationError, NonFastForwardError,  # noqa: E402
                               RemoteError)
from prollytree.sync import git_remote as gr  # noqa: E402
from prollytree.sync.http_client import END, MAGIC, RECORD, split_url  # noqa: E402
from prollytree.versioning import VersionedKvStore  # noqa: E402

from .test_git_remote import contents, fill, fsck, git  # noqa: E402

pytestmark = pytest.mark.usefixtures("git_home")     # tests/conftest.py

TOKEN = "t0ken-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real sync server in a child process on 127.0.0.1 (SERVE: module and function)."""

    SERVE = ("prollytree.sync.http_server", "serve")
    REFS = "/prolly/v1/refs"

    def __init__(self, path, **kw) -> None:
        self.path = str(path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        module, function = self.SERVE
        code = (f"import sys, json; from {module} import {function}; "
                f"{function}(sys.argv[1], '127.0.0.1', int(sys.argv[2]), "
                f"**json.loads(sys.argv[3]))")
        self.proc = subprocess.Popen([sys.executable, "-c", code, self.path, str(self.port),
                                      json.dumps(kw)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 90   # a loaded 2-core machine imports slowly
        while True:
            try:
                r = httpx.get(self.url + self.REFS, timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start: {self.proc.stderr.read()!r}")
            time.sleep(0.1)

    def refs(self) -> dict:
        return httpx.get(self.url + self.REFS).json()["refs"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def served(tmp_path):
    """A dataset of 2000 keys served with push allowed; yields (server, model)."""
    s = VersionedKvStore(tmp_path / "srv")
    model: dict = {}
    fill(s, model, 2000, 3)
    s.commit("load")
    s.tag("v1")
    s.close()
    srv = Server(tmp_path / "srv", allow_push=True, token=TOKEN, max_push_bytes=4 << 20)
    try:
        yield srv, model
    finally:
        srv.stop()


def test_clone_fetch_pull_push(tmp_path, served):
    srv, model = served
    c = gr.clone(srv.url, tmp_path / "c")
    try:
        assert contents(c) == model
        assert c.list_tags() == ["v1"]
        assert gr.list_remotes(c) == {"origin": srv.url}
        fill(c, model, 100, 4)
        c.commit("100 changes")
        # no token / wrong token: refused, nothing changes
        before = srv.refs()
        with pytest.raises(AuthenticationError, match="401"):
            gr.push(c)
        with pytest.raises(AuthenticationError, match="403"):
            gr.push(c, token="wrong")
        assert srv.refs() == before
        r = gr.push(c, token=TOKEN)
        assert r["status"] == "fast-forward"
        assert srv.refs()["refs/heads/main"] == c.current_commit()
        fsck(srv.path)
        # the server's own store reads the pushed data; its work tree stays clean
        s = VersionedKvStore.open(srv.path)
        assert contents(s) == model
        assert git(srv.path, "status", "--porcelain") == ""
        s.insert(b"server-side", b"1")
        s.commit("server writes")
        model[b"server-side"] = b"1"
        s.close()
        # a second clone with the token in its URL
        host = srv.url.split("//")[1]
        d = gr.clone(f"http://{TOKEN}@{host}", tmp_path / "d")
        assert contents(d) == model
        assert TOKEN not in str(gr.fetch(d))  # never echoed
        # c is behind: its push is refused before anything is sent; pull merges
        c.insert(b"from-c", b"2")
        c.commit("c")
        with pytest.raises(NonFastForwardError):
            gr.push(c, token=TOKEN)
        p = gr.pull(c)
        assert p["merged"] == "merge"
        model[b"from-c"] = b"2"
        assert contents(c) == model
        assert len(c.commit_info()["parents"]) == 2
        gr.push(c, token=TOKEN)
        assert gr.pull(d)["merged"] == "fast-forward"
        assert contents(d) == model
        # a new branch, and a forced push
        d.create_branch("side")
        d.insert(b"side", b"s")
        d.commit("side")
        assert gr.push(d, "origin", "side")["status"] == "created"
        assert srv.refs()["refs/heads/side"] == d.current_commit()
        d.checkout("main")
        d.insert(b"rewrite", b"r")
        d.commit("diverge")
        gr.fetch(c)
        c.insert(b"more", b"m")
        c.commit("more")
        gr.push(c, token=TOKEN)
        with pytest.raises(NonFastForwardError):
            gr.push(d)
        assert gr.push(d, force=True)["status"] == "forced"
        assert srv.refs()["refs/heads/main"] == d.current_commit()
        fsck(srv.path)
        d.close()
    finally:
        c.close()


def test_read_only_server_and_errors(tmp_path):
    s = VersionedKvStore(tmp_path / "srv")
    s.insert(b"k", b"v")
    s.commit("c")
    s.close()
    srv = Server(tmp_path / "srv")
    try:
        c = gr.clone(srv.url + "/", tmp_path / "c")
        assert c.get(b"k") == b"v"
        c.insert(b"k2", b"v2")
        c.commit("c2")
        with pytest.raises(AuthenticationError, match="read-only"):
            gr.push(c, token="anything")
        c.close()
        with pytest.raises(RemoteError):
            gr.clone(f"http://127.0.0.1:{free_port()}", tmp_path / "nothing")
        assert not (tmp_path / "nothing").exists()
        r = httpx.get(srv.url + "/prolly/v1/../../etc/passwd")
        assert r.status_code == 404
        assert httpx.get(srv.url + "/etc/passwd").status_code == 404
        assert httpx.get(srv.url + "/prolly/v1/fetch").status_code == 405
    finally:
        srv.stop()
    with pytest.raises(ValueError):
        split_url("ftp://x/y")


def _stream(objs: list[tuple[int, bytes]]) -> bytes:
    out = [MAGIC]
    for num, body in objs:
        z = zlib.compress(body)
        out.append(RECORD.pack(num, len(body), len(z)) + z)
    out.append(END.pack(0, len(objs)))
    return b"".join(out)


def _oid(kind: bytes, body: bytes) -> str:
    return sha1(kind + b" %d\0" % len(body) + body).hexdigest()


def _push(srv, updates, objs, token=TOKEN, raw=None):
    hb = json.dumps({"updates": updates}).encode()
    body = raw if raw is not None else struct.pack(">I", len(hb)) + hb + _stream(objs)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(srv.url + "/prolly/v1/push", content=body, headers=headers)


def _commit(tree: str, parents: list[str], msg: bytes = b"m\n") -> bytes:
    lines = [b"tree " + tree.encode()] + [b"parent " + p.encode() for p in parents]
    who = b"A <a@example.com> 1700000000 +0000"
    return b"\n".join(lines + [b"author " + who, b"committer " + who, b""]) + b"\n" + msg


def test_hostile_pushes_change_nothing(tmp_path, served):
    srv, _model = served
    refs = srv.refs()
    main = refs["refs/heads/main"]
    blob = b"hello\n"
    blob_id = _oid(b"blob", blob)

    def tree(entries):  # [(mode bytes, name, hex id)]
        return b"".join(m + b" " + n + b"\0" + bytes.fromhex(i) for m, n, i in entries)

    good_tree = tree([(b"100644", b"f", blob_id)])
    good_tree_id = _oid(b"tree", good_tree)

    def upd(new, old=main, ref="refs/heads/main", force=False):
        return [{"ref": ref, "old": old, "new": new, "force": force}]

    cases = []
    # a tree entry named ".." (would escape the work tree on checkout)
    bad_tree = tree([(b"100644", b"..", blob_id)])
    c = _commit(_oid(b"tree", bad_tree), [main])
    cases.append(("dotdot", upd(_oid(b"commit", c)), [(3, blob), (2, bad_tree), (1, c)], 400))
    # ".GIT" (dulwich accepts it; Git on a case-insensitive file system would not)
    git_tree = tree([(b"100644", b".GIT", blob_id)])
    cg = _commit(_oid(b"tree", git_tree), [main])
    cases.append((".GIT", upd(_oid(b"commit", cg)), [(3, blob), (2, git_tree), (1, cg)],
                  400))
    # a commit whose tree was never sent
    c2 = _commit("1" * 40, [main])
    cases.append(("missing tree", upd(_oid(b"commit", c2)), [(1, c2)], 400))
    # a tree naming a blob that is neither sent nor present
    t3 = tree([(b"100644", b"g", "2" * 40)])
    c3 = _commit(_oid(b"tree", t3), [main])
    cases.append(("missing blob", upd(_oid(b"commit", c3)), [(2, t3), (1, c3)], 400))
    # a parent that the server does not have
    c4 = _commit(good_tree_id, ["3" * 40])
    cases.append(("missing parent", upd(_oid(b"commit", c4)), [(3, blob), (2, good_tree),
                                                                (1, c4)], 400))
    # not a fast-forward without force (a root commit replacing main)
    c5 = _commit(good_tree_id, [])
    cases.append(("non-ff", upd(_oid(b"commit", c5)), [(3, blob), (2, good_tree), (1, c5)],
                  409))
    # compare-and-swap: the client saw another value
    c6 = _commit(good_tree_id, [main])
    c6_id = _oid(b"commit", c6)
    cases.append(("stale old", upd(c6_id, old="4" * 40),
                  [(3, blob), (2, good_tree), (1, c6)], 409))
    cases.append(("create existing", upd(c6_id, old=None),
                  [(3, blob), (2, good_tree), (1, c6)], 409))
    # ref names outside refs/heads and refs/tags, or invalid
    for name in ("HEAD", "refs/prollytree/store/x", "refs/heads/../../config",
                 "refs/heads/a..b", "../../etc/passwd", "refs/heads/x.lock"):
        cases.append((name, upd(c6_id, ref=name, old=None),
                      [(3, blob), (2, good_tree), (1, c6)], 400))
    # the id named is not what was sent (ids are computed from the bytes)
    cases.append(("misnamed", upd("5" * 40), [(3, blob), (2, good_tree), (1, c6)], 400))
    for what, updates, objs, status in cases:
        r = _push(srv, updates, objs)
        assert r.status_code == status, (what, r.text)
        assert srv.refs() == refs, what
    # damaged or truncated streams, a lying count, garbage
    hb = json.dumps({"updates": upd(c6_id)}).encode()
    head = struct.pack(">I", len(hb)) + hb
    good = _stream([(3, blob), (2, good_tree), (1, c6)])
    for what, raw in (("truncated", head + good[:-7]), ("garbage", head + b"x" * 100),
                      ("no header", b"\x00\x00"), ("count", head + good[:-4] + b"\0\0\0\x09"),
                      ("huge header", b"\x7f\xff\xff\xff" + b"{}"),
                      ("trailing", head + good + b"more")):
        r = _push(srv, None, None, raw=raw)
        assert r.status_code in (400, 413), (what, r.text)
        assert srv.refs() == refs, what
    # too large a body
    big = _stream([(3, os.urandom(5 << 20))])
    r = _push(srv, upd(c6_id), None, raw=head + big)
    assert r.status_code == 413
    # wrong/missing tokens
    assert _push(srv, upd(c6_id), [(3, blob), (2, good_tree), (1, c6)], token=None
                 ).status_code == 401
    assert _push(srv, upd(c6_id), [(3, blob), (2, good_tree), (1, c6)], token="x"
                 ).status_code == 403
    assert srv.refs() == refs
    # fetch: only advertised tips may be wanted; bodies are bounded
    r = httpx.post(srv.url + "/prolly/v1/fetch", json={"wants": [blob_id], "haves": []})
    assert r.status_code == 400
    r = httpx.post(srv.url + "/prolly/v1/fetch", content=b"{" * (5 << 20))
    assert r.status_code == 413
    r = httpx.post(srv.url + "/prolly/v1/fetch", json={"wants": ["zz"]})
    assert r.status_code == 400
    fsck(srv.path)
    # and a well-formed push of the same objects is accepted
    r = _push(srv, upd(c6_id), [(3, blob), (2, good_tree), (1, c6)])
    assert r.status_code == 200, r.text
    assert srv.refs()["refs/heads/main"] == c6_id
    fsck(srv.path)


def test_concurrent_pushes_one_wins(tmp_path, served):
    """Two clients push different commits on the same base at once: the ref moves by
    compare-and-swap, so exactly one push lands and the other is refused whole."""
    import threading
    srv, model = served
    a = gr.clone(srv.url, tmp_path / "a")
    b = gr.clone(srv.url, tmp_path / "b")
    a.insert(b"who", b"a")
    a.commit("a")
    b.insert(b"who", b"b")
    b.commit("b")
    results: dict = {}

    def go(name, store):
        try:
            results[name] = gr.push(store, token=TOKEN)["status"]
        except (RemoteError, NonFastForwardError) as e:
            results[name] = type(e).__name__
    threads = [threading.Thread(target=go, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values())[0] in ("NonFastForwardError", "RemoteError"), results
    assert sorted(results.values())[1] == "fast-forward", results
    winner = a if results["a"] == "fast-forward" else b
    assert srv.refs()["refs/heads/main"] == winner.current_commit()
    fsck(srv.path)
    s = VersionedKvStore.open(srv.path)
    assert s.get(b"who") == winner.get(b"who")
    s.close()
    a.close()
    b.close()


class _RawStore:
    def __init__(self, objs):
        self.objs = objs

    def get_raw(self, sha):
        return self.objs[sha]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from prollytree.sync.http_client import ObjectStreamReader, encode_objects  # noqa: E402

_objects = st.lists(st.tuples(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=3000)),
                    max_size=12)


@settings(max_examples=60, deadline=None)
@given(objs=_objects, cuts=st.lists(st.integers(0, 40000), max_size=8),
       flip=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(1, 255))))
def test_object_stream_roundtrip_and_damage(objs, cuts, flip):
    """Any chunking parses to exactly the objects sent (ids computed from the bytes);
    a damaged byte either raises RemoteError or yields objects under other ids — never
    an object under the id of different bytes."""
    from prollytree.sync.http_client import _TYPE_NAMES
    model = {}
    for num, body in objs:
        model[sha1(_TYPE_NAMES[num] + b" %d\0" % len(body) + body).hexdigest().encode()] = \
            (num, body)
    data = b"".join(encode_objects(_RawStore(model), list(model)))
    if flip is not None:
        pos, x = flip
        pos %= len(data)
        data = data[:pos] + bytes([data[pos] ^ x]) + data[pos + 1:]
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    reader = ObjectStreamReader(1 << 30)
    try:
        for a, b in zip(points, points[1:]):
            reader.feed(data[a:b])
        got = reader.finish()
    except RemoteError:
        assert flip is not None
        return
    for sha, (num, body) in got.items():
        assert sha1(_TYPE_NAMES[num] + b" %d\0" % len(body) + body).hexdigest().encode() \
            == sha
    if flip is None:
        assert got == model
