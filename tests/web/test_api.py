"""The JSON API and the HTML pages against the dataset built in conftest, checked
against its model (dicts of what each commit holds) and against the store itself."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from prollytree import ConflictResolution, VersionedKvStore, verify_proof

from .conftest import BIG_VALUE, BIN_KEY, BIN_VALUE, JSON_VALUE, XSS_KEY, XSS_VALUE

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def kb(obj: dict, name: str = "key") -> bytes | None:
    """Bytes of a put_bytes field (``name`` or ``name_b64``)."""
    if name + "_b64" in obj:
        return base64.b64decode(obj[name + "_b64"])
    v = obj[name]
    return None if v is None else v.encode()


def model_diff(a: dict, b: dict) -> list[tuple[bytes, bytes | None, bytes | None]]:
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def get_all_pages(client, url: str, field: str = "changes") -> list[dict]:
    """Follow ``next`` links (query parameters) until the last page."""
    out = []
    page = client.get(url).json()
    out += page[field]
    base = url.split("?")[0]
    while page.get("next"):
        page = client.get(base, params=page["next"]).json()
        out += page[field]
    return out


# -- history -------------------------------------------------------------------------------


def test_refs_and_log(client, dataset):
    ids = dataset["ids"]
    refs = client.get("/api/refs").json()
    assert {b["name"]: b["id"] for b in refs["branches"]} == {
        "main": ids["merge"], "feature": ids["f1"], "side": ids["s1"]}
    assert refs["tags"] == [{"name": "v1", "id": ids["c1"]}]
    assert refs["current_branch"] == "main" and refs["head"] == ids["merge"]
    log = client.get("/api/log", params={"ref": "feature"}).json()
    assert [c["id"] for c in log] == [c["id"] for c in dataset["store"].log("feature")]
    assert log[0]["message"] == "feature: alice, carol, no bob"
    assert set(log[0]) >= {"id", "parents", "author", "committer", "timestamp", "date",
                           "message"}
    assert len(client.get("/api/log", params={"limit": 2}).json()) == 2


def test_graph_covers_every_commit_children_first(client, dataset):
    store = dataset["store"]
    g = client.get("/api/graph").json()
    rows = g["commits"]
    every = {c["id"] for ref in ["main", "feature", "side"] for c in store.log(ref)}
    assert [r["commit"]["id"] for r in rows if r["commit"]["id"] in every] and \
        {r["commit"]["id"] for r in rows} == every
    pos = {r["commit"]["id"]: i for i, r in enumerate(rows)}
    for r in rows:
        for p in r["commit"]["parents"]:
            assert pos[p] > pos[r["commit"]["id"]]
    merge = rows[pos[dataset["ids"]["merge"]]]
    assert len(merge["commit"]["parents"]) == 2
    assert "HEAD -> main" in merge["labels"]
    assert "tag: v1" in rows[pos[dataset["ids"]["c1"]]]["labels"]
    assert_lanes_connect(rows)
    # paging: the newest N
    two = client.get("/api/graph", params={"limit": 2}).json()
    assert [r["commit"]["id"] for r in two["commits"]] == [r["commit"]["id"] for r in rows[:2]]
    assert two["more"] is True


def assert_lanes_connect(rows: list[dict]) -> None:
    """Every parent link on the page is a path of edges from the child's dot down to the
    parent's dot, through columns no other dot sits on; every edge is on such a path."""
    pos = {r["commit"]["id"]: i for i, r in enumerate(rows)}
    used = set()
    for i, r in enumerate(rows):
        for p in r["commit"]["parents"]:
            if p not in pos:
                continue
            target = pos[p]
            # follow the edges from (i, col) one row at a time
            frontier = {(i, r["col"])}
            found = False
            for row in range(i, target):
                nxt = set()
                for (_, c) in frontier:
                    for e in rows[row]["edges"]:
                        if e[0] == c:
                            if row + 1 == target and e[1] == rows[target]["col"]:
                                found = True
                                used.add((row, tuple(e)))
                            elif row + 1 < target and e[1] != rows[row + 1]["col"]:
                                nxt.add((row + 1, e[1]))
                                used.add((row, tuple(e)))
                frontier = nxt
            assert found, (r["commit"]["id"], p)
    for i, r in enumerate(rows[:-1]):
        for e in r["edges"]:
            assert (i, tuple(e)) in used, (i, e)


def test_layout_property():
    """Random DAGs (children listed before parents): every parent is reachable."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    from prollytree.web.graph import layout

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(st.lists(st.lists(st.integers(1, 6), max_size=3), min_size=1,
                               max_size=25))
    def check(spec):
        n = len(spec)
        commits = []
        for i, offs in enumerate(spec):
            parents = list(dict.fromkeys(f"{i + o:040d}" for o in offs if i + o < n))
            commits.append({"id": f"{i:040d}", "parents": parents, "author": "a",
                            "committer": "a", "timestamp": 0, "tz_offset": 0,
                            "message": "m"})
        assert_lanes_connect(layout(commits))

    check()


# -- a commit ------------------------------------------------------------------------------


@pytest.mark.parametrize("label,parent", [("c2", "c1"), ("f1", "c1"), ("c1", None)])
def test_commit_counts_and_changes(client, dataset, label, parent):
    ids, model = dataset["ids"], dataset["model"]
    before = model[parent] if parent else {}
    want = model_diff(before, model[label])
    doc = client.get(f"/api/commit/{ids[label]}").json()
    assert doc["id"] == ids[label]
    counts = doc["counts"]
    assert counts["added"] == sum(1 for _, o, _n in want if o is None)
    assert counts["deleted"] == sum(1 for _, _o, n in want if n is None)
    assert counts["modified"] == sum(1 for _, o, n in want if o is not None and n is not None)
    got = get_all_pages(client, f"/api/commit/{ids[label]}?limit=2")
    assert [kb(c) for c in got] == [k for k, _, _ in want]
    for c, (_, old, new) in zip(got, want):
        assert kb(c, "old") == (old[:65536] if old else old)
        assert kb(c, "new") == (new[:65536] if new else new)
        assert c["change"] == ("added" if old is None else "deleted" if new is None
                               else "modified")
    # the deferred-count endpoint agrees
    full = client.get(f"/api/commit/{ids[label]}/counts").json()
    assert {k: full[k] for k in ("added", "modified", "deleted")} == \
        {k: counts[k] for k in ("added", "modified", "deleted")}


def test_commit_named_tree_counts(client, dataset):
    ids = dataset["ids"]
    doc = client.get(f"/api/commit/{ids['f1']}").json()
    assert set(doc["trees"]) == {"", "ns/people", "ns/places"}
    assert doc["trees"]["ns/places"]["added"] == 1
    page = client.get(f"/api/commit/{ids['f1']}", params={"tree": "ns/people"}).json()
    assert [(c["key"], c["new"]) for c in page["changes"]] == [("p:1", "one on feature")]
    html = client.get(f"/commit/{ids['f1']}").text
    assert "ns/places" in html and "Keys changed per tree" in html


def test_commit_page_shows_the_first_changed_tree_when_the_default_is_untouched(
        tmp_path):
    """A commit that changed only named trees (agent memory, SQL tables) lists their
    keys without a tree parameter; ``tree=`` (empty) still asks for the default tree."""
    from starlette.testclient import TestClient

    from prollytree import StorageBackend
    from prollytree.web import create_app
    s = VersionedKvStore(str(tmp_path / "ds"), StorageBackend.File)
    s.insert(b"k", b"v")
    s.commit("default tree")
    s.tree("zeta").insert(b"z", b"1")
    s.tree("alpha").insert(b"a", b"2")
    cid = s.commit("named trees only")
    with TestClient(create_app(s)) as c:
        doc = c.get(f"/api/commit/{cid}").json()
        assert set(doc["trees"]) == {"alpha", "zeta"} and doc["tree"] == "alpha"
        assert [(x["key"], x["new"]) for x in doc["changes"]] == [("a", "2")]
        doc = c.get(f"/api/commit/{cid}", params={"tree": ""}).json()
        assert doc["tree"] == "" and doc["changes"] == []
        doc = c.get(f"/api/commit/{cid}", params={"tree": "zeta"}).json()
        assert [(x["key"], x["new"]) for x in doc["changes"]] == [("z", "1")]
        assert "of tree <span class=\"tree\">alpha</span>" in c.get(f"/commit/{cid}").text
    s.close()


# -- browsing ------------------------------------------------------------------------------


def test_keys_paging_forward_and_back(client, dataset):
    model = dataset["model"]["merge"]
    keys = sorted(model)
    got = get_all_pages(client, "/api/keys?limit=7", "items")
    assert [kb(i) for i in got] == keys
    assert [i["size"] for i in got] == [len(model[k]) for k in keys]
    # backwards from the end, with ?before=
    last = client.get("/api/keys", params={"before_hex": "ff" * 8, "limit": 5}).json()
    assert [kb(i) for i in last["items"]] == keys[-5:]
    prev = client.get("/api/keys", params=last["prev"]).json()
    assert [kb(i) for i in prev["items"]] == keys[-10:-5]
    # a binary key is base64 in JSON
    assert any(i.get("key_b64") == base64.b64encode(BIN_KEY).decode() for i in got)


def test_keys_prefix_and_ref(client, dataset):
    model = dataset["model"]
    got = get_all_pages(client, "/api/keys?prefix=user:&limit=4", "items")
    assert [kb(i) for i in got] == sorted(k for k in model["merge"] if k.startswith(b"user:"))
    at_v1 = get_all_pages(client, "/api/keys?ref=v1&limit=50", "items")
    assert [kb(i) for i in at_v1] == sorted(model["c1"])
    none = client.get("/api/keys", params={"prefix": "zzz"}).json()
    assert none["items"] == [] and none["next"] is None and none["prev"] is None
    people = client.get("/api/keys", params={"ref": "feature", "tree": "ns/people"}).json()
    assert [(i["key"], i["preview"]) for i in people["items"]] == [("p:1", "one on feature")]
    assert people["trees"] == ["", "ns/people", "ns/places"]


def test_value_viewer_kinds(client):
    j = client.get("/api/value", params={"key": "config"}).json()
    assert j["kind"] == "json" and json.loads(j["view"]) == json.loads(JSON_VALUE)
    assert "\n  " in j["view"]          # pretty-printed
    t = client.get("/api/value", params={"key": "user:alice"}).json()
    assert (t["kind"], t["view"], t["size"]) == ("text", "Alice on main", 13)
    b = client.get("/api/value", params={"key_hex": BIN_KEY.hex()}).json()
    assert b["kind"] == "binary" and b["key_b64"] == base64.b64encode(BIN_KEY).decode()
    assert b["view"].splitlines()[0].startswith("00000000  00 01 02 03")
    big = client.get("/api/value", params={"key": "big"}).json()
    assert big["truncated"] is True and big["size"] == len(BIG_VALUE)
    assert len(big["view"]) == 65536 and BIG_VALUE.startswith(big["view"].encode())
    # the raw download streams every byte
    r = client.get("/api/raw", params={"key": "big"})
    assert r.status_code == 200 and r.content == BIG_VALUE
    assert r.headers["content-length"] == str(len(BIG_VALUE))
    assert r.headers["content-type"] == "application/octet-stream"
    r = client.get("/raw", params={"key_hex": BIN_KEY.hex(), "ref": "v1"})
    assert r.content == BIN_VALUE
    page = client.get("/value", params={"key": "big"}).text
    assert "Large value" in page and "320000 bytes" in page


def test_key_history(client, dataset):
    ids, model = dataset["ids"], dataset["model"]
    h = client.get("/api/key-history", params={"key": "user:alice"}).json()
    # reachable from HEAD (main): c1 added it, c2 modified it
    assert [c["id"] for c in h["commits"]] == [ids["c2"], ids["c1"]]
    assert [(c["change"], c["old"], c["new"]) for c in h["commits"]] == [
        ("modified", "Alice v1", "Alice on main"), ("added", None, "Alice v1")]
    assert h["total"] == 2
    assert model["c2"][b"user:alice"] == b"Alice on main"
    side = client.get("/api/key-history", params={"key": "side:1"}).json()
    assert [c["id"] for c in side["commits"]] == [ids["s1"]]
    people = client.get("/api/key-history", params={"key": "p:1", "tree": "ns/people"}).json()
    assert [c["id"] for c in people["commits"]] == [ids["c2"]]


def test_key_history_at_any_ref_matches_model(client, dataset):
    """From any ref, the commits whose value of the key differs from every parent's
    (a root commit: the key exists), newest first - computed from the model's values
    per commit; at HEAD also equal to the store's get_commits_for_key."""
    ids, model, store = dataset["ids"], dataset["model"], dataset["store"]
    at = {ids[label]: model[label] for label in model}
    keys = sorted({k for m in model.values() for k in m}) + [b"never:there"]
    for ref in ["main", "feature", "side", "v1", "HEAD~1", ids["c2"]]:
        log = store.log(ref)

        def value(cid, key):
            return at.get(cid, {}).get(key)

        for key in keys:
            want = [c for c in log
                    if (all(value(p, key) != value(c["id"], key) for p in c["parents"])
                        if c["parents"] else value(c["id"], key) is not None)]
            h = client.get("/api/key-history",
                           params=dict(D_key(key), ref=ref)).json()
            assert [c["id"] for c in h["commits"]] == [c["id"] for c in want], (ref, key)
            assert h["total"] == len(want) and h["commit"] == store.resolve_ref(ref)
            for row, c in zip(h["commits"], want):
                old = value(c["parents"][0], key) if c["parents"] else None
                assert (kb(row, "old"), kb(row, "new")) == (
                    old and old[:65536], value(c["id"], key) and value(c["id"], key)[:65536])
            if ref == "main":
                assert [c["id"] for c in h["commits"]] == [
                    c["id"] for c in store.get_commits_for_key(key)]
    # the feature-only key has a history from feature, none from main
    assert client.get("/api/key-history", params={"key": "user:carol", "ref": "feature"}
                      ).json()["total"] == 1
    assert client.get("/api/key-history", params={"key": "user:carol"}).json()["total"] == 0
    r = client.get("/api/key-history", params={"key": "user:carol", "ref": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["error"]
    # the page carries the ref in its form, and its links from browse/diff carry it too
    page = client.get("/key-history", params={"key": "user:carol", "ref": "feature"}).text
    assert 'name="ref" value="feature"' in page and "reachable from feature" in page
    browse = client.get("/browse", params={"ref": "feature", "prefix": "user:c"}).text
    assert "/key-history?ref=feature&amp;key=user%3Acarol" in browse


def D_key(key: bytes) -> dict:
    try:
        return {"key": key.decode()}
    except UnicodeDecodeError:
        return {"key_hex": key.hex()}


# -- diff and merge ------------------------------------------------------------------------


@pytest.mark.parametrize("a,b", [("main", "feature"), ("v1", "main"), ("feature", "v1")])
def test_diff_matches_model_and_store(client, dataset, a, b):
    label = {"main": "merge", "feature": "f1", "v1": "c1"}
    want = model_diff(dataset["model"][label[a]], dataset["model"][label[b]])
    got = get_all_pages(client, f"/api/diff?from={a}&to={b}&limit=2")
    assert [(kb(c), kb(c, "old"), kb(c, "new")) for c in got] == \
        [(k, o and o[:65536], n and n[:65536]) for k, o, n in want]
    assert [d.key for d in dataset["store"].diff(a, b)] == [k for k, _, _ in want]
    pref = client.get("/api/diff", params={"from": a, "to": b, "prefix": "user:"}).json()
    assert [kb(c) for c in pref["changes"]] == [k for k, _, _ in want if k.startswith(b"user:")]


@pytest.mark.parametrize("forward", [True, False])
def test_diff_against_an_empty_tree_pages_like_the_model(client, dataset, forward):
    """A side that is empty (the initial commit) is read as a range scan from the page
    start: every page, with or without a prefix, is the model's."""
    store, model = dataset["store"], dataset["model"]
    empty = store.log("v1")[-1]["id"]
    assert store.log("v1")[-1]["parents"] == []
    a, b = (empty, "v1") if forward else ("v1", empty)
    ma, mb = ({}, model["c1"]) if forward else (model["c1"], {})
    want = model_diff(ma, mb)
    for limit in (1, 3, 50):
        got = get_all_pages(client, f"/api/diff?from={a}&to={b}&limit={limit}")
        assert [(kb(c), kb(c, "old"), kb(c, "new")) for c in got] == \
            [(k, o and o[:65536], n and n[:65536]) for k, o, n in want]
        got = get_all_pages(client, f"/api/diff?from={a}&to={b}&limit={limit}&prefix=user:0")
        assert [kb(c) for c in got] == [k for k, _, _ in want if k.startswith(b"user:0")]


def test_diff_named_trees(client):
    d = client.get("/api/diff", params={"from": "main", "to": "feature"}).json()
    assert d["changed_trees"] == ["", "ns/people", "ns/places"]
    p = client.get("/api/diff", params={"from": "main", "to": "feature",
                                        "tree": "ns/people"}).json()
    assert [(c["key"], c["old"], c["new"]) for c in p["changes"]] == [
        ("p:1", "one on main", "one on feature"), ("p:2", "two", None)]


def test_merge_preview_agrees_with_real_merge(client, dataset, tmp_path):
    prev = client.get("/api/merge-preview", params={"source": "feature",
                                                    "dest": "main"}).json()
    assert prev["kind"] == "merge" and prev["base_id"] == dataset["ids"]["c1"]
    conflicts = {(c["tree"], c["key"]) for c in prev["conflicts"]}
    assert conflicts == {("", "user:alice"), ("ns/people", "p:1")}
    # the real merge on a copy of the dataset
    copy = tmp_path / "copy"
    shutil.copytree(dataset["path"], copy)
    s = VersionedKvStore.open(str(copy))
    try:
        before = {n: dict(s.iter_items_at("HEAD", tree=n)) for n in s.list_trees_at("HEAD")}
        ok, real = s.try_merge("feature")
        assert not ok and {(c.tree, c.key.decode()) for c in real} == conflicts
        s.merge("feature", ConflictResolution.TakeDestination)
        after = {n: dict(s.iter_items_at("HEAD", tree=n)) for n in s.list_trees_at("HEAD")}
    finally:
        s.close()
    brought = set()
    for n in set(before) | set(after):
        for k, _o, _nw in model_diff(before.get(n, {}), after.get(n, {})):
            brought.add((n, k.decode()))
    assert {(c["tree"], c["key"]) for c in prev["changes"]} == brought
    assert prev["counts"]["conflicts"] == 2
    up = client.get("/api/merge-preview", params={"source": "v1", "dest": "main"}).json()
    assert up["kind"] == "up-to-date" and up["changes"] == []
    ff = client.get("/api/merge-preview", params={"source": "main", "dest": "v1"}).json()
    assert ff["kind"] == "fast-forward" and ff["conflicts"] == []


# -- proofs --------------------------------------------------------------------------------


def test_proof_and_verify(client, dataset):
    p = client.get("/api/proof", params={"key": "user:alice", "ref": "v1"}).json()
    root = bytes.fromhex(p["root"])
    proof = bytes.fromhex(p["proof_hex"])
    assert base64.b64decode(p["proof"]) == proof
    assert verify_proof(root, proof, b"user:alice", b"Alice v1")
    assert root == dataset["store"].tree_at("v1").get_root_hash()
    ok = client.post("/api/verify-proof", json={"root": p["root"], "proof": p["proof_hex"],
                                                "key": "user:alice", "value": "Alice v1"})
    assert ok.json()["valid"] is True and ok.json()["present"] is True
    # the CLI's JSON document works as a pasted proof too
    doc = client.post("/api/verify-proof", json={"root": p["root"], "proof": json.dumps(p),
                                                 "key": "user:alice"}).json()
    assert doc["valid"] is True and doc["value"] == "Alice v1"
    wrong_value = client.post("/api/verify-proof", json={
        "root": p["root"], "proof": p["proof_hex"], "key": "user:alice",
        "value": "Alice on main"}).json()
    assert wrong_value["valid"] is False and "another value" in wrong_value["reason"]
    other_root = dataset["store"].tree_at("main").get_root_hash().hex()
    bad = client.post("/api/verify-proof", json={"root": other_root, "proof": p["proof_hex"],
                                                 "key": "user:alice"}).json()
    assert bad["valid"] is False and bad["reason"]
    absent = client.get("/api/proof", params={"key": "nobody"}).json()
    assert absent["present"] is False
    r = client.post("/api/verify-proof", json={"root": "xyz", "proof": "00", "key": "a"})
    assert r.status_code == 400 and "64 hex" in r.json()["error"]
    # the HTML form
    html = client.post("/proof/verify", data={"root": p["root"], "proof": p["proof_hex"],
                                              "key": "user:alice", "value": ""}).text
    assert "Valid: the proof shows user:alice = Alice v1" in html
    raw = client.get("/proof/raw", params={"key": "user:alice", "ref": "v1"})
    assert raw.content == proof


# -- live state ----------------------------------------------------------------------------


def test_state_and_events_follow_other_writers(tmp_path):
    """A Git-backed dataset (the File backend admits one writer process at a time):
    another store object commits while the app serves; the state token follows."""
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    path = str(tmp_path / "live")
    with VersionedKvStore(path) as first:
        first.insert(b"a", b"1")
        first.commit("first")
    served = VersionedKvStore.open(path)
    other = VersionedKvStore.open(path)
    try:
        with TestClient(create_app(served, poll_seconds=0.05)) as c:
            s1 = c.get("/api/state").json()
            other.insert(b"new", b"value")
            s2 = c.get("/api/state").json()
            assert s2["staged"] == 1 and s2["token"] != s1["token"]
            other.commit("from elsewhere")
            s3 = c.get("/api/state").json()
            assert s3["head"] == other.current_commit() and s3["token"] != s2["token"]
            with c.stream("GET", "/api/events", params={"seconds": 0}) as r:
                text = "".join(r.iter_text())
            assert r.headers["content-type"].startswith("text/event-stream")
            event = json.loads(text.split("data: ", 1)[1].split("\n")[0])
            assert text.startswith("event: state\n") and event["token"] == s3["token"]
            html = c.get("/").text
            assert f'content="{s3["token"]}"' in html and "from elsewhere" in html
    finally:
        other.close()
        served.close()


# -- safety --------------------------------------------------------------------------------


def test_keys_and_values_are_escaped(client):
    for url, params in [("/browse", {}), ("/value", {"key": XSS_KEY.decode()}),
                        ("/key-history", {"key": XSS_KEY.decode()}),
                        ("/commit/v1", {}), ("/diff", {"from": "HEAD~3", "to": "HEAD"}),
                        ("/proof", {"key": XSS_KEY.decode()})]:
        html = client.get(url, params=params).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
    html = client.get("/browse").text
    assert "&lt;script&gt;alert(&#39;k&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(&#39;v&#39;)&gt;" in html
    v = client.get("/api/value", params={"key": XSS_KEY.decode()}).json()
    assert v["view"] == XSS_VALUE.decode()
    r = client.get("/")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("url,status,words", [
    ("/api/commit/nope", 404, "unknown ref"),
    ("/api/keys?ref=HEAD~99", 404, "HEAD~99"),
    ("/api/keys?limit=0", 400, "limit"),
    ("/api/keys?limit=abc", 400, "limit"),
    ("/api/keys?limit=100000", 400, "limit"),
    ("/api/value", 400, "missing parameter"),
    ("/api/value?key_b64=%%%", 400, "base64"),
    ("/api/value?key_hex=zz", 400, "hex"),
    ("/api/value?key=absent", 404, "not in"),
    ("/api/diff?from=main", 400, "from"),
    ("/api/diff?from=main&to=nope", 404, "nope"),
    ("/api/merge-preview", 400, "source"),
    ("/api/keys?tree=%01x", 400, "tree"),
    ("/api/proof", 400, "missing"),
    ("/api/events?seconds=x", 400, "seconds"),
    ("/api/nothing", 404, ""),
])
def test_bad_requests_give_clear_json_errors(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status
    body = r.json()
    assert body["status"] == status and words.lower() in body["error"].lower()
    assert "Traceback" not in r.text


@pytest.mark.parametrize("url,status", [
    ("/commit/nope", 404), ("/browse?limit=-1", 400), ("/value?key=absent", 404),
    ("/diff?from=x&to=y", 404), ("/no/such/page", 404), ("/static/nothing.css", 404),
])
def test_bad_requests_give_html_error_pages(client, url, status):
    r = client.get(url)
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    assert "Traceback" not in r.text


def test_static_files_stay_in_their_directory(client):
    assert client.get("/static/app.css").status_code == 200
    for url in ["/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                "/static/%2e%2e/%2e%2e/conftest.py", "/static//etc/passwd"]:
        r = client.get(url)
        assert r.status_code == 404, url
        assert "import" not in r.text and "root:" not in r.text


def test_host_header_is_checked(dataset):
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    app = create_app(dataset["store"], allowed_hosts={"127.0.0.1", "localhost"})
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/refs").status_code == 200
        for url in ["/api/refs", "/", "/commit/HEAD"]:
            r = c.get(url, headers={"host": "evil.example:8000"})
            assert r.status_code == 421 and "Host" in r.text
            # nothing about the dataset in the refusal
            assert dataset["ids"]["merge"] not in r.text and "main" not in r.text
        assert c.get("/", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/", headers={"host": "[::1]:8000"}).status_code == 421


# -- write actions -------------------------------------------------------------------------


@pytest.fixture
def writable(dataset, tmp_path):
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    from prollytree.web.app import WebApp
    copy = tmp_path / "w"
    shutil.copytree(dataset["path"], copy)
    store = VersionedKvStore.open(str(copy))
    web = WebApp(store, write=True)
    with TestClient(web.build()) as c:
        yield c, web.csrf, store
    store.close()
    assert create_app  # imported for symmetry with the read-only fixture


def test_read_only_refuses_writes(client):
    r = client.post("/api/actions/set", json={"key": "a", "value": "b"})
    assert r.status_code == 403 and "read-only" in r.json()["error"]
    assert client.get("/api/status").json()["staged"] == []


def test_write_actions_need_the_token_and_same_origin(writable):
    c, token, store = writable
    r = c.post("/api/actions/set", json={"key": "a", "value": "b"})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = c.post("/api/actions/set", json={"key": "a", "value": "b", "csrf": "wrong"})
    assert r.status_code == 403
    r = c.post("/api/actions/set", json={"key": "a", "value": "b"},
               headers={"X-CSRF-Token": token, "Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    assert store.staged() == []
    # a form post from the page itself (same Origin, token in the form) works
    r = c.post("/actions/set", data={"key": "a", "value": "b", "csrf": token},
               headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/status")
    assert store.staged() == [(b"a", b"b")]
    # the form's next page is a path of this app, never another site
    for back, want in [("/browse?ref=main", "/browse?ref=main&done="),
                       ("//evil.example/x", "/status?done="),
                       ("/\\evil.example/x", "/status?done="),
                       ("https://evil.example/", "/status?done="),
                       ("/ok\r\nSet-Cookie: x=1", "/status?done=")]:
        r = c.post("/actions/set", data={"key": "a", "value": "b", "csrf": token,
                                         "next": back}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(want), back


def test_write_actions_commit_branch_checkout_merge(writable):
    c, token, store = writable
    h = {"X-CSRF-Token": token}
    assert c.post("/api/actions/set", json={"key": "w:1", "value": "one"}, headers=h).json() \
        == {"staged": 1}
    store.tree("ns/people").insert(b"p:9", b"nine")     # a staged write to a named tree
    assert ("ns/people", "p:9", "added", "nine") in {
        (s["tree"], s["key"], s["change"], s["value"])
        for s in c.get("/api/status").json()["staged"]}
    store.tree("ns/people").delete(b"p:9")
    assert c.post("/api/actions/delete", json={"key": "user:dave"}, headers=h).json()[
        "deleted"] is True
    st = c.get("/api/status").json()
    assert {(s["tree"], s["key"], s["change"], s["value"]) for s in st["staged"]} == {
        ("", "w:1", "added", "one"), ("", "user:dave", "deleted", None)}
    done = c.post("/api/actions/commit", json={"message": "from the web"}, headers=h).json()
    assert store.log(limit=1)[0]["id"] == done["id"]
    assert store.get_at("HEAD", b"w:1") == b"one" and store.get_at("HEAD", b"user:dave") is None
    r = c.post("/api/actions/set", json={"key": 5, "value": "x"}, headers=h)
    assert r.status_code == 400 and "key must be a string" in r.json()["error"]
    r = c.post("/api/actions/commit", json={"message": "again"}, headers=h)
    assert r.status_code == 400 and "nothing to commit" in r.json()["error"]
    assert c.post("/api/actions/branch", json={"name": "web", "start": "v1"},
                  headers=h).json()["id"] == store.resolve_ref("v1")
    r = c.post("/api/actions/merge", json={"source": "feature"}, headers=h)
    assert r.status_code == 409 and "conflict" in r.json()["error"]
    merged = c.post("/api/actions/merge", json={"source": "feature", "resolution": "source"},
                    headers=h).json()
    assert store.get_at("HEAD", b"user:alice") == b"Alice on feature"
    assert len(store.commit_info(merged["id"])["parents"]) == 2
    assert c.post("/api/actions/checkout", json={"ref": "web"}, headers=h).json()[
        "branch"] == "web"
    assert c.get("/api/state").json()["branch"] == "web"
    r = c.post("/api/actions/checkout", json={"ref": "nope"}, headers=h)
    assert r.status_code == 404
    r = c.post("/api/actions/frobnicate", json={}, headers=h)
    assert r.status_code == 404


# -- every page renders --------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/", "/?limit=2", "/commit/HEAD", "/commit/v1?tree=ns/people", "/browse",
    "/browse?ref=feature&tree=ns/people", "/browse?prefix=user:&limit=3",
    "/value?key=config", "/value?key=big", "/key-history?key=user:bob", "/diff",
    "/diff?from=main&to=feature&tree=ns/people", "/merge", "/merge?source=feature&dest=main",
    "/proof", "/proof?key=user:alice", "/status",
])
def test_pages_render(client, url):
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>" in r.text and 'name="prolly-state"' in r.text


def test_a_fresh_dataset_renders_every_page(tmp_path):
    from starlette.testclient import TestClient

    from prollytree import StorageBackend
    from prollytree.web import create_app
    with VersionedKvStore(str(tmp_path / "empty"), StorageBackend.File) as s, \
            TestClient(create_app(s)) as c:
        for url in ["/", "/commit/HEAD", "/browse", "/diff?from=HEAD&to=HEAD",
                    "/merge?source=HEAD", "/proof?key=a", "/status", "/key-history?key=a"]:
            assert c.get(url).status_code == 200, url
        assert c.get("/api/keys").json()["items"] == []
        assert c.get("/api/commit/HEAD").json()["changes"] == []
        assert c.get("/api/proof", params={"key": "a"}).json()["present"] is False
        assert len(c.get("/api/graph").json()["commits"]) == 1


def test_large_commit_counts_are_deferred(client, dataset, monkeypatch):
    from prollytree.web import data
    monkeypatch.setattr(data, "COUNT_CAP", 1)
    cid = dataset["ids"]["f1"]
    want = model_diff(dataset["model"]["c1"], dataset["model"]["f1"])
    exact = {"added": sum(o is None for _, o, _n in want),
             "deleted": sum(n is None for _, _o, n in want),
             "modified": sum(o is not None and n is not None for _, o, n in want),
             "complete": True}
    assert exact == {"added": 1, "modified": 1, "deleted": 1, "complete": True}
    # a fresh app: nothing cached yet
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    with TestClient(create_app(dataset["store"])) as c:
        doc = c.get(f"/api/commit/{cid}").json()
        assert doc["counts"]["complete"] is False
        assert sum(doc["counts"][k] for k in ("added", "modified", "deleted")) == 1
        html = c.get(f"/commit/{cid}").text
        assert f'data-counts-url="/api/commit/{cid}/counts' in html
        assert "1+ " in html
        full = c.get(f"/api/commit/{cid}/counts").json()
        assert full == exact
        # once counted, the page has them
        assert c.get(f"/api/commit/{cid}").json()["counts"] == exact


def test_counts_of_a_commit_filling_an_empty_tree_are_exact_at_once(dataset, monkeypatch):
    """A commit that added every key of a tree (its parent's tree is empty) is counted
    from the tree's size, above the inline cap too."""
    from prollytree.web import data
    monkeypatch.setattr(data, "COUNT_CAP", 5)
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    cid, n = dataset["ids"]["c1"], len(dataset["model"]["c1"])
    assert n > 5
    with TestClient(create_app(dataset["store"])) as c:
        doc = c.get(f"/api/commit/{cid}").json()
        assert doc["counts"] == {"added": n, "modified": 0, "deleted": 0, "complete": True}
        assert "data-counts-url" not in c.get(f"/commit/{cid}").text
        # and the other way round: every key removed
        empty = dataset["store"].log("v1")[-1]["id"]
        d = data.Dataset(dataset["store"])
        assert d.counts(cid) == doc["counts"]
        got = list(d.changes(cid, empty))
        assert [(k, o) for k, o, _ in got] == sorted(dataset["model"]["c1"].items())


def test_merge_preview_property_against_try_merge():
    """Random histories (InMemory store): the preview's conflicts are try_merge's, and
    its changes are what merging (keeping the destination's values) changes."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    from prollytree import StorageBackend
    from prollytree.web.data import Dataset

    keys = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f"])
    vals = st.one_of(st.none(), st.sampled_from([b"1", b"2", b"3"]))
    edits = st.lists(st.tuples(st.sampled_from(["", "t"]), keys, vals), max_size=8)

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(edits, edits, edits)
    def check(base_edits, main_edits, side_edits):
        s = VersionedKvStore("unused", StorageBackend.InMemory)
        try:
            def apply(ops):
                for tree, k, v in ops:
                    h = s.tree(tree) if tree else None
                    if v is None:
                        (h.delete(k) if h else s.delete(k))
                    else:
                        (h.insert(k, v) if h else s.insert(k, v))
                s.commit("x")

            apply(base_edits)
            s.branch("side")
            apply(main_edits)
            s.checkout("side")
            apply(side_edits)
            s.checkout("main")
            prev = Dataset(s).merge_preview("side", "main", 1000)
            before = {n: dict(s.iter_items_at("HEAD", tree=n)) for n in s.list_trees_at()}
            ok, real = s.try_merge("side")
            want = {(c.tree, c.key) for c in real} if not ok else set()
            assert {(c["tree"], kb(c)) for c in prev["conflicts"]} == want
            if not ok:
                s.merge("side", ConflictResolution.TakeDestination)
            after = {n: dict(s.iter_items_at("HEAD", tree=n)) for n in s.list_trees_at()}
            brought = {(n, k) for n in set(before) | set(after)
                       for k, _o, _n in model_diff(before.get(n, {}), after.get(n, {}))}
            assert {(c["tree"], kb(c)) for c in prev["changes"]} == brought
        finally:
            s.close()

    check()


def test_odd_parameters_never_give_a_server_error(dataset):
    from starlette.testclient import TestClient

    from prollytree.web import create_app
    paths = ["/", "/commit/", "/commit/%00", "/commit/HEAD~1000", "/browse", "/value",
             "/key-history", "/diff", "/merge", "/proof", "/memory", "/api/keys",
             "/api/value", "/api/raw", "/api/diff", "/api/merge-preview", "/api/proof",
             "/api/commit/HEAD", "/api/commit/HEAD/counts", "/api/graph", "/api/log"]
    params = ["?ref=", "?ref=%00", "?key=", "?key=%00&ref=HEAD~99", "?key_b64=", "?prefix=%ff",
              "?after_hex=ff&before_hex=00", "?from=&to=", "?from=main&to=", "?source=&dest=",
              "?limit=1e3", "?tree=a%00b", "?tree=" + "x" * 300, "?key=a&tree=nope",
              "?ref=main..feature", "?ref=HEAD~-1", "?kind=x"]
    with TestClient(create_app(dataset["store"]), raise_server_exceptions=False) as c:
        for p in paths:
            for q in params:
                r = c.get(p + q)
                assert r.status_code < 500 and "Traceback" not in r.text, (p + q, r.text[:300])


@pytest.mark.parametrize("budget", [10**9, -10**9, 3])
def test_diff_pages_property_against_the_model(budget, monkeypatch):
    """Random pairs of trees (InMemory store), random page sizes and prefixes: following
    ``next`` from page to page gives the model's differences, in order, each once -
    whether later pages walk both trees side by side (a large budget), always use the
    structural diff (no budget), or switch between the two (a tiny budget)."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    from prollytree import StorageBackend
    from prollytree.web import data

    monkeypatch.setattr(data, "SCAN_BUDGET", budget)
    keyspace = [b"k%03d" % i for i in range(60)] + [b"j1", b"j2"]
    tree_st = st.dictionaries(st.sampled_from(keyspace), st.sampled_from([b"1", b"2", b"3"]),
                              min_size=1, max_size=60)

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(tree_st, tree_st, st.integers(1, 7), st.sampled_from([b"", b"k0", b"j"]))
    def check(a, b, limit, prefix):
        s = VersionedKvStore("unused", StorageBackend.InMemory)
        try:
            s.insert_batch(sorted(a.items()))
            ca = s.commit("a")
            s.insert_batch([(k, None) for k in sorted(set(a) - set(b))] + sorted(b.items()))
            cb = s.commit("b")
            assert dict(s.iter_items_at(cb)) == b
            want = [x for x in model_diff(a, b) if x[0].startswith(prefix)]
            ds = data.Dataset(s)
            got, after = [], None
            for _ in range(len(want) + 2):
                page = ds.page_of_changes(ca, cb, "", after, limit, prefix)
                assert len(page["rows"]) <= limit
                got += page["rows"]
                if page["next"] is None:
                    break
                after = page["next"]["after"].encode()
            assert got == want
        finally:
            s.close()

    check()
