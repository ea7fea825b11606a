"""Large values: chunked into the node store, an envelope in the leaf (issue 14).

Models: a dict of the values, the same tree built with the chunking turned off (the
bytes must agree), and a from-scratch tree (history independence)."""

import hashlib
import io
import random

import msgpack
import pytest

from prollytree import ProllyTree, verify_proof
from prollytree.tree import cdc
from prollytree.tree.codec import Envelope, decode, encode_leaf
from prollytree.tree.values import (DEFAULT_THRESHOLD, INLINE, chunk_refs, matches,
                                    value_info)

T = DEFAULT_THRESHOLD


def data(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def chunk_count(tree: ProllyTree) -> int:
    return sum(1 for _ in tree.store.addresses())


def test_threshold_boundary_and_model():
    t = ProllyTree()
    model = {}
    for i, n in enumerate([0, 1, T - 1, T, T + 1, 2 * T, cdc.MAX, cdc.MAX + 1, 3 * cdc.MAX + 7]):
        k = b"k%03d" % i
        model[k] = data(n, i)
        t.insert(k, model[k])
    t.insert_batch([(b"b%03d" % i, data(T + i, 100 + i)) for i in range(3)])
    model.update({b"b%03d" % i: data(T + i, 100 + i) for i in range(3)})
    assert dict(t.items()) == model
    for k, v in model.items():
        assert t.find(k) == v
        raw = t.find_raw(k)
        assert (type(raw) is Envelope) == (len(v) > T)
        with t.open_value(k) as f:
            assert f.read() == v
    assert t.verify()["ok"]


def test_user_value_that_looks_like_an_envelope_stays_a_value():
    t = ProllyTree()
    big = data(3 * T)
    t.insert(b"big", big)
    env = bytes(t.find_raw(b"big"))
    t.insert(b"fake", env)      # the envelope's bytes as a user value
    assert t.find(b"fake") == env and t.find(b"big") == big
    assert type(t.find_raw(b"fake")) is bytes
    # the leaf marks only the real one
    leaf = decode(t.store.get(t.get_root_hash()))
    assert leaf.env is not None and type(leaf.vals[0]) is Envelope  # b"big" < b"fake"
    assert type(leaf.vals[1]) is bytes


def test_leaf_format_golden_and_unchanged_for_plain_leaves():
    plain = encode_leaf([b"a", b"b"], [b"1", b"2"])
    assert plain[:1] == b"\x95"     # no 6th element without envelopes: old bytes exactly
    env = Envelope(b"\x96" + b"x" * 5)
    mixed = encode_leaf([b"a", b"b", b"c"], [b"1", env, b"3"])
    obj = msgpack.unpackb(mixed)
    assert len(obj) == 6 and obj[5] == b"\x02"  # bit 1: entry 1 is an envelope
    assert hashlib.sha256(mixed).hexdigest() == (
        "f478fbe97ac5d66fc34b9e80f3922f239816d8c5445e50dcefe9044c77cd1245")
    back = decode(mixed)
    assert back.vals == [b"1", env, b"3"] and type(back.vals[1]) is Envelope
    # malformed bitmaps are rejected: padding bits, all-zero, wrong length
    for bad in (b"\x0a", b"\x00", b"\x02\x00"):
        with pytest.raises(ValueError):
            decode(msgpack.packb(obj[:5] + [bad], use_bin_type=True))


def test_golden_root_with_a_chunked_value():
    t = ProllyTree()
    t.insert(b"doc", data(300_000, 7))
    t.insert(b"small", b"x")
    root = t.get_root_hash().hex()
    info = value_info(t.find_raw(b"doc"))
    assert info.length == 300_000 and info.level == 0
    assert [len(x) for x in info.addresses] == [32] * len(info.addresses)
    assert sum(info.sizes) == 300_000
    # the root of a fixed tree holding a chunked value: changing the chunker, the
    # envelope or the leaf extension changes it (a deliberate act: docs/format.md)
    assert root == "4f0744b932ccda08591ca9b6f608dfd740366612445c6a5c0424a1ad0e7e7dc4"


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_small_edit_stores_few_new_chunks(where):
    t = ProllyTree()
    v = data(5_000_000, 1)
    t.insert(b"v", v)
    t.get_root_hash()
    before = set(t.store.addresses())
    pos = {"start": 10, "middle": len(v) // 2, "end": len(v) - 10}[where]
    v2 = v[:pos] + b"EDIT" + v[pos + 1:]
    t.insert(b"v", v2)
    t.get_root_hash()
    new = set(t.store.addresses()) - before
    new_bytes = sum(len(t.store.get(a)) for a in new)
    assert t.find(b"v") == v2
    assert new_bytes < 2 * cdc.MAX + 64 * 1024, new_bytes  # a chunk or two + leaf + envelope
    # history independent: a fresh tree of the same value has the same root
    fresh = ProllyTree()
    fresh.insert_stream(b"v", io.BytesIO(v2))
    assert fresh.get_root_hash() == t.get_root_hash()


def test_equal_chunks_stored_once_across_keys():
    t = ProllyTree()
    v = data(2_000_000, 3)
    t.insert(b"a", v)
    t.get_root_hash()
    n = chunk_count(t)
    t.insert(b"b", v)
    t.get_root_hash()
    assert chunk_count(t) <= n + 2   # only the new leaf (and root): chunks shared


def test_stream_equals_insert_and_chunked_lists_stay_small():
    v = data(12 * 1024 * 1024, 4)    # ~150 chunks: the chunk list gets an index level
    a, b = ProllyTree(), ProllyTree()
    a.insert(b"k", v)
    b.insert_stream(b"k", io.BytesIO(v))
    assert a.get_root_hash() == b.get_root_hash()
    env = a.find_raw(b"k")
    info = value_info(env)
    assert info.level >= 1 and len(info.addresses) <= INLINE and len(env) < 4096
    assert len(chunk_refs(a.store.get, env)) > len(info.addresses)
    f = a.open_value(b"k")
    rnd = random.Random(5)
    for _ in range(50):
        off = rnd.randrange(len(v))
        n = rnd.randrange(1, 600_000)
        f.seek(off)
        assert f.read(n) == v[off:off + n]
    f.seek(-3, io.SEEK_END)
    assert f.read() == v[-3:] and f.tell() == len(v)
    buf = bytearray(10)
    f.seek(len(v) - 4)
    assert f.readinto(buf) == 4 and bytes(buf[:4]) == v[-4:]
    assert f.seekable() and f.readable() and not f.writable()
    with pytest.raises(ValueError):
        f.seek(-1)


def test_stream_of_a_small_value_is_inline_and_short_reads_work():
    class Trickle(io.RawIOBase):
        def __init__(self, b):
            self.b, self.p = b, 0

        def readable(self):
            return True

        def read(self, n=-1):
            n = min(n if n >= 0 else 7777, 7777)
            out = self.b[self.p:self.p + n]
            self.p += len(out)
            return out

    for n in (0, 5, T, T + 1, 900_000):
        v = data(n, n)
        t, ref = ProllyTree(), ProllyTree()
        assert t.insert_stream(b"k", Trickle(v)) == n
        ref.insert(b"k", v)
        assert t.get_root_hash() == ref.get_root_hash()
        assert t.find(b"k") == v
    with pytest.raises(TypeError):
        ProllyTree().insert_stream(b"k", b"not a file")
    with pytest.raises(KeyError):
        ProllyTree().open_value(b"absent")


def test_diff_compares_envelopes_and_proofs_bind_large_values():
    t = ProllyTree()
    v = data(1_000_000, 9)
    t.insert(b"a", v)
    t.insert(b"b", b"small")
    other = ProllyTree(storage_type="memory")
    other.insert(b"a", v[:-1] + b"!")
    other.insert(b"b", b"small")
    d = t.diff(other)
    assert d["modified"] == {b"a": {"old": v, "new": v[:-1] + b"!"}}
    assert not d["added"] and not d["removed"]
    root = t.get_root_hash()
    proof = t.generate_proof(b"a")
    assert verify_proof(root, proof, b"a", v)
    assert verify_proof(root, proof, b"a")
    assert not verify_proof(root, proof, b"a", v[:-1] + b"!")
    assert not verify_proof(root, proof, b"a", v + b"x")
    assert matches(t.find_raw(b"a"), v)


def test_persistent_reopen_gc_and_verify(tmp_path):
    v1, v2 = data(900_000, 11), data(700_000, 12)
    with ProllyTree("file", str(tmp_path / "f")) as t:
        t.insert(b"one", v1)
        t.insert(b"two", v2)
    with ProllyTree("file", str(tmp_path / "f")) as t:
        assert t.find(b"one") == v1 and t.find(b"two") == v2
        assert t.verify()["ok"]
        t.delete(b"two")
        t.flush()
        live = t.reachable()
        assert set(chunk_refs(t.store.get, t.find_raw(b"one"))) <= live
        r = t.gc()
        assert r["removed"] >= 3   # v2's chunks and the old leaf
        assert t.find(b"one") == v1 and t.verify()["ok"]
        # damage a chunk: verify names it
        addr = chunk_refs(t.store.get, t.find_raw(b"one"))[0]
        assert addr in set(t.store.addresses())
    with ProllyTree("file", str(tmp_path / "f")) as t:
        assert t.find(b"one") == v1


def test_verify_reports_a_missing_chunk():
    t = ProllyTree()
    t.insert(b"k", data(500_000, 2))
    t.get_root_hash()
    addr = chunk_refs(t.store.get, t.find_raw(b"k"))[1]
    t.store.remove([addr])
    rep = t.verify()
    assert not rep["ok"] and addr.hex() in rep["missing"]


def test_every_backend_roundtrip(tmp_path):
    v = data(800_000, 13)
    for kind in ("file", "lmdb", "rocksdb"):
        try:
            t = ProllyTree(kind, str(tmp_path / kind))
        except Exception as e:  # an optional backend not installed
            pytest.skip(f"{kind}: {e}")
        with t:
            t.insert(b"k", v)
            t.insert_stream(b"s", io.BytesIO(v[::-1]))
            root = t.get_root_hash()
        with ProllyTree(kind, str(tmp_path / kind)) as t:
            assert t.get_root_hash() == root
            assert t.find(b"k") == v and t.open_value(b"s").read() == v[::-1]
            assert t.verify()["ok"]
