"""A node store inside a Git object database (via dulwich).

Prolly nodes are stored as Git *blobs*. Git names objects by SHA-1 of ``"blob <len>\\0" +
data`` while the tree layer addresses nodes by SHA-256 of the data, so the store keeps a
map ``sha256 -> git blob id`` in ``.git/prollytree/nodemap`` (an append-only file of fixed
records; a cache that can always be rebuilt from the objects, see :meth:`learn_mirror`).

Writes are buffered in memory and land in Git in one go, as a single pack file written by
:meth:`write_objects` (with fsync of the pack, its index and the pack directory), so a
commit of a few hundred nodes costs one pack rather than hundreds of loose files. The pack
writer is a small, format-exact implementation of Git's pack v2 and index v2 (see
``gitformat-pack(5)``); ``git fsck``, ``git verify-pack`` and ``git gc`` accept its output.

**Mirror trees.** A blob that no commit references is garbage to Git (``git gc`` deletes
it, ``git clone`` does not carry it). :meth:`mirror` therefore lays a tree out as Git trees:
a leaf is a blob; an internal node is a Git tree holding a blob named ``node`` (the node's
own bytes) and one entry per child (a tree for an internal child, a blob for a leaf), named
by a short hash of the child's first key. Unchanged subtrees keep their Git tree ids, so a
new root costs O(changed nodes) new objects, and a child keeps its path as long as its
first key does (a Git index listing the blobs then changes in a few entries per commit).
Whoever puts the mirror's top object into a commit makes every node of that tree
reachable: ``git gc --prune=now``, ``git clone``, ``git push`` and ``git pull`` keep and
carry the data.

Refs of the NodeStore interface (``get_ref``/``set_ref``) are Git refs
``refs/prollytree/store/<name>`` pointing at a blob that holds the value, updated with
dulwich's compare-and-swap.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from typing import Callable, Iterable, Iterator, Mapping

from ..errors import StoreError
from .base import ANY, NodeStore

try:  # pragma: no cover - import probe
    from dulwich.objects import Blob, Tree
    from dulwich.repo import Repo
except ImportError:  # pragma: no cover
    Repo = None  # type: ignore[assignment]

MAP_RECORD = struct.Struct(">c32s20s")
#: record kinds in the node map: the node's bytes as a blob / the node's mirror Git tree
KIND_BLOB = b"B"
KIND_TREE = b"T"

MODE_BLOB = 0o100644
MODE_TREE = 0o040000
NODE_ENTRY = b"node"

_TYPE_NUM = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
_sha1 = hashlib.sha1
_sha256 = hashlib.sha256


def git_object_id(kind: bytes, data: bytes) -> bytes:
    """The 40-hex Git id of an object of ``kind`` (b"blob", b"tree", b"commit") and body."""
    h = _sha1(kind + b" %d\0" % len(data))
    h.update(data)
    return h.hexdigest().encode("ascii")


def child_entry_name(first_key: bytes, used: set) -> bytes:
    """Name of a child's entry in its parent's mirror tree: a short hash of the child's
    first key (stable while the first key is), de-duplicated within the parent."""
    name = hashlib.blake2b(first_key, digest_size=8).hexdigest().encode("ascii")
    if name in used:
        i = 1
        while name + b"-%d" % i in used:
            i += 1
        name = name + b"-%d" % i
    used.add(name)
    return name


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_pack(pack_dir: str, objects: list[tuple[bytes, bytes, bytes]],
               compression: int = 1) -> str | None:
    """Write ``objects`` ((kind, 40-hex id, body) triples) as one pack + index v2 in
    ``pack_dir``, durably. Returns the pack's base path (None when nothing to write)."""
    if not objects:
        return None
    os.makedirs(pack_dir, exist_ok=True)
    chunks = [b"PACK", struct.pack(">II", 2, len(objects))]
    offset = 12
    entries = []  # (raw sha, crc, offset)
    compress = zlib.compress
    crc32 = zlib.crc32
    for kind, hexid, body in objects:
        size = len(body)
        c = (_TYPE_NUM[kind] << 4) | (size & 15)
        size >>= 4
        hdr = bytearray()
        while size:
            hdr.append(c | 0x80)
            c = size & 0x7F
            size >>= 7
        hdr.append(c)
        z = compress(body, compression)
        entries.append((bytes.fromhex(hexid.decode("ascii")), crc32(z, crc32(hdr)), offset))
        chunks.append(bytes(hdr))
        chunks.append(z)
        offset += len(hdr) + len(z)
    h = _sha1()
    for c in chunks:
        h.update(c)
    pack_sha = h.digest()
    chunks.append(pack_sha)
    entries.sort()
    # index v2
    fan = [0] * 256
    for sha, _, _ in entries:
        fan[sha[0]] += 1
    total = 0
    for i in range(256):
        total += fan[i]
        fan[i] = total
    large: list[int] = []
    offs = []
    for _, _, off in entries:
        if off < 0x80000000:
            offs.append(off)
        else:
            offs.append(0x80000000 | len(large))
            large.append(off)
    idx = [b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *fan),
           b"".join(e[0] for e in entries),
           struct.pack(">%dI" % len(entries), *(e[1] for e in entries)),
           struct.pack(">%dI" % len(entries), *offs)]
    if large:
        idx.append(struct.pack(">%dQ" % len(large), *large))
    idx.append(pack_sha)
    idx_body = b"".join(idx)
    idx_body += _sha1(idx_body).digest()
    base = os.path.join(pack_dir, "pack-" + pack_sha.hex())
    if os.path.exists(base + ".idx"):
        return base  # the very same objects are already packed
    for suffix, data in ((".pack", b"".join(chunks)), (".idx", idx_body)):
        tmp = f"{base}{suffix}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, base + suffix)  # .pack first: readers need the .idx to see it
    _fsync_dir(pack_dir)
    return base


class GitNodeStore(NodeStore):
    """Prolly nodes as blobs in the Git repository at (or containing) ``path``.

    ``repo`` may be given instead of a path (an open dulwich ``Repo``, then owned by the
    caller). Nodes put into the store are buffered until :meth:`flush` (or
    :meth:`write_objects`, which also writes extra Git objects such as mirror trees and a
    commit in the same pack).
    """

    kind = "git"
    verify_reads = True

    def __init__(self, path: str | os.PathLike | None = None, read_only: bool = False, *,
                 repo: "Repo | None" = None) -> None:
        if Repo is None:  # pragma: no cover
            raise StoreError("the git storage backend needs dulwich (pip install dulwich)")
        if repo is None:
            if path is None:
                raise ValueError("git storage requires a path")
            path = os.fspath(path)
            if not os.path.exists(os.path.join(path, ".git")) and not os.path.exists(
                    os.path.join(path, "objects")):
                if read_only:
                    raise StoreError(f"no Git repository at {path}")
                os.makedirs(path, exist_ok=True)
                repo = Repo.init(path, default_branch=b"main")
            else:
                repo = Repo(path)
            self._owns_repo = True
        else:
            self._owns_repo = False
        self.repo = repo
        self.read_only = read_only
        self.object_store = repo.object_store
        self.pack_dir = os.path.join(repo.controldir(), "objects", "pack")
        self.state_dir = os.path.join(repo.controldir(), "prollytree")
        self.map_path = os.path.join(self.state_dir, "nodemap")
        self._lock = threading.RLock()
        self._pending: dict[bytes, bytes] = {}
        self._blob: dict[bytes, bytes] = {}   # sha256 -> 40-hex blob id
        self._tree: dict[bytes, bytes] = {}   # sha256 of internal node -> 40-hex mirror tree id
        self._map_offset = 0
        self._map_ino = None
        #: called with no argument on a lookup miss; may teach the store (learn_mirror)
        #: where to find more nodes, returning True when it learnt something
        self.miss_handler: Callable[[], bool] | None = None
        self._load_map()

    # -- node map ---------------------------------------------------------------------

    def _load_map(self) -> bool:
        """Read map records appended since the last read (by any process)."""
        try:
            st = os.stat(self.map_path)
        except FileNotFoundError:
            return False
        if self._map_ino != (st.st_dev, st.st_ino):
            self._map_ino = (st.st_dev, st.st_ino)
            self._map_offset = 0
        if st.st_size <= self._map_offset:
            return False
        with open(self.map_path, "rb") as f:
            f.seek(self._map_offset)
            data = f.read()
        n = len(data) // MAP_RECORD.size
        blob, tree = self._blob, self._tree
        for kind, addr, sha in MAP_RECORD.iter_unpack(data[:n * MAP_RECORD.size]):
            (blob if kind == KIND_BLOB else tree)[addr] = sha.hex().encode("ascii")
        self._map_offset += n * MAP_RECORD.size
        return n > 0

    def _append_map(self, records: list[tuple[bytes, bytes, bytes]]) -> None:
        if not records or self.read_only:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        data = b"".join(MAP_RECORD.pack(k, a, bytes.fromhex(s.decode("ascii")))
                        for k, a, s in records)
        fd = os.open(self.map_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _remember(self, records: list[tuple[bytes, bytes, bytes]]) -> None:
        new = []
        for kind, addr, sha in records:
            table = self._blob if kind == KIND_BLOB else self._tree
            if table.get(addr) != sha:
                table[addr] = sha
                new.append((kind, addr, sha))
        self._append_map(new)

    def blob_id(self, address: bytes) -> bytes | None:
        """40-hex id of the blob holding node ``address`` (None when not in Git)."""
        return self._blob.get(address)

    def tree_id(self, address: bytes) -> bytes | None:
        """40-hex id of the mirror tree of internal node ``address``, if known."""
        return self._tree.get(address)

    # -- NodeStore ------------------------------------------------------------------------

    def _read_blob(self, sha: bytes) -> bytes | None:
        try:
            kind, data = self.object_store.get_raw(sha)
        except KeyError:
            return None
        return data if kind == 3 else None

    def _get(self, address: bytes) -> bytes | None:
        data = self._pending.get(address)
        if data is not None:
            return data
        sha = self._blob.get(address)
        if sha is None:
            with self._lock:
                if not self._load_map() and not (self.miss_handler and self.miss_handler()):
                    return None
            sha = self._blob.get(address)
            if sha is None:
                return None
        return self._read_blob(sha)

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        out = {}
        for a in addresses:
            d = self.get(a)
            if d is not None:
                out[a] = d
        return out

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        with self._lock:
            blob = self._blob
            for addr, data in items:
                if addr not in blob:
                    self._pending[addr] = data

    def _has(self, address: bytes) -> bool:
        if address in self._pending or address in self._blob:
            return True
        return self._get(address) is not None

    def pending_count(self) -> int:
        """Nodes put but not yet written to Git."""
        return len(self._pending)

    def discard_pending(self) -> None:
        """Forget buffered nodes that were never written (scratch results)."""
        with self._lock:
            self._pending.clear()

    def flush(self) -> None:
        """Write every buffered node to Git (one pack). Nodes written this way are not
        referenced by any commit; use :meth:`mirror` + a commit for that."""
        with self._lock:
            if self._pending and not self.read_only:
                self.write_objects([], nodes=list(self._pending))

    def write_objects(self, objects: list[tuple[bytes, bytes, bytes]],
                      nodes: Iterable[bytes] = (),
                      records: list[tuple[bytes, bytes, bytes]] = ()) -> None:
        """Write, durably and in one pack, the buffered ``nodes`` (addresses) and extra Git
        ``objects`` ((kind, 40-hex id, body)); ``records`` are extra map records (mirror
        trees) to remember once the pack is in place. Other buffered nodes are kept."""
        with self._lock:
            objs = list(objects)
            recs = list(records)
            for addr in nodes:
                data = self._pending.get(addr)
                if data is None:
                    continue
                sha = git_object_id(b"blob", data)
                objs.append((b"blob", sha, data))
                recs.append((KIND_BLOB, addr, sha))
            seen: set = set()
            unique = []
            for o in objs:
                if o[1] not in seen:
                    seen.add(o[1])
                    unique.append(o)
            write_pack(self.pack_dir, unique)
            for kind, addr, _ in recs:
                if kind == KIND_BLOB:
                    self._pending.pop(addr, None)
            self._remember(recs)

    # -- mirror -----------------------------------------------------------------------------

    def mirror(self, root: bytes, load: Callable[[bytes], object],
               raw: Callable[[bytes], bytes] | None = None
               ) -> tuple[int, bytes, list, list, list]:
        """Lay the tree under ``root`` out as Git objects.

        ``load(address)`` returns the decoded node (anything with ``level``, ``keys`` and
        ``vals``); ``raw(address)`` its bytes when the store lacks them (e.g. the empty
        tree, which a node cache knows without storing). Returns (mode, 40-hex id of the top object, new Git objects, addresses of
        buffered nodes to write, map records); known subtrees are reused, so the work and
        the output grow with the nodes not yet in Git."""
        objects: list = []
        nodes: list = []
        records: list = []
        blob, tree = self._blob, self._tree
        made_blob: dict[bytes, bytes] = {}
        made_tree: dict[bytes, bytes] = {}

        def node_blob(addr: bytes) -> bytes:
            sha = blob.get(addr) or made_blob.get(addr)
            if sha is None:
                data = self.get(addr)
                if data is None and raw is not None:
                    data = raw(addr)
                if data is None:
                    raise StoreError(f"node {addr.hex()} is missing from the store")
                sha = git_object_id(b"blob", data)
                made_blob[addr] = sha
                if addr in self._pending:
                    nodes.append(addr)
                else:  # known to Git under a blob we had not mapped yet
                    objects.append((b"blob", sha, data))
                    records.append((KIND_BLOB, addr, sha))
            return sha

        def visit(addr: bytes) -> tuple[int, bytes]:
            sha = tree.get(addr) or made_tree.get(addr)
            if sha is not None:
                return MODE_TREE, sha
            node = load(addr)
            if not node.level:
                return MODE_BLOB, node_blob(addr)
            t = Tree()
            t.add(NODE_ENTRY, MODE_BLOB, node_blob(addr))
            used: set = set()
            leaves = node.level == 1  # children are leaves: no need to load them
            for first_key, child in zip(node.keys, node.vals):
                if leaves:
                    mode, csha = MODE_BLOB, node_blob(child)
                else:
                    mode, csha = visit(child)
                t.add(child_entry_name(first_key, used), mode, csha)
            body = t.as_raw_string()
            sha = git_object_id(b"tree", body)
            made_tree[addr] = sha
            objects.append((b"tree", sha, body))
            records.append((KIND_TREE, addr, sha))
            return MODE_TREE, sha

        mode, sha = visit(root)
        return mode, sha, objects, nodes, records

    def learn_mirror(self, mode: int, sha: bytes, decode: Callable[[bytes], object],
                     known_trees: set | None = None) -> int:
        """Learn the nodes of a mirror (as laid out by :meth:`mirror`) already in Git, e.g.
        after ``git clone``. ``decode(data)`` decodes node bytes. Returns records learnt."""
        records: list = []
        seen = known_trees if known_trees is not None else set(self._tree.values())
        stack = [(mode, sha)]
        while stack:
            mode, sha = stack.pop()
            if mode != MODE_TREE:
                data = self._read_blob(sha)
                if data is not None:
                    records.append((KIND_BLOB, _sha256(data).digest(), sha))
                continue
            if sha in seen:
                continue
            seen.add(sha)
            try:
                t = self.object_store[sha]
            except KeyError:
                continue
            entries = {e.path: (e.mode, e.sha) for e in t.iteritems()}
            node_sha = entries.get(NODE_ENTRY, (None, None))[1]
            data = self._read_blob(node_sha) if node_sha else None
            if data is None:
                continue
            addr = _sha256(data).digest()
            records.append((KIND_BLOB, addr, node_sha))
            records.append((KIND_TREE, addr, sha))
            node = decode(data)
            used: set = set()
            for first_key, child in zip(node.keys, node.vals):
                e = entries.get(child_entry_name(first_key, used))
                if e is None:
                    continue
                if e[0] == MODE_TREE:
                    stack.append(e)
                elif child not in self._blob:
                    records.append((KIND_BLOB, child, e[1]))
        with self._lock:
            self._remember(records)
        return len(records)

    # -- refs -------------------------------------------------------------------------------

    def _ref_name(self, name: str) -> bytes:
        if not isinstance(name, str) or not name:
            raise TypeError("ref name must be a non-empty str")
        safe = "".join(c if c.isalnum() or c in "-_." else "_%02x" % ord(c) for c in name)
        return b"refs/prollytree/store/" + safe.encode("ascii")

    def _get_ref(self, name: str) -> bytes | None:
        try:
            sha = self.repo.refs[self._ref_name(name)]
        except KeyError:
            return None
        return self._read_blob(sha)

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        ref = self._ref_name(name)
        with self._lock:
            try:
                old = self.repo.refs[ref]
            except KeyError:
                old = None
            if expected is not ANY:
                cur = None if old is None else self._read_blob(old)
                if cur != expected:
                    return False
            if value is None:
                if old is None:
                    return True
                return bool(self.repo.refs.remove_if_equals(ref, old))
            b = Blob.from_string(bytes(value))
            if not self.object_store.contains_loose(b.id) and b.id not in self.object_store:
                self.object_store.add_object(b)
            if old is None:
                return bool(self.repo.refs.add_if_new(ref, b.id))
            return bool(self.repo.refs.set_if_equals(ref, old, b.id))

    def refs(self) -> Mapping[str, bytes]:
        out = {}
        prefix = b"refs/prollytree/store/"
        for ref, sha in self.repo.refs.as_dict(prefix).items():
            data = self._read_blob(sha)
            if data is not None:
                out[ref.decode("ascii")] = data
        return out

    def addresses(self) -> Iterator[bytes]:
        self._load_map()
        return iter(list(self._pending) + [a for a in self._blob if a not in self._pending])

    def close(self) -> None:
        try:
            if not self.read_only:
                self.flush()
        finally:
            if self._owns_repo:
                self.repo.close()
