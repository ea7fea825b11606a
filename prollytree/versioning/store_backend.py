"""History kept in a NodeStore: the File, RocksDB and InMemory backends.

Layout for a dataset directory ``<path>`` (persistent kinds)::

    <path>/nodes/            the NodeStore (open_store("file" | "rocksdb", ...))
    <path>/staging.journal   staged changes (see .staging)
    <path>/lock              the dataset lock (see .lock)

Commits are records in the same NodeStore as the tree nodes, stored under the SHA-256 of
their encoding (msgpack ``[b"prollytree-commit", 2, root set address, [parent addresses],
author, committer, message, timestamp, tz_offset]``); the root set (see :mod:`.roots`) is
a record of its own in the store, under the SHA-256 of its canonical encoding. Version-1
records (written before root sets) hold the default tree's root address in place of the
root set's and read as a root set of that one tree; every new commit is version 2. A
commit's id is the first 20 bytes of its address in hex (40 characters, like Git's). Refs are NodeStore refs:
``refs/heads/<name>`` and ``refs/tags/<name>`` hold a commit's 32-byte address,
``HEAD`` holds ``b"ref: refs/heads/<name>"`` or ``b"detached:" + address``. Commit
records and refs are flushed (made power-loss durable) before a commit call returns.

The S3 backend (``path`` is ``s3://bucket/prefix``) keeps the node store, commits, root
sets and refs in S3 (:class:`~prollytree.storage.s3.S3NodeStore`) and the per-machine
state in a local directory (:func:`s3_state_dir`): the staging journal, the dataset lock,
this machine's ``HEAD`` (which branch this working copy is on) and the read cache. Its
``HEAD`` ref in S3 only names the dataset's default branch, for new working copies.
Branch refs move by compare-and-swap (conditional writes), so many machines may commit
at once (see ``docs/sync.md``).
"""

from __future__ import annotations

import hashlib
import os
import sys

import msgpack

from .._fs import atomic_write
from ..errors import CorruptRefError
from ..storage import NodeStore, open_store
from ..tree.config import TreeConfig
from ..tree.node_cache import NodeCache
from .backend import HEADS, TAGS, HistoryBackend
from .lock import DatasetLock
from .objects import Commit
from .roots import ROOTSET_MAGIC, RootSet

MAGIC = b"prollytree-commit"
HEAD_REF = "HEAD"
CONFIG_REF = "versioning/config"
JOURNAL = "staging.journal"
NODES = "nodes"
#: environment variable naming the directory for S3 datasets' per-machine state
S3_STATE_ENV = "PROLLYTREE_S3_STATE_DIR"


def s3_state_dir(url: str) -> str:
    """The local directory for an S3 dataset's per-machine state (staging journal, lock,
    this working copy's HEAD, read cache): ``$PROLLYTREE_S3_STATE_DIR/<sha256 of url>``,
    else ``~/.cache/prollytree/s3/<sha256 of url>`` (``%LOCALAPPDATA%`` on Windows)."""
    base = os.environ.get(S3_STATE_ENV)
    if not base:
        root = os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None
        root = root or os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache")
        base = os.path.join(root, "prollytree", "s3")
    return os.path.join(base, hashlib.sha256(url.encode("utf-8")).hexdigest())


def s3_probe(url: str) -> bool:
    """Whether ``s3://bucket/prefix`` holds a versioned dataset (its node store with a
    ``versioning/config`` or ``HEAD`` ref). Reads only; False when unreachable."""
    from ..errors import StoreError
    from ..storage.s3 import S3NodeStore
    try:
        st = S3NodeStore(url, read_only=True)
    except (StoreError, ValueError):
        return False
    try:
        return st.get_ref(CONFIG_REF) is not None or st.get_ref(HEAD_REF) is not None
    finally:
        st.close()


def probe(path: str) -> str | None:
    """"file", "rocksdb" or "lmdb" when ``path`` holds a dataset of that kind (its node
    store ``nodes/`` and its staging journal; RocksDB keeps a ``CURRENT`` file, LMDB a
    ``data.mdb``), else None."""
    nodes = os.path.join(path, NODES)
    if os.path.isdir(nodes) and os.path.isfile(os.path.join(path, JOURNAL)):
        if os.path.exists(os.path.join(nodes, "CURRENT")):
            return "rocksdb"
        if os.path.exists(os.path.join(nodes, "data.mdb")):
            return "lmdb"
        return "file"
    return None


class StoreBackend(HistoryBackend):
    """History in a NodeStore of kind ``kind`` ("memory", "file", "rocksdb", "lmdb",
    "s3")."""

    def __init__(self, path: str | None, kind: str, name: str) -> None:
        self.name = name
        self.kind = kind
        self._local_head: str | None = None
        if kind == "s3":
            from ..storage.s3 import CACHE_ENV, S3NodeStore, parse_s3_url
            parse_s3_url(path)  # type and format checks before anything is created
            self.state_dir = s3_state_dir(path)
            os.makedirs(self.state_dir, exist_ok=True)
            self.lock = DatasetLock(os.path.join(self.state_dir, "lock"))
            self._local_head = os.path.join(self.state_dir, "HEAD")
            self.shared_refs = True
            cache = os.environ.get(CACHE_ENV) or os.path.join(self.state_dir, "cache")
            self.store = S3NodeStore(path, cache_dir=cache)
        elif kind == "memory":
            self.store: NodeStore = open_store("memory")
            self.state_dir = None
            self.lock = DatasetLock(None)
        else:
            if path is None:
                raise ValueError(f"the {name} backend needs a path")
            os.makedirs(path, exist_ok=True)
            self.state_dir = path
            self.lock = DatasetLock(os.path.join(path, "lock"))
            self.store = open_store(kind, os.path.join(path, NODES))
        self.cache = NodeCache(self.store)
        self._addr: dict[str, bytes] = {}
        self._init_common()
        cfg = self.store.get_ref(CONFIG_REF)
        if cfg is None and not self.store.read_only:
            # create, never overwrite: another machine may be creating it right now
            if not self.store.set_ref(CONFIG_REF, TreeConfig().to_bytes(), expected=None):
                cfg = self.store.get_ref(CONFIG_REF)
        self.config = TreeConfig() if cfg is None else TreeConfig.from_bytes(cfg)
        if self.store.get_ref(HEAD_REF) is None:
            self.store.set_ref(HEAD_REF, b"ref: refs/heads/main", expected=None)
            self.store.flush()

    # -- commits ------------------------------------------------------------------------------

    def _learn(self, addr: bytes) -> str:
        cid = addr[:20].hex()
        self._addr[cid] = addr
        return cid

    def _scan(self) -> None:
        """Learn the address of every commit reachable from a ref."""
        stack = [v for k, v in self._raw_refs().items()
                 if k.startswith((HEADS, TAGS)) and len(v) == 32]
        head = self._head_bytes()
        if head.startswith(b"detached:"):
            stack.append(head[9:])
        seen: set = set()
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            self._learn(a)
            rec = self._decode(a)
            if rec is not None:
                stack.extend(rec[3])

    def _decode(self, addr: bytes):
        data = self.store.get(addr)
        if data is None:
            return None
        rec = msgpack.unpackb(data, raw=False)
        if not isinstance(rec, list) or not rec or rec[0] != MAGIC:
            return None
        return rec

    def _read_commit(self, cid: str) -> Commit | None:
        addr = self._addr.get(cid)
        if addr is None:
            self._scan()
            addr = self._addr.get(cid)
            if addr is None:
                return None
        rec = self._decode(addr)
        if rec is None:
            return None
        _, version, root, parents, author, committer, message, ts, tz = rec[:9]
        if version == 1:
            trees = RootSet.single(root, self.config)
        else:
            data = self.store.get(root)
            if data is None:
                return None
            trees = RootSet.decode(data)
        return Commit(id=cid, trees=trees, parents=tuple(self._learn(p) for p in parents),
                      author=author, committer=committer, message=message, timestamp=ts,
                      tz_offset=tz)

    def write_commit(self, trees: RootSet, parents: list[str], message: str, author: str,
                     committer: str, timestamp: int, tz_offset: int) -> str:
        paddrs = [self._addr[p] for p in parents]
        rs_addr = trees.address()
        rec = msgpack.packb([MAGIC, 2, rs_addr, paddrs, author, committer, message,
                             int(timestamp), int(tz_offset)], use_bin_type=True)
        addr = hashlib.sha256(rec).digest()
        self.store.put_many([(rs_addr, trees.encode()), (addr, rec)])
        self.store.flush()
        return self._learn(addr)

    # -- refs ---------------------------------------------------------------------------------

    def _raw_refs(self) -> dict:
        return dict(self.store.refs())

    def get_ref(self, name: str) -> str | None:
        v = self.store.get_ref(name)
        if v is None:
            return None
        if len(v) != 32:
            raise CorruptRefError(f"ref {name} of the {self.name} store is damaged "
                                  f"({len(v)} bytes, not a 32-byte commit address)")
        return self._learn(v)

    def cas_ref(self, name: str, new: str | None, old: str | None) -> bool:
        nv = None if new is None else self._addr[new]
        ov = None if old is None else self._addr[old]
        ok = self.store.set_ref(name, nv, expected=ov)
        if ok:
            self.store.flush()
        return ok

    def list_refs(self, prefix: str) -> dict[str, str]:
        out = {}
        for k, v in self._raw_refs().items():
            if k.startswith(prefix):
                if len(v) != 32:
                    raise CorruptRefError(f"ref {k} of the {self.name} store is damaged "
                                          f"({len(v)} bytes, not a 32-byte commit address)")
                out[k[len(prefix):]] = self._learn(v)
        return out

    def _head_bytes(self) -> bytes:
        if self._local_head is not None:
            try:
                with open(self._local_head, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                pass  # a new working copy: the dataset's default branch
        return self.store.get_ref(HEAD_REF) or b"ref: refs/heads/main"

    def read_head(self) -> tuple[str | None, str | None]:
        v = self._head_bytes()
        if v.startswith(b"ref: refs/heads/"):
            try:
                return v[len(b"ref: refs/heads/"):].decode("utf-8"), None
            except UnicodeDecodeError:
                pass
        if v.startswith(b"detached:") and len(v) == 9 + 32:
            return None, self._learn(v[9:])
        raise CorruptRefError(f"HEAD of the {self.name} store is damaged: {v[:60]!r}")

    def write_head(self, branch: str | None, commit: str | None = None) -> None:
        if branch is not None:
            v = f"ref: refs/heads/{branch}".encode("utf-8")
        else:
            v = b"detached:" + self._addr[commit]
        if self._local_head is not None:
            atomic_write(self._local_head, v)
            return
        self.store.set_ref(HEAD_REF, v)
        self.store.flush()

    def collect(self, commits: set, live: set, dry_run: bool, progress=None) -> dict:
        """Remove the tree nodes, root sets and commit records no ref reaches
        (``live`` holds the live root sets' addresses too). Anything in the store that
        is none of those is kept."""
        st = self.store
        dead_nodes: list = []
        dead_commits: list = []
        for addr in list(st.addresses()):
            if progress is not None:
                progress(1)
            if addr in live:
                continue
            data = st.get(addr)
            if data is None:
                continue
            try:
                obj = msgpack.unpackb(data, raw=False)
            except Exception:  # not ours to judge: keep it
                continue
            if isinstance(obj, list) and obj and obj[0] == MAGIC:
                if addr[:20].hex() not in commits:
                    dead_commits.append(addr)
            elif isinstance(obj, list) and obj and (type(obj[0]) is int
                                                    or obj[0] == ROOTSET_MAGIC):
                dead_nodes.append(addr)
            elif type(obj) is bytes:  # a data chunk of a chunked value (a msgpack bin)
                dead_nodes.append(addr)
        removed = removed_commits = 0
        if not dry_run:
            if dead_nodes:
                removed = st.remove(dead_nodes)
            if dead_commits:
                removed_commits = st.remove(dead_commits)
                for a in dead_commits:
                    self._addr.pop(a[:20].hex(), None)
                    self._commits.pop(a[:20].hex(), None)
            st.flush()
        return {"unreachable_nodes": len(dead_nodes), "unreachable_commits": len(dead_commits),
                "removed": removed, "removed_commits": removed_commits,
                "map_entries_dropped": 0, "managed_by_git": False}

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            super().close()
