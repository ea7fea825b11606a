"""The node-store contract, shipped as a reusable test class (as dulwich ships its object
store tests): any NodeStore, in this package or out of it, proves it honours the contract
by subclassing :class:`NodeStoreContract` in a pytest module::

    from prollytree.storage.testing import NodeStoreContract

    class TestMyStore(NodeStoreContract):
        def open_store(self, path, read_only=False):
            return MyStore(str(path / "store"), read_only=read_only)

Each test checks the store against a plain dict model: nodes (put, get, has, get_many,
addresses, remove), refs with compare-and-swap, persistence across a reopen and the
argument checks (TypeError / ValueError, and a failed call changes nothing). Stores that
keep nothing across a reopen (memory) return the same object from :meth:`reopen`.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from . import ANY, NodeStore


def node(data: bytes) -> tuple[bytes, bytes]:
    """An (address, bytes) pair the way the tree layer makes them."""
    return hashlib.sha256(data).digest(), data


def nodes(n: int, size: int = 100, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """``n`` distinct nodes of ``size`` pseudo-random (incompressible) bytes."""
    return [node(hashlib.shake_256(b"%d:%d" % (seed, i)).digest(size)) for i in range(n)]


ABSENT = node(b"never stored")[0]


class NodeStoreContract:
    """Subclass and implement :meth:`open_store` (and :meth:`reopen` for a store whose
    data lives in the object, not at the path)."""

    #: whether the store keeps its nodes and refs across a reopen
    persistent = True
    #: whether ``remove`` deletes nodes (the Git store leaves that to ``git gc``: it
    #: raises NotImplementedError)
    supports_remove = True

    def open_store(self, path: Any, read_only: bool = False) -> NodeStore:
        raise NotImplementedError("a NodeStoreContract subclass implements open_store")

    def reopen(self, store: NodeStore, path: Any) -> NodeStore:
        """Close ``store`` and open the same store again."""
        if not self.persistent:
            return store
        store.close()
        return self.open_store(path)

    def test_put_get_has(self, tmp_path):
        store = self.open_store(tmp_path)
        items = nodes(20)
        for a, d in items[:10]:
            store.put(a, d)
        for a, d in items[:10]:
            assert store.get(a) == d
            assert store.has(a)
        for a, _ in items[10:]:
            assert store.get(a) is None
            assert not store.has(a)

    def test_put_many_get_many(self, tmp_path):
        store = self.open_store(tmp_path)
        items = nodes(300, size=50)
        store.put_many(items[:200])
        store.put_many(iter(items[100:250]))          # overlaps; a generator is accepted
        store.put_many([])
        model = dict(items[:250])
        wanted = [a for a, _ in items] + [ABSENT]
        assert store.get_many(wanted) == model
        assert store.get_many([]) == {}
        assert set(store.addresses()) == set(model)

    def test_put_many_with_duplicates_in_one_batch(self, tmp_path):
        store = self.open_store(tmp_path)
        a, d = node(b"twice")
        store.put_many([(a, d), (a, d), node(b"other")])
        assert store.get(a) == d
        assert sorted(store.addresses()) == sorted([a, node(b"other")[0]])

    def test_empty_and_large_nodes(self, tmp_path):
        store = self.open_store(tmp_path)
        empty = node(b"")
        big = node(os.urandom(3 << 20))
        store.put_many([empty, big])
        assert store.get(empty[0]) == b""
        assert store.get(big[0]) == big[1]
        store = self.reopen(store, tmp_path)
        assert store.get(empty[0]) == b""
        assert store.get(big[0]) == big[1]

    def test_addresses_and_remove(self, tmp_path):
        store = self.open_store(tmp_path)
        items = nodes(100)
        store.put_many(items)
        doomed = [a for a, _ in items[:30]]
        if not self.supports_remove:
            with pytest.raises(NotImplementedError):
                store.remove(doomed)
            store.flush()
            assert sorted(store.addresses()) == sorted(a for a, _ in items)
            return
        # duplicates and absent addresses are not counted
        assert store.remove(doomed + doomed[:5] + [ABSENT]) == 30
        assert store.remove(doomed) == 0
        assert store.remove([]) == 0
        for a, d in items[:30]:
            assert store.get(a) is None and not store.has(a)
        for a, d in items[30:]:
            assert store.get(a) == d
        assert sorted(store.addresses()) == sorted(a for a, _ in items[30:])
        # a removed node can be stored again
        store.put(*items[0])
        assert store.get(items[0][0]) == items[0][1]
        store = self.reopen(store, tmp_path)
        assert sorted(store.addresses()) == sorted([items[0][0]] + [a for a, _ in items[30:]])

    def test_refs_compare_and_swap(self, tmp_path):
        store = self.open_store(tmp_path)
        r1, r2, r3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
        assert store.get_ref("root") is None
        # expected=None means "must not exist": create-only
        assert store.set_ref("root", r1, expected=None) is True
        assert store.set_ref("root", r2, expected=None) is False
        assert store.get_ref("root") == r1
        # expected=value: swap only from that value
        assert store.set_ref("root", r3, expected=r2) is False
        assert store.get_ref("root") == r1
        assert store.set_ref("root", r2, expected=r1) is True
        assert store.get_ref("root") == r2
        # ANY (the default) skips the check
        assert store.set_ref("root", r3) is True
        assert store.set_ref("root", r1, expected=ANY) is True
        assert store.get_ref("root") == r1
        # delete, with and without a check
        assert store.set_ref("root", None, expected=r2) is False
        assert store.get_ref("root") == r1
        assert store.set_ref("root", None, expected=r1) is True
        assert store.get_ref("root") is None
        assert store.set_ref("root", r1, expected=None) is True   # may be created again
        assert store.set_ref("root", None) is True
        assert store.get_ref("root") is None
        assert store.set_ref("gone", None) is True                 # deleting nothing is fine
        assert store.set_ref("gone", None, expected=r1) is False
        assert store.refs() == {}

    def test_refs_listing_and_values(self, tmp_path):
        store = self.open_store(tmp_path)
        model = {"root": b"\xaa" * 32, "config": b'{"modulus": 64}', "empty": b"",
                 "branches/main": b"\x00" * 32, "ünïcødé": b"x"}
        for name, value in model.items():
            assert store.set_ref(name, value, expected=None)
        assert store.get_ref("empty") == b""                       # empty is not absent
        assert store.set_ref("empty", b"y", expected=None) is False
        assert dict(store.refs()) == model
        store = self.reopen(store, tmp_path)
        assert dict(store.refs()) == model
        for name, value in model.items():
            assert store.get_ref(name) == value

    def test_refs_do_not_collide_with_nodes(self, tmp_path):
        """A ref whose name is 32 bytes long is not a node, and a node is not a ref."""
        store = self.open_store(tmp_path)
        a, d = node(b"payload")
        name = "n" * 32
        store.put(a, d)
        store.set_ref(name, b"ref value")
        assert store.get(a) == d
        assert store.get(name.encode()) is None                   # 32 bytes, yet not a node
        assert list(store.addresses()) == [a]
        assert dict(store.refs()) == {name: b"ref value"}

    def test_bad_input_is_rejected_and_changes_nothing(self, tmp_path):
        store = self.open_store(tmp_path)
        good = nodes(3)
        store.put_many(good[:1])
        with pytest.raises(TypeError):
            store.get("0" * 32)
        with pytest.raises(TypeError):
            store.has(12)
        with pytest.raises(ValueError):
            store.get(b"short")
        with pytest.raises(ValueError):
            store.has(b"x" * 33)
        with pytest.raises(TypeError):
            store.get_many([good[0][0], None])
        with pytest.raises(TypeError):
            store.put(good[1][0], "text")
        with pytest.raises(ValueError):
            store.put(b"x" * 31, b"data")
        # a bad pair anywhere in a batch fails the whole batch before anything is written
        with pytest.raises(TypeError):
            store.put_many([good[1], "not a pair", good[2]])
        with pytest.raises(ValueError):
            store.put_many([good[1], (b"bad", b"data"), good[2]])
        assert sorted(store.addresses()) == [good[0][0]]
        if self.supports_remove:
            with pytest.raises(TypeError):
                store.remove([b"x" * 32, 5])
        with pytest.raises(TypeError):
            store.get_ref(b"root")
        with pytest.raises(ValueError):
            store.get_ref("")
        with pytest.raises(TypeError):
            store.set_ref("root", "text")
        with pytest.raises(TypeError):
            store.set_ref("root", b"x", expected="text")
        with pytest.raises(ValueError):
            store.set_ref("r" * 300, b"x")
        with pytest.raises(ValueError):
            store.set_ref("root", b"x" * ((1 << 20) + 1))
        assert store.refs() == {}
        # bytearray / memoryview data is accepted and stored as bytes
        a, d = good[1]
        store.put(a, bytearray(d))
        store.set_ref("root", memoryview(b"mv"))
        assert store.get(a) == d and store.get_ref("root") == b"mv"
