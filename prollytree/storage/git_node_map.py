"""The Git node store's node map: ``sha256 address -> Git object id`` of every node (its
blob) and of every internal node's mirror tree, in ``.git/prollytree/nodemap``.

An append-only file of fixed records, each followed by its CRC-32, after the header
``MAP_MAGIC``. Every process appends what it learnt and reads what others appended; a
damaged record makes the store rebuild the map from the objects themselves. The map is a
cache: it names objects, it does not vouch for them (see :mod:`prollytree.storage.git`).
:class:`NodeMapMixin` is a mixin of :class:`~prollytree.storage.git.GitNodeStore` (the
state is the store's).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from typing import Callable, Iterable, Iterator

from ..errors import StoreError
from .git_mirror import KIND_BLOB, KIND_TREE, mirror_node_entry

MAP_RECORD = struct.Struct(">c32s20s")
#: On disk each record is followed by the CRC-32 of its 53 bytes, so that a damaged
#: record is recognised (and the map rebuilt from the objects) instead of sending reads
#: to a wrong object; the file starts with MAP_MAGIC.
MAP_MAGIC = b"PRLYMAP\x02"
_MAP_DISK = struct.Struct(">c32s20sI")
#: record kinds in the node map: the node's bytes as a blob / the node's mirror Git tree

_sha256 = hashlib.sha256


def _encode_map(records: Iterable[tuple[bytes, bytes, bytes]]) -> bytes:
    pack, crc32 = MAP_RECORD.pack, zlib.crc32
    out = []
    for k, a, s in records:
        rec = pack(k, a, s)
        out.append(rec + struct.pack(">I", crc32(rec)))
    return b"".join(out)


class NodeMapMixin:
    """Reading, appending, rebuilding and pruning the node map."""

    # -- node map ---------------------------------------------------------------------

    def _load_map(self) -> bool:
        """Read map records appended since the last read (by any process). A damaged
        record (or a map in an older format) makes the store rebuild the map from the
        objects themselves (:meth:`rebuild_map`)."""
        try:
            st = os.stat(self.map_path)
        except FileNotFoundError:
            return False
        if self._map_ino != (st.st_dev, st.st_ino):
            self._map_ino = (st.st_dev, st.st_ino)
            self._map_offset = 0
        if st.st_size <= self._map_offset:
            return False
        try:
            with open(self.map_path, "rb") as f:
                f.seek(self._map_offset)
                data = f.read()
        except OSError as e:
            raise StoreError(f"cannot read the node map {self.map_path}: {e}") from e
        pos = 0
        if self._map_offset == 0:
            if data[:len(MAP_MAGIC)] != MAP_MAGIC:
                if len(data) < len(MAP_MAGIC) and MAP_MAGIC.startswith(data):
                    return False                 # being created right now
                return self._map_damaged("it does not start with the node-map header")
            pos = len(MAP_MAGIC)
        size = _MAP_DISK.size
        # A partial record at the end is an append in progress (or torn by a crash: the
        # next append then misaligns, fails its checksums and causes a rebuild).
        n = (len(data) - pos) // size
        blob, tree = self._blob, self._tree
        crc32 = zlib.crc32
        for i in range(n):
            rec = data[pos + i * size:pos + (i + 1) * size]
            kind, addr, sha, crc = _MAP_DISK.unpack(rec)
            if crc != crc32(rec[:-4]) or kind not in (KIND_BLOB, KIND_TREE):
                return self._map_damaged(f"record {i} after offset {self._map_offset} "
                                         f"fails its checksum")
            (blob if kind == KIND_BLOB else tree)[addr] = sha
        self._map_offset += pos + n * size
        return n > 0

    def _map_damaged(self, why: str) -> bool:
        """The node map cannot be trusted: forget it and rebuild it from the objects."""
        self.map_damage = f"{self.map_path}: {why}; rebuilt from the Git objects"
        self._blob.clear()
        self._tree.clear()
        self.rebuild_map()
        return True

    def rebuild_map(self) -> int:
        """Rebuild the node map from the repository's objects: every blob is mapped by
        the SHA-256 of its bytes, every tree holding a ``node`` entry (a mirror tree) by
        that blob's. Reads every object once (O(repository)); used when the map is
        damaged. Returns the number of records written."""
        with self._lock:
            records: dict[tuple[bytes, bytes], bytes] = {}
            trees: list[tuple[bytes, bytes]] = []
            store = self.object_store
            for hexsha in list(self._all_object_ids()):
                try:
                    kind, data = store.get_raw(hexsha)
                except Exception:               # damaged or vanished: not mappable
                    continue
                raw = bytes.fromhex(hexsha.decode("ascii"))
                if kind == 3:
                    records[(KIND_BLOB, _sha256(data).digest())] = raw
                elif kind == 2:
                    node_sha = mirror_node_entry(data)
                    if node_sha is not None:
                        trees.append((node_sha, raw))
            by_blob = {sha: addr for (k, addr), sha in records.items()}
            for node_sha, tree_sha in trees:
                addr = by_blob.get(node_sha)
                if addr is not None:
                    records[(KIND_TREE, addr)] = tree_sha
            self._blob.clear()
            self._tree.clear()
            out = []
            for (kind, addr), sha in records.items():
                (self._blob if kind == KIND_BLOB else self._tree)[addr] = sha
                out.append((kind, addr, sha))
            if not self.read_only:
                self._write_map(out)
            return len(out)

    def _all_object_ids(self) -> Iterator[bytes]:
        """40-hex ids of every object (packed and loose); damaged indexes are skipped."""
        seen: set = set()
        try:
            packs = list(self.object_store.packs)
        except Exception:
            packs = []
        for pack in packs:
            try:
                for entry in pack.index.iterentries():
                    seen.add(entry[0])
            except Exception:
                continue
        for raw in seen:
            yield raw.hex().encode("ascii")
        objects = self.objects_dir     # shared by every worktree (not controldir)
        try:
            dirs = os.listdir(objects)
        except OSError:
            return
        for d in dirs:
            if len(d) != 2:
                continue
            try:
                names = os.listdir(os.path.join(objects, d))
            except OSError:
                continue
            for name in names:
                if len(name) == 38:
                    yield (d + name).encode("ascii")

    def _write_map(self, records: list) -> None:
        """Replace the map file with ``records`` (atomically)."""
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = f"{self.map_path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(MAP_MAGIC + _encode_map(records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.map_path)
        st = os.stat(self.map_path)
        self._map_ino = (st.st_dev, st.st_ino)
        self._map_offset = st.st_size

    def _append_map(self, records: list[tuple[bytes, bytes, bytes]]) -> None:
        if not records or self.read_only:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        if not os.path.exists(self.map_path):
            # Create it with its header, atomically (link fails if another process won).
            tmp = f"{self.map_path}.new{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(MAP_MAGIC)
            try:
                os.link(tmp, self.map_path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        fd = os.open(self.map_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, _encode_map(records))
        finally:
            os.close(fd)

    def _remember(self, records: Iterable[tuple[bytes, bytes, bytes]]) -> None:
        new = []
        for kind, addr, sha in records:
            table = self._blob if kind == KIND_BLOB else self._tree
            if table.get(addr) != sha:
                table[addr] = sha
                new.append((kind, addr, sha))
        self._append_map(new)

    def blob_id(self, address: bytes) -> bytes | None:
        """40-hex id of the blob holding node ``address`` as far as the node map knows
        (the object may have been deleted by ``git gc`` since; see the module doc)."""
        sha = self._blob.get(address)
        return None if sha is None else sha.hex().encode("ascii")

    def tree_id(self, address: bytes) -> bytes | None:
        """40-hex id of the mirror tree of internal node ``address``, if known (same
        caveat as :meth:`blob_id`)."""
        sha = self._tree.get(address)
        return None if sha is None else sha.hex().encode("ascii")

    def known_tree_ids(self) -> set:
        """The Git tree ids of every mirror subtree the node map knows (a copy)."""
        return set(self._tree.values())

    def known_id(self, address: bytes, level: int) -> bytes | None:
        """20-byte id of node ``address``'s mirror entry (a tree for ``level`` >= 1, the
        node's blob for a leaf) as far as the map knows."""
        return (self._tree if level else self._blob).get(address)

    def prune_map(self, progress: Callable[[int], None] | None = None,
                  dry_run: bool = False) -> dict:
        """Rewrite the node map keeping only entries whose object is still in the
        repository (``git gc`` deletes unreachable ones). Returns ``{"kept",
        "dropped"}`` (with ``dry_run``: what it would keep and drop)."""
        with self._lock:
            self._load_map()
            present = self._present_set()
            kept: list = []
            dropped = 0
            for kind, table in ((KIND_BLOB, self._blob), (KIND_TREE, self._tree)):
                for addr, sha in list(table.items()):
                    if sha in present or self._loose_exists(sha):
                        kept.append((kind, addr, sha))
                    else:
                        if not dry_run:
                            del table[addr]
                        dropped += 1
                    if progress is not None:
                        progress(1)
            if not self.read_only and not dry_run:
                self._write_map(kept)
            return {"kept": len(kept), "dropped": dropped}

    def _present_set(self) -> set:
        """Ids of every packed object (read from the pack indexes)."""
        out: set = set()
        try:
            for pack in self.object_store.packs:
                out.update(e[0] for e in pack.index.iterentries())
        except Exception as e:
            raise StoreError(f"cannot list the objects of {self.pack_dir}: a pack index is "
                             f"damaged ({type(e).__name__}: {e}); run 'git fsck'") from e
        return out

    def _loose_exists(self, sha: bytes) -> bool:
        h = sha.hex()
        return os.path.exists(os.path.join(self.objects_dir, h[:2], h[2:]))
