"""Proofs: portable (root hash only), sound, key- and value-binding, tamper-evident."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
import hypothesis.strategies as st

from prollytree import ProllyTree, ProofError, proven_value, verify_absence, verify_proof

from .helpers import SMALL


@pytest.fixture(scope="module")
def tree():
    t = ProllyTree()
    t.insert_batch((b"key%05d" % i, b"value%d" % i) for i in range(20_000))
    return t


def test_inclusion_verifies_with_only_the_root_hash(tree):
    root = tree.get_root_hash()
    proof = tree.generate_proof(b"key01234")
    # a third party: only the root hash and the proof bytes
    assert verify_proof(root, proof, b"key01234", b"value1234")
    assert verify_proof(root, proof, b"key01234")  # presence without a value
    assert proven_value(root, proof, b"key01234") == b"value1234"
    assert tree.verify_proof(proof, b"key01234", b"value1234")


def test_proof_binds_value_and_key(tree):
    root = tree.get_root_hash()
    proof = tree.generate_proof(b"key01234")
    # the neighbour's value lives in the same leaf; it must not verify for this key
    assert not verify_proof(root, proof, b"key01234", b"value1235")
    # the proof speaks only for the key it was made for
    assert not verify_proof(root, proof, b"key01235", b"value1235")
    assert not verify_proof(root, proof, b"key01234", b"value1234x")


def test_proof_fails_against_another_root(tree):
    proof = tree.generate_proof(b"key00001")
    other = ProllyTree()
    other.insert(b"key00001", b"value1")
    assert not verify_proof(other.get_root_hash(), proof, b"key00001", b"value1")
    assert not verify_proof(b"\x00" * 32, proof, b"key00001", b"value1")


def test_absence_is_provable(tree):
    root = tree.get_root_hash()
    for missing in [b"", b"a", b"key01234x", b"key99999", b"zzz"]:
        proof = tree.generate_proof(missing)
        assert verify_absence(root, proof, missing)
        assert proven_value(root, proof, missing) is None
        assert not verify_proof(root, proof, missing)
    present = tree.generate_proof(b"key00042")
    assert not verify_absence(root, present, b"key00042")


def test_old_proof_fails_after_change_new_one_verifies():
    t = ProllyTree()
    t.insert(b"balance:alice", b"1000")
    t.insert(b"balance:bob", b"500")
    proof = t.generate_proof(b"balance:alice")
    root = t.get_root_hash()
    assert verify_proof(root, proof, b"balance:alice", b"1000")
    t.update(b"balance:alice", b"1100")
    new_root = t.get_root_hash()
    assert new_root != root
    assert not t.verify_proof(proof, b"balance:alice", b"1000")
    assert t.verify_proof(t.generate_proof(b"balance:alice"), b"balance:alice", b"1100")


def test_every_single_byte_tamper_is_rejected():
    t = ProllyTree(config=SMALL)
    t.insert_batch((b"k%03d" % i, b"v%03d" % i) for i in range(300))
    root = t.get_root_hash()
    proof = t.generate_proof(b"k123")
    assert verify_proof(root, proof, b"k123", b"v123")
    for i in range(len(proof)):
        for flip in (0x01, 0x80):
            bad = bytearray(proof)
            bad[i] ^= flip
            assert not verify_proof(root, bytes(bad), b"k123", b"v123"), i
            assert not verify_absence(root, bytes(bad), b"k123"), i
    for cut in range(len(proof)):
        assert not verify_proof(root, proof[:cut], b"k123", b"v123")


@given(garbage=st.binary(max_size=200))
def test_garbage_never_crashes(garbage):
    root = b"\x11" * 32
    assert verify_proof(root, garbage, b"k") is False
    assert verify_absence(root, garbage, b"k") is False
    with pytest.raises(ProofError):
        proven_value(root, garbage, b"k")


def test_truncated_chain_does_not_prove_absence(tree):
    root = tree.get_root_hash()
    version, key, chain = msgpack.unpackb(tree.generate_proof(b"key00500"))
    short = msgpack.packb([version, key, chain[:-1]])
    assert not verify_absence(root, short, b"key00500")
    assert not verify_proof(root, short, b"key00500")


def test_proof_of_empty_tree():
    t = ProllyTree()
    proof = t.generate_proof(b"x")
    assert verify_absence(t.get_root_hash(), proof, b"x")


def test_wrong_types_raise_type_error(tree):
    proof = tree.generate_proof(b"key00001")
    with pytest.raises(TypeError):
        verify_proof("root", proof, b"key00001")
    with pytest.raises(TypeError):
        verify_proof(tree.get_root_hash(), proof, "key00001")
    with pytest.raises(TypeError):
        tree.generate_proof("key")
