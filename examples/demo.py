"""A short tour of prollytree: an ordered map with a Merkle root, proofs and diffs."""

from prollytree import ProllyTree, verify_proof

tree = ProllyTree()  # in memory; ProllyTree("file", "./data") keeps it on disk
tree.insert(b"user:alice", b"Alice Johnson")
tree.insert(b"user:bob", b"Bob Smith")
tree.insert_batch([(b"user:carol", b"Carol King"), (b"user:dave", b"Dave Lee")])
tree.update(b"user:alice", b"Alice Williams")
tree.delete(b"user:dave")

print("user:alice ->", tree.find(b"user:alice"))
print("keys in order:", list(tree))
print("root hash:", tree.get_root_hash().hex())

# Anyone holding only the root hash can check a proof.
root = tree.get_root_hash()
proof = tree.generate_proof(b"user:bob")
print("proof verifies:", verify_proof(root, proof, b"user:bob", b"Bob Smith"))
print("forged value verifies:", verify_proof(root, proof, b"user:bob", b"Mallory"))

# Same content -> same root hash, whatever the order it was written in.
other = ProllyTree()
for key, value in reversed(list(tree.items())):
    other.insert(key, value)
print("same root from another order:", other.get_root_hash() == root)

# Diffs skip identical subtrees, so they cost what changed, not what is stored.
other.insert(b"user:erin", b"Erin Moss")
other.update(b"user:bob", b"Robert Smith")
print("diff:", tree.diff(other))
