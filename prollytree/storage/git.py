"""A node store inside a Git object database (via dulwich).

Prolly nodes are stored as Git *blobs*. Git names objects by SHA-1 of ``"blob <len>\\0" +
data`` while the tree layer addresses nodes by SHA-256 of the data, so the store keeps a
map ``sha256 -> git blob id`` in ``.git/prollytree/nodemap`` (an append-only file of fixed
records; a cache that can always be rebuilt from the objects, see :meth:`learn_mirror`).

**The map names objects; it does not vouch for them.** An object id is a function of the
content, so a map entry is never *wrong* about an id, but the object it names may have
been deleted since (``git gc --prune=now`` after the branch holding it was deleted). The
store therefore never skips writing an object because the map knows its id: a write is
skipped only when the object is part of a tree Git must keep — the mirror of a commit the
new commit names as parent (see :meth:`mirror`). Reads through a map entry whose object is
gone drop the entry and report the node absent; :meth:`prune_map` rewrites the map
without such entries.

Writes are buffered in memory and land in Git in one go, as a single pack file written by
:func:`write_pack` (with fsync of the pack, its index and the pack directory), so a
commit of a few hundred nodes costs one pack rather than hundreds of loose files. The pack
writer is a small, format-exact implementation of Git's pack v2 and index v2 (see
``gitformat-pack(5)``); ``git fsck``, ``git verify-pack`` and ``git gc`` accept its output.
A large write (a streamed value) runs in a :meth:`GitNodeStore.write_session` instead:
its nodes are streamed into one pack as they come (:mod:`prollytree.git.packstream`),
finished and made visible once at the end.

**Mirror trees.** A blob that no commit references is garbage to Git (``git gc`` deletes
it, ``git clone`` does not carry it). :meth:`mirror` therefore lays a tree out as Git trees:
a leaf is a blob; an internal node is a Git tree holding a blob named ``node`` (the node's
own bytes) and one entry per child (a tree for an internal child, a blob for a leaf), named
by a short hash of the child's first key. A leaf holding chunked values (see
``prollytree.tree.values``) is a Git tree instead: ``node`` (the leaf's bytes) and one blob
per chunk or chunk index its values need, named by the chunk's SHA-256 address in hex, so
the chunks are reachable from the commit too (and a clone learns them by name). Unchanged subtrees keep their Git tree ids, so a
new root costs O(changed nodes) new objects, and a child keeps its path as long as its
first key does (a Git index listing the blobs then changes in a few entries per commit,
see :meth:`index_changes`). Whoever puts the mirror's top object into a commit makes every
node of that tree reachable: ``git gc --prune=now``, ``git clone``, ``git push`` and
``git pull`` keep and carry the data.

Refs of the NodeStore interface (``get_ref``/``set_ref``) are Git refs
``refs/prollytree/store/<name>`` pointing at a blob that holds the value, updated with
dulwich's compare-and-swap.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from typing import Callable, Iterable, Iterator, Mapping

from ..errors import CorruptNodeError, StoreError
from ..git.objects import (git_raw_id)
from ..git.pack import PackReader, write_pack, zlib_level
from ..git.packstream import PackStream, remove_stale
from .base import ANY, NodeStore
from .git_mirror import KIND_BLOB, MirrorMixin
from .git_node_map import NodeMapMixin

try:  # pragma: no cover - import probe
    from dulwich.objects import Blob
    from dulwich.repo import Repo
except ImportError:  # pragma: no cover
    Repo = None  # type: ignore[assignment]

#: buffered bytes past which a write session moves the buffered nodes into its pack
SPILL_BYTES = 8 << 20

#: where the NodeStore refs of a Git node store live
_STORE_REFS = b"refs/prollytree/store/"

#: entry names of this many internal nodes are kept (they cost a hash per child to make)
NAME_CACHE = 8192
#: tree bodies of this many mirror trees built are kept, to patch into the next version
LAYOUT_CACHE = 2048

_sha1 = hashlib.sha1
_sha256 = hashlib.sha256
_blake2b = hashlib.blake2b


class GitNodeStore(NodeMapMixin, MirrorMixin, NodeStore):
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
                try:
                    repo = Repo(path)
                except Exception as e:   # dulwich: a damaged config, HEAD, commondir...
                    raise StoreError(f"cannot open the Git repository at {path}, its files "
                                     f"are damaged ({type(e).__name__}: {e})") from e
            self._owns_repo = True
        else:
            self._owns_repo = False
        self.repo = repo
        self.read_only = read_only
        self.object_store = repo.object_store
        # objects and the node map are shared by every worktree of the repository: use
        # the common directory, not a linked worktree's own .git/worktrees/<id>
        self.objects_dir = os.path.normpath(repo.object_store.path)
        self.pack_dir = os.path.join(self.objects_dir, "pack")
        #: whole objects straight from the memory-mapped packs (dulwich's reader is ~5x
        #: slower per object; it still reads loose and deltified objects)
        self._packs = PackReader(self.pack_dir)
        self.state_dir = os.path.join(os.path.normpath(repo.commondir()), "prollytree")
        self.map_path = os.path.join(self.state_dir, "nodemap")
        self._lock = threading.RLock()
        self._pending: dict[bytes, bytes] = {}
        self._blob: dict[bytes, bytes] = {}   # sha256 -> 20-byte blob id
        self._tree: dict[bytes, bytes] = {}   # sha256 of internal node -> 20-byte tree id
        self._names: OrderedDict[bytes, tuple] = OrderedDict()
        #: internal node address -> (mirror tree body, offset of each child's id in it,
        #: offset of the node blob's id) of trees this process built
        self._layouts: OrderedDict[bytes, tuple] = OrderedDict()
        self._map_offset = 0
        self._map_ino = None
        #: called with no argument on a lookup miss; may teach the store (learn_mirror)
        #: where to find more nodes, returning True when it learnt something
        self.miss_handler: Callable[[], bool] | None = None
        #: why the node map was last rebuilt (damage found in it), or None
        self.map_damage: str | None = None
        #: the pack a write session streams into (see :meth:`write_session`), the nodes
        #: moved there (their ids are the stream's keys) and the bytes put since
        self._stream: PackStream | None = None
        self._spilled: set = set()
        self._session = 0
        self._session_bytes = 0
        self._load_map()
        if not read_only and os.path.isdir(self.state_dir):
            remove_stale(self.state_dir, self.pack_dir)   # packs of writers killed mid-way

    # -- NodeStore ------------------------------------------------------------------------

    def read_blob(self, sha: bytes) -> bytes | None:
        """The content of the Git blob with 20-byte id ``sha``, None when absent (or
        not a blob)."""
        return self._read_blob(sha)

    def read_object(self, sha: bytes) -> tuple[int, bytes] | None:
        """(pack type number: 1 commit, 2 tree, 3 blob, 4 tag; body) of the Git object
        with 20-byte id ``sha``, None when absent. Whole packed objects come straight
        from the mapped packs, others through dulwich. StoreError when damaged."""
        try:
            got = self._packs.get(sha)
            return got if got is not None else self.object_store.get_raw(sha)
        except KeyError:
            return None
        except Exception as e:
            raise StoreError(f"Git object {sha.hex()} cannot be read, the repository's "
                             f"object files are damaged ({type(e).__name__}: {e}); run "
                             f"'git fsck'") from e

    def _read_blob(self, sha: bytes, verify: bool = False) -> bytes | None:
        """The bytes of blob ``sha`` (20 bytes or 40 hex), None when absent (or not a
        blob). Raises StoreError naming the object when Git's files holding it are
        damaged: dulwich's own errors (zlib, struct, index assertions...) never escape.
        ``verify`` also checks the bytes against the id (node reads need not: they are
        checked against their SHA-256 address)."""
        try:
            got = self._packs.get(sha) if len(sha) == 20 else None
            kind, data = got if got is not None else self.object_store.get_raw(sha)
        except KeyError:
            return None
        except Exception as e:
            name = sha.hex() if len(sha) == 20 else sha.decode("ascii", "replace")
            raise StoreError(f"Git object {name} cannot be read, the repository's object "
                             f"files are damaged ({type(e).__name__}: {e}); run "
                             f"'git fsck'") from e
        if kind != 3 or not isinstance(data, bytes):
            return None
        if verify:
            raw = sha if len(sha) == 20 else bytes.fromhex(sha.decode("ascii"))
            if git_raw_id(b"blob", data) != raw:
                raise StoreError(f"Git object {raw.hex()} is damaged: its bytes do not hash "
                                 f"to its id; run 'git fsck'")
        return data

    def _get(self, address: bytes) -> bytes | None:
        data = self._pending.get(address)
        if data is not None:
            return data
        if address in self._spilled:
            stream = self._stream
            sha = None if stream is None else stream.id_of(address)
            if sha is not None:
                got = stream.read(sha)
                if got is not None:
                    return got[1]
        sha = self._blob.get(address)
        if sha is None:
            with self._lock:
                if not self._load_map() and not (self.miss_handler and self.miss_handler()):
                    return None
            sha = self._blob.get(address)
            if sha is None:
                return None
        try:
            data = self._read_blob(sha)
        except StoreError as e:
            raise CorruptNodeError(address, str(e)) from e
        if data is None:
            # the object is gone (git gc pruned it): forget the stale entry
            with self._lock:
                if self._blob.get(address) == sha:
                    del self._blob[address]
        return data

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        out = {}
        for a in addresses:
            d = self.get(a)
            if d is not None:
                out[a] = d
        return out

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        # Buffered even when the map knows the node: the map does not prove that the
        # object still exists (see the module doc); mirror() decides what to write.
        with self._lock:
            pending = self._pending
            for addr, data in items:
                pending[addr] = data
            if self._session and not self.read_only:
                self._session_bytes += sum(len(d) for _, d in items)
                if self._session_bytes >= SPILL_BYTES:
                    self._spill()

    def _spill(self) -> None:
        """Move the buffered nodes into the write session's pack (caller holds the
        lock): appended, not fsynced, invisible outside this store until it finishes."""
        stream = self._stream
        if stream is None:
            remove_stale(self.state_dir, self.pack_dir)
            stream = self._stream = PackStream(self.pack_dir, self.state_dir)
        spilled = self._spilled
        add = stream.add
        for addr, data in self._pending.items():
            add(b"blob", None, data, None, addr)   # its id is computed by the writer
            spilled.add(addr)
        self._pending.clear()
        self._session_bytes = 0

    @contextlib.contextmanager
    def write_session(self) -> Iterator["GitNodeStore"]:
        """A large write (a streamed value) as ONE pack. While the session lasts, nodes
        put are moved, each time more than :data:`SPILL_BYTES` (8 MiB) are buffered,
        into a pack being written (no fsync; invisible to Git and to other processes;
        this store reads them at once). At the end — also when the block raises — the
        session flushes (:meth:`flush`): the pack gets its trailer and index, one
        fsync, and becomes visible atomically. A process killed mid-session leaves a temporary
        file that the next writable open removes, never a half pack. Memory stays
        bounded by the buffer. Sessions nest (the outermost one finishes the pack)."""
        with self._lock:
            self._session += 1
        try:
            yield self
        except BaseException:
            with self._lock:
                self._session -= 1
                if not self._session:
                    try:
                        self.flush()
                    except Exception:   # noqa: BLE001 - the block's error is the news
                        self.discard_pending()
            raise
        with self._lock:
            self._session -= 1
            if not self._session:
                self.flush()

    def _has(self, address: bytes) -> bool:
        if address in self._pending or address in self._spilled:
            return True
        return self._get(address) is not None

    def present(self, sha: bytes) -> bool:
        """Whether Git object ``sha`` (20 bytes) is in the repository (packed: a lookup
        in the mapped pack indexes; else loose, or anywhere dulwich finds it)."""
        if self._packs.contains(sha):
            return True
        return sha.hex().encode("ascii") in self.object_store

    def holds(self, address: bytes) -> bool:
        """Whether the node is buffered, in the write session's pack, or in Git under
        the id the map names (checked present, not read): writers of large values skip
        such chunks."""
        if address in self._pending or address in self._spilled:
            return True
        sha = self._blob.get(address)
        return sha is not None and self.present(sha)

    def pending_count(self) -> int:
        """Nodes put but not yet written to Git (or to a finished pack)."""
        return len(self._pending) + len(self._spilled)

    def discard_pending(self) -> None:
        """Forget buffered nodes that were never written (scratch results), and drop
        the write session's unfinished pack."""
        with self._lock:
            self._pending.clear()
            self._session_bytes = 0
            stream, self._stream = self._stream, None
            self._spilled = set()
            if stream is not None:
                stream.abort()

    def flush(self) -> None:
        """Write every buffered node to Git (one pack; a write session's pack is
        finished). Nodes written this way are not referenced by any commit; use
        :meth:`mirror` + a commit for that."""
        with self._lock:
            if (self._pending or self._stream is not None) and not self.read_only:
                objects, records = [], []
                for addr, data in self._pending.items():
                    sha = git_raw_id(b"blob", data)
                    objects.append((b"blob", sha, data, zlib_level(data)))
                    records.append((KIND_BLOB, addr, sha))
                self.write_objects(objects, records)

    def write_objects(self, objects: list[tuple[bytes, bytes, bytes]],
                      records: Iterable[tuple[bytes, bytes, bytes]] = ()) -> None:
        """Write ``objects`` ((kind, 20-byte id, body)) durably in one pack, then remember
        the map ``records``; buffered nodes among them stop being buffered. A write
        session's unfinished pack takes them and is finished."""
        with self._lock:
            recs = list(records)
            stream = self._stream
            if stream is not None:
                self._stream = None
                try:
                    for o in objects:
                        stream.add(o[0], o[1], o[2], o[3] if len(o) > 3 else None)
                    ids = stream.keys()
                    stream.finish()
                except BaseException:
                    stream.abort()
                    self._spilled = set()  # gone with the pack: written again if needed
                    raise
                recs = [(KIND_BLOB, a, sha) for a, sha in ids.items()] + recs
                self._spilled = set()
            else:
                seen: set = set()
                unique = []
                for o in objects:
                    if o[1] not in seen:
                        seen.add(o[1])
                        unique.append(o)
                write_pack(self.pack_dir, unique)
            # see the new pack, and drop the mappings of packs a repack removed
            self._packs.refresh()
            pending = self._pending
            for kind, addr, _ in recs:
                if kind == KIND_BLOB:
                    pending.pop(addr, None)
            self._remember(recs)

    # -- refs -------------------------------------------------------------------------------

    def _ref_name(self, name: str) -> bytes:
        """The Git ref holding NodeStore ref ``name``: ASCII letters, digits, ``-`` and
        ``.`` kept, every other UTF-8 byte written ``_xx`` (so the mapping is reversible:
        :meth:`refs` returns the names as they were set)."""
        if not isinstance(name, str) or not name:
            raise TypeError("ref name must be a non-empty str")
        safe = b"".join(bytes([c]) if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122
                                       or c in b"-.") else b"_%02x" % c
                        for c in name.encode("utf-8"))
        return _STORE_REFS + safe

    @staticmethod
    def _ref_label(ref: bytes) -> str:
        """Inverse of :meth:`_ref_name`."""
        raw = ref[len(_STORE_REFS):]
        out = bytearray()
        i = 0
        while i < len(raw):
            if raw[i] == 0x5F:  # "_xx"
                out.append(int(raw[i + 1:i + 3], 16))
                i += 3
            else:
                out.append(raw[i])
                i += 1
        return out.decode("utf-8")

    def _ref_error(self, ref: bytes, e: Exception) -> StoreError:
        if type(e).__name__ == "FileLocked":
            from ..errors import StoreLockedError
            return StoreLockedError(f"Git ref {ref.decode()} is locked ({e}); if no Git "
                                    f"process is running, delete the .lock file")
        return StoreError(f"Git ref {ref.decode()} cannot be read or written, its file is "
                          f"damaged ({type(e).__name__}: {e})")

    def _read_ref(self, ref: bytes) -> bytes | None:
        try:
            sha = self.repo.refs[ref]
        except KeyError:
            return None
        except Exception as e:
            raise self._ref_error(ref, e) from e
        if not isinstance(sha, bytes) or len(sha) != 40:
            raise StoreError(f"Git ref {ref.decode()} holds {sha!r}, not an object id")
        return sha

    def _get_ref(self, name: str) -> bytes | None:
        sha = self._read_ref(self._ref_name(name))
        if sha is None:
            return None
        data = self._read_blob(sha, verify=True)
        if data is None:
            raise StoreError(f"Git ref {self._ref_name(name).decode()} names object "
                             f"{sha.decode()}, which is missing or not a blob")
        return data

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        ref = self._ref_name(name)
        with self._lock:
            old = self._read_ref(ref)
            if expected is not ANY:
                cur = None if old is None else self._read_blob(old, verify=True)
                if cur != expected:
                    return False
            try:
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
            except Exception as e:
                raise self._ref_error(ref, e) from e

    def refs(self) -> Mapping[str, bytes]:
        out = {}
        prefix = b"refs/prollytree/store/"
        try:
            listed = self.repo.refs.as_dict(prefix).items()
        except Exception as e:
            raise self._ref_error(prefix, e) from e
        for ref, sha in listed:
            data = self._read_blob(sha, verify=True)
            if data is not None:
                out[self._ref_label(prefix + ref)] = data
        return out

    def addresses(self) -> Iterator[bytes]:
        """Addresses of the nodes buffered or named by the node map (some of the latter
        may have been deleted by ``git gc``; :meth:`prune_map` drops those)."""
        self._load_map()
        extra = list(self._pending) + [a for a in self._spilled if a not in self._pending]
        return iter(extra + [a for a in self._blob if a not in self._pending
                             and a not in self._spilled])

    def close(self) -> None:
        try:
            if not self.read_only:
                self.flush()
        finally:
            self._packs.close()
            if self._owns_repo:
                self.repo.close()
