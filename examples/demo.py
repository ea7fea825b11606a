"""A short tour of prollytree: a key-value store with Git history, proofs and diffs."""

import subprocess
import tempfile

from prollytree import ProllyTree, VersionedKvStore, verify_proof

print("== 1. A versioned store: commits, branches, merges, time travel (real Git) ==")
workdir = tempfile.mkdtemp(prefix="prollytree-demo-")
store = VersionedKvStore(f"{workdir}/agent-memory")   # a Git repository is created there
store.insert(b"fact:capital:fr", b"Paris")
store.insert(b"fact:capital:jp", b"Kyoto")
first = store.commit("Remember two capitals")

store.create_branch("fix-japan")              # try a change on a branch
store.update(b"fact:capital:jp", b"Tokyo")
store.commit("Correct the capital of Japan")
store.checkout("main")
print("on main, jp ->", store.get(b"fact:capital:jp"))
print("diff main..fix-japan:", store.diff("main", "fix-japan"))
store.merge("fix-japan")                      # three-way merge (a fast-forward here)
print("after merge, jp ->", store.get(b"fact:capital:jp"))
print("at the first commit:", store.get_keys_at_ref(first))
print("history of the key:", [c["message"] for c in store.get_commits_for_key(b"fact:capital:jp")])
print(subprocess.run(["git", "-C", f"{workdir}/agent-memory", "log", "--oneline"],
                     capture_output=True, text=True).stdout.strip())

print("\n== 2. The tree underneath: one root hash for the whole map ==")
tree = ProllyTree()                           # in memory; ProllyTree("file", path) on disk
tree.insert_batch([(b"user:alice", b"Alice"), (b"user:bob", b"Bob"), (b"user:carol", b"Carol")])
root = tree.get_root_hash()
print("root hash:", root.hex())
other = ProllyTree()                          # same pairs, another order: same root
for key, value in reversed(list(tree.items())):
    other.insert(key, value)
print("same root from another order:", other.get_root_hash() == root)

proof = tree.generate_proof(b"user:bob")      # checkable by anyone holding only the root
print("proof verifies:", verify_proof(root, proof, b"user:bob", b"Bob"))
print("forged value verifies:", verify_proof(root, proof, b"user:bob", b"Mallory"))

other.update(b"user:bob", b"Robert")          # diffs cost what changed, not what is stored
other.insert(b"user:dave", b"Dave")
print("diff:", tree.diff(other))
