"""The file store: an append-only, checksummed log of node and ref records in a directory.

Layout of the store directory (the full format is in ``docs/storage.md``)::

    nodes.log        the log: a 4 KiB header, then records, appended and never rewritten
    nodes.idx        a checkpoint of the in-memory index (a cache; rebuilt if absent/stale)
    prollytree.lock  the writer lock (see :mod:`prollytree.storage.locking`)

Why a log: appends are sequential and need one ``write`` per batch and one ``fdatasync``
per flush, whatever the number of nodes; reads are one dict lookup and one slice of an
``mmap``. Refs are records in the same log, so a ref can never be durable while the nodes
written before it are not: recovery always yields a prefix of the log.

Every record carries two checksums: one over its header and key (so a damaged payload can
be skipped and attributed to its address) and one over its value. The log header holds a
*durable watermark*, the length that was fsynced at the last flush: an invalid record past
the watermark is a torn tail from a crash and is cut off on the next writable open; an
invalid record before it is damage to data that was promised durable, and is reported
(never silently dropped, never served as wrong bytes).
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from hashlib import sha256
from typing import Iterable, Iterator, Mapping

from xxhash import xxh3_64_intdigest, xxh32_intdigest

from ..errors import CorruptNodeError, ReadOnlyError, StoreError
from .base import ADDRESS_SIZE, ANY
from .checks import (
    StoreProblem, check_address, check_expected, check_items, check_ref_name, check_ref_value,
)
from .._fs import fsync_dir
from .file_compaction import RETIRED_SECONDS, FileCompaction
from .file_format import (
    COMPACT_NAME, FIXED_SIZE, FORMAT_VERSION, HEADER_SIZE, IDX_HEAD, IDX_MAGIC, IDX_NODE,
    IDX_REF, INDEX_NAME, LOG_HEAD, LOG_MAGIC, LOG_NAME, MAX_VALUE, NODE_PREFIX, REC_FIXED,
    REC_MAGIC, REC_NODE, REC_REF_DEL, REC_REF_SET, REMAP_SLACK, INDEX_TAIL, SCAN_CHUNK, SLOT,
    SLOT_OFFSETS, U32, U64, WRITE_CHUNK, ChunkReader, encode_record, fdatasync, header_bytes, pwrite_all,
    slot_bytes,
)

from .locking import LockedDirectoryStore

__all__ = ["FileNodeStore"]


class _ScanResult:
    """What a scan of part of the log found."""

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}
        self.refs: dict[str, bytes | None] = {}     # None = deleted
        self.bad_refs: set[str] = set()
        self.ref_pos: dict[str, int] = {}           # offset of each ref's last record
        self.lost: dict[bytes, str] = {}            # address -> why it cannot be read
        self.damaged: list[tuple[int, int]] = []    # unreadable byte ranges
        self.problems: list[StoreProblem] = []
        self.end = 0                                # end of the last good record


class FileNodeStore(FileCompaction, LockedDirectoryStore):
    """Nodes and refs in an append-only checksummed log under directory ``path``.

    ``read_only=True`` opens an existing store without taking the writer lock; it sees
    the records present when it was opened (at least everything flushed before then).
    A writable open waits up to ``lock_timeout`` seconds (default
    ``$PROLLYTREE_LOCK_TIMEOUT`` or 10) for another writer to close, then raises
    :class:`~prollytree.errors.StoreLockedError`.

    Durability: every write reaches the operating system before the call returns (it
    survives the process being killed); ``flush()``, ``close()`` and leaving a ``with``
    block make all writes so far survive power loss. The object may be shared between
    threads: an internal lock serializes operations.
    """

    kind = "file"
    verify_reads = True

    def __init__(self, path: str | os.PathLike, read_only: bool = False, *,
                 lock_timeout: float | None = None) -> None:
        timeout = self._init_directory(path, read_only, lock_timeout)
        self._fd = -1
        self._mm: mmap.mmap | None = None
        self._mapped = 0
        self._log_path = os.path.join(self.path, LOG_NAME)
        self._idx_path = os.path.join(self.path, INDEX_NAME)
        self._auto: tuple | None = None
        self._next_check = 0
        self._compactor: threading.Thread | None = None
        self._compact_lock = threading.Lock()
        self._stop = threading.Event()
        self._touched: set[bytes] | None = None
        self._since_root: set[bytes] = set()
        self._closing = False
        self._reclaimable: int | None = None
        self._compactions = 0
        #: after an automatic compaction: (fd, index, when) of the old log, still read
        #: for nodes the new one dropped (see RETIRED_SECONDS)
        self._retired: tuple[int, dict[bytes, int], float] | None = None
        #: what went wrong in the last background compaction, if anything
        self.last_compaction_error: str | None = None
        self._open_directory(LOG_NAME, "file store", timeout, self._open)

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        if not self.read_only:
            # A compaction that crashed before its rename leaves a partial new log behind.
            try:
                os.unlink(os.path.join(self.path, COMPACT_NAME))
            except FileNotFoundError:
                pass
            if not os.path.exists(self._log_path):
                self._create_log()
        flags = (os.O_RDONLY if self.read_only else os.O_RDWR) | os.O_CLOEXEC
        self._fd = os.open(self._log_path, flags)
        size = os.fstat(self._fd).st_size
        self._log_id, self._durable_end, self._slot_seq = self._read_header(size)

        index: dict[bytes, int] | None = None
        refs: dict[str, bytes] = {}
        start = HEADER_SIZE
        loaded = self._load_index(size)
        if loaded is not None:
            index, refs, start = loaded
        self._indexed_end = start if loaded is not None else 0

        scan = self._scan(start, size, verify_nodes=False)
        if index is None:
            index = scan.index
        else:
            index.update(scan.index)
        for name, value in scan.refs.items():
            if value is None:
                refs.pop(name, None)
            else:
                refs[name] = value
        bad_refs = set(scan.bad_refs)
        if scan.damaged:
            # A ref whose last intact record comes before a damaged region may have had a
            # later update in it: its value is no longer known (refs from the checkpoint
            # come before everything scanned).
            last_damage = max(a for a, _ in scan.damaged)
            bad_refs.update(n for n in refs if scan.ref_pos.get(n, -1) < last_damage)
        for name in bad_refs:
            refs.pop(name, None)
        self._index = index
        self._refs = refs
        self._bad_refs = bad_refs
        # A damaged copy only matters if no intact copy of the node exists.
        self._lost = {a: why for a, why in scan.lost.items() if a not in index}
        self._damaged = scan.damaged
        end = scan.end
        if not self.read_only:
            if end < size:
                # The torn tail of writes that were never flushed: cut it off, durably, so
                # that new appends can never be followed by stale bytes that parse as
                # records.
                os.ftruncate(self._fd, end)
                fdatasync(self._fd)
            elif end < self._durable_end:
                # Flushed data is missing (the file was truncated). Zero-fill up to the
                # watermark instead of appending over it, so the loss stays visible to
                # every later open instead of being silently covered by new records.
                os.ftruncate(self._fd, self._durable_end)
                fdatasync(self._fd)
                end = self._durable_end
        self._end = end
        # Valid records past the watermark (written, then the process died) are not yet
        # known to be on disk: the next flush must fsync them.
        self._synced_end = min(end, self._durable_end)
        self._watermark_dirty = False
        self._remap()

    def _create_log(self) -> None:
        tmp = self._log_path + ".new"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            pwrite_all(fd, header_bytes(os.urandom(16), HEADER_SIZE), 0)
            fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._log_path)
        fsync_dir(self.path)

    def _read_header(self, size: int) -> tuple[bytes, int, int]:
        head = os.pread(self._fd, HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE:
            raise StoreError(f"{self._log_path} is too short to be a prollytree log "
                             f"({size} bytes)")
        magic, version, log_id = LOG_HEAD.unpack_from(head, 0)
        if magic != LOG_MAGIC:
            raise StoreError(f"{self._log_path} is not a prollytree log (bad magic)")
        if U32.unpack_from(head, 28)[0] != xxh32_intdigest(head[:28]):
            raise StoreError(f"{self._log_path}: log header is damaged (checksum mismatch)")
        if version != FORMAT_VERSION:
            raise StoreError(f"{self._log_path}: unsupported log format version {version}")
        best_seq, best_end = 0, HEADER_SIZE
        for off in SLOT_OFFSETS:
            body = head[off:off + 16]
            if U32.unpack_from(head, off + 16)[0] == xxh32_intdigest(log_id + body):
                seq, end = SLOT.unpack(body)
                if seq > best_seq:
                    best_seq, best_end = seq, end
        return log_id, best_end, best_seq

    def _load_index(self, size: int) -> tuple[dict[bytes, int], dict[str, bytes], int] | None:
        """The index checkpoint if it is intact and belongs to this log, else None."""
        try:
            with open(self._idx_path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if len(data) < IDX_HEAD.size + 8:
            return None
        if U64.unpack_from(data, len(data) - 8)[0] != xxh3_64_intdigest(memoryview(data)[:-8]):
            return None
        magic, version, log_id, covered, n_nodes, n_refs = IDX_HEAD.unpack_from(data, 0)
        if (magic != IDX_MAGIC or version != FORMAT_VERSION or log_id != self._log_id
                or covered > size or covered < HEADER_SIZE):
            return None
        pos = IDX_HEAD.size
        end_nodes = pos + n_nodes * IDX_NODE.size
        if end_nodes > len(data) - 8:
            return None
        try:
            index = {a: (o << 32) | n
                     for a, o, n in IDX_NODE.iter_unpack(memoryview(data)[pos:end_nodes])}
            pos = end_nodes
            refs = {}
            for _ in range(n_refs):
                nlen, vlen = IDX_REF.unpack_from(data, pos)
                pos += IDX_REF.size
                refs[data[pos:pos + nlen].decode("utf-8")] = data[pos + nlen:pos + nlen + vlen]
                pos += nlen + vlen
        except (struct.error, UnicodeDecodeError):
            return None                            # malformed despite its checksum: rebuild
        return index, refs, covered

    def _scan(self, start: int, end: int, verify_nodes: bool) -> _ScanResult:
        """Parse the records in [start, end), classifying damage against the watermark.

        An invalid record at or past the durable watermark ends the scan (a torn tail:
        ``res.end`` is where it starts). Before the watermark, damage is recorded and the
        scan goes on: past the record if its header is intact, else from the next offset
        where an intact record starts. ``verify_nodes`` also checks every node's SHA-256.
        """
        res = _ScanResult()
        reader = ChunkReader(self._fd, end)
        durable = self._durable_end
        pos = start
        while pos < end:
            head = b""
            head_ok = False
            fixed = reader.read(pos, FIXED_SIZE)
            if len(fixed) == FIXED_SIZE:
                magic, rtype, klen, vlen, vhash = REC_FIXED.unpack(fixed)
                if magic == REC_MAGIC and rtype in (REC_NODE, REC_REF_SET, REC_REF_DEL):
                    head = reader.read(pos, FIXED_SIZE + klen + 4)
                    head_ok = (len(head) == FIXED_SIZE + klen + 4
                               and U32.unpack_from(head, FIXED_SIZE + klen)[0]
                               == xxh32_intdigest(head[:FIXED_SIZE + klen]))
            if not head_ok:
                if pos >= durable:
                    break                      # torn tail
                nxt = self._resync(reader, pos + 1, end)
                res.damaged.append((pos, nxt))
                res.problems.append(StoreProblem(
                    None, f"{LOG_NAME}: unreadable bytes at offsets {pos}-{nxt} "
                          f"(flushed data; any records there are lost)"))
                pos = nxt
                continue
            key = head[FIXED_SIZE:FIXED_SIZE + klen]
            vstart = pos + FIXED_SIZE + klen + 4
            value = reader.read(vstart, vlen)
            if len(value) == vlen and xxh3_64_intdigest(value) == vhash:
                self._apply(res, rtype, key, value, vstart, pos, verify_nodes)
                pos = vstart + vlen
                continue
            # The header is intact but the value is not.
            if pos >= durable:
                break                          # torn tail
            what = ("is cut short by the end of the file" if len(value) < vlen
                    else "fails its checksum")
            where = f"its record at offset {pos} of {LOG_NAME} {what}"
            if rtype == REC_NODE and klen == ADDRESS_SIZE:
                res.problems.append(StoreProblem(key, where))
                if key not in res.index:
                    res.lost[key] = where
            else:
                name = key.decode("utf-8", "replace")
                res.problems.append(StoreProblem(None, f"ref {name!r}: {where}"))
                res.bad_refs.add(name)
                res.refs.pop(name, None)
            if len(value) < vlen:
                res.damaged.append((pos, end))
                pos = end
            else:
                pos = vstart + vlen
        res.end = min(pos, end)
        if end < durable:
            res.damaged.append((end, durable))
            res.problems.append(StoreProblem(
                None, f"{LOG_NAME} ends at offset {end} but {durable} bytes were flushed: "
                      f"the file was truncated and the records after offset {end} are lost"))
        return res

    def _apply(self, res: _ScanResult, rtype: int, key: bytes, value: bytes, vstart: int,
               pos: int, verify_nodes: bool) -> None:
        if rtype == REC_NODE:
            if len(key) != ADDRESS_SIZE:
                res.problems.append(StoreProblem(
                    None, f"node record at offset {pos} has a {len(key)}-byte address"))
                return
            if verify_nodes and sha256(value).digest() != key:
                res.problems.append(StoreProblem(
                    key, f"bytes at offset {vstart} of {LOG_NAME} do not hash to the address"))
            res.index[key] = (vstart << 32) | len(value)
            res.lost.pop(key, None)            # a later intact copy supersedes a damaged one
            return
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            res.problems.append(StoreProblem(None, f"ref record at offset {pos} has a "
                                                   f"name that is not UTF-8"))
            return
        res.refs[name] = value if rtype == REC_REF_SET else None
        res.ref_pos[name] = pos
        res.bad_refs.discard(name)

    @staticmethod
    def _resync(reader: ChunkReader, pos: int, end: int) -> int:
        """Offset of the next record whose header and value checksums hold, or ``end``."""
        while pos < end:
            chunk = reader.read(pos, min(SCAN_CHUNK, end - pos))
            if not chunk:
                break                              # the file ended early (truncated meanwhile)
            i = chunk.find(bytes((REC_MAGIC,)))
            if i < 0:
                pos += len(chunk)
                continue
            cand = pos + i
            fixed = reader.read(cand, FIXED_SIZE)
            if len(fixed) == FIXED_SIZE:
                magic, rtype, klen, vlen, vhash = REC_FIXED.unpack(fixed)
                if rtype in (REC_NODE, REC_REF_SET, REC_REF_DEL):
                    head = reader.read(cand, FIXED_SIZE + klen + 4)
                    if (len(head) == FIXED_SIZE + klen + 4
                            and U32.unpack_from(head, FIXED_SIZE + klen)[0]
                            == xxh32_intdigest(head[:FIXED_SIZE + klen])):
                        value = reader.read(cand + FIXED_SIZE + klen + 4, vlen)
                        if len(value) == vlen and xxh3_64_intdigest(value) == vhash:
                            return cand
            pos = cand + 1
        return end

    # -- low-level file access ----------------------------------------------------------

    def _remap(self) -> None:
        """Map the log up to the end of its last good record."""
        # The old map is not closed explicitly: dropping the reference unmaps it once no
        # slice in progress holds it.
        self._mm = mmap.mmap(self._fd, self._end, access=mmap.ACCESS_READ)
        self._mapped = self._end

    def _append(self, data: bytes | bytearray) -> int:
        """Write ``data`` at the end of the log; returns its offset. On failure the log is
        cut back so that nothing of a partial write remains."""
        off = self._end
        try:
            pwrite_all(self._fd, data, off)
        except BaseException:
            try:
                os.ftruncate(self._fd, off)
            except OSError:
                pass
            raise
        self._end = off + len(data)
        return off

    def _read(self, entry: int) -> bytes:
        off = entry >> 32
        end = off + (entry & 0xFFFFFFFF)
        if end <= self._mapped:
            return self._mm[off:end]
        if self._end - self._mapped >= REMAP_SLACK:
            self._remap()
            return self._mm[off:end]
        return os.pread(self._fd, end - off, off)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"file store at {self.path} is closed")

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"file store at {self.path} is open read-only")

    def _missing(self, address: bytes) -> None:
        """Raise for an address that is not indexed but may have been lost to damage."""
        why = self._lost.get(address)
        if why is not None:
            raise CorruptNodeError(address, why)
        if self._damaged:
            a, b = self._damaged[0]
            raise CorruptNodeError(
                address, f"not found, and {LOG_NAME} has unreadable regions (first at "
                         f"offsets {a}-{b}) that may have held it; run check()")

    # -- NodeStore --------------------------------------------------------------------------

    def _get(self, address: bytes) -> bytes | None:
        if type(address) is not bytes or len(address) != ADDRESS_SIZE:
            address = check_address(address)
        with self._mutex:
            self._check_open()
            entry = self._index.get(address)
            if entry is None:
                if self._lost or self._damaged:
                    self._missing(address)
                return self._read_retired(address) if self._retired else None
            return self._read(entry)

    def get(self, address: bytes) -> bytes | None:
        """The node stored at ``address``, or None when absent.

        Raises CorruptNodeError when the stored bytes do not hash to ``address``; the
        damaged copy is then set aside (``has()`` turns False), so that writing the node
        again repairs it.
        """
        # _get inlined: this is the tree's hottest store call.
        if type(address) is not bytes or len(address) != ADDRESS_SIZE:
            address = check_address(address)
        with self._mutex:
            if self._closed:
                self._check_open()
            entry = self._index.get(address)
            if entry is None:
                if self._lost or self._damaged:
                    self._missing(address)
                return self._read_retired(address) if self._retired else None
            off = entry >> 32
            end = off + (entry & 0xFFFFFFFF)
            data = self._mm[off:end] if end <= self._mapped else self._read(entry)
        if sha256(data).digest() != address:
            self._quarantine(address)
        return data

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        addresses = [check_address(a) for a in addresses]
        out = {}
        with self._mutex:
            self._check_open()
            index = self._index
            for a in addresses:
                entry = index.get(a)
                if entry is None:
                    if self._lost or self._damaged:
                        self._missing(a)
                    if self._retired is not None:
                        data = self._read_retired(a)
                        if data is not None:
                            out[a] = data
                    continue
                data = self._read(entry)
                if sha256(data).digest() != a:
                    self._quarantine(a)
                out[a] = data
        return out

    def _quarantine(self, address: bytes) -> None:
        """Drop a node whose bytes proved wrong from the index and raise CorruptNodeError."""
        with self._mutex:
            entry = self._index.pop(address, None)
            if entry is not None:
                self._lost[address] = (f"its bytes at offset {entry >> 32} of {LOG_NAME} do "
                                       f"not hash to the address")
            raise CorruptNodeError(address, self._lost.get(
                address, "stored bytes do not hash to the address"))

    def _has(self, address: bytes) -> bool:
        if type(address) is not bytes or len(address) != ADDRESS_SIZE:
            address = check_address(address)
        with self._mutex:
            self._check_open()
            return address in self._index

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        items = check_items(items)
        for _, data in items:
            if len(data) > MAX_VALUE:
                raise ValueError(f"node of {len(data)} bytes exceeds the file store's "
                                 f"limit of {MAX_VALUE} bytes")
        with self._mutex:
            self._check_open()
            index = self._index
            pack, u32 = REC_FIXED.pack, U32.pack
            parts: list[bytes] = []
            pending: dict[bytes, int] = {}
            base = pos = self._end
            for address, data in items:
                if address in index or address in pending:
                    continue            # content-addressed: the stored copy is the same
                n = len(data)
                head = pack(REC_MAGIC, REC_NODE, ADDRESS_SIZE, n, xxh3_64_intdigest(data)) + address
                parts.append(head + u32(xxh32_intdigest(head)))
                parts.append(data)
                pos += NODE_PREFIX
                pending[address] = (pos << 32) | n
                pos += n
                if pos - base >= WRITE_CHUNK:
                    self._append(b"".join(parts))
                    index.update(pending)
                    parts, pending, base = [], {}, pos
            if parts:
                self._append(b"".join(parts))
                index.update(pending)
            if self._auto is not None:
                # Not reachable from any root ref yet, but about to be: live.
                self._since_root.update(a for a, _ in items)
                if self._touched is not None:    # a compaction is copying: keep these
                    self._touched.update(a for a, _ in items)
            if self._lost:
                # Writing a node again repairs one that was lost to damage.
                for address, _ in items:
                    self._lost.pop(address, None)

    def _get_ref(self, name: str) -> bytes | None:
        check_ref_name(name)
        with self._mutex:
            self._check_open()
            self._check_ref_known(name)
            return self._refs.get(name)

    def _check_ref_known(self, name: str) -> None:
        """Raise if the ref's current value cannot be known because of damage."""
        if name in self._bad_refs:
            raise StoreError(f"ref {name!r} is damaged in {self._log_path} (its record, or "
                             f"a later update of it, is unreadable); run check() for details")
        if self._damaged and name not in self._refs:
            a, b = self._damaged[0]
            raise StoreError(f"ref {name!r} not found, and {LOG_NAME} has unreadable regions "
                             f"(first at offsets {a}-{b}) that may have held it; run check()")

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        raw = check_ref_name(name)
        value = check_ref_value(value)
        expected = check_expected(expected)
        with self._mutex:
            self._check_open()
            # The writer lock is held for the store's whole life, so the in-memory refs are
            # exactly what is on disk: no other process can have changed them.
            # A ref whose value damage made unknowable matches no expected value.
            damaged = name in self._bad_refs or (bool(self._damaged) and name not in self._refs)
            current = self._refs.get(name)
            if expected is not ANY and (damaged or current != expected):
                return False
            if value is None:
                if current is not None or damaged:
                    self._append(encode_record(REC_REF_DEL, raw, b""))
                self._refs.pop(name, None)
            else:
                if value != current or damaged:
                    self._append(encode_record(REC_REF_SET, raw, value))
                self._refs[name] = value

            self._bad_refs.discard(name)
            if self._auto is not None and name in self._auto[0]:
                self._since_root.clear()         # what they need is reachable now
            return True

    def refs(self) -> Mapping[str, bytes]:
        """All refs. Raises StoreError if a ref record is damaged (a caller such as gc
        must not mistake a damaged ref for an absent one)."""
        with self._mutex:
            self._check_open()
            if self._bad_refs:
                raise StoreError(f"refs {sorted(self._bad_refs)} are damaged in "
                                 f"{self._log_path}; run check() for details")
            if self._damaged:
                raise StoreError(f"{self._log_path} has unreadable regions that may hold "
                                 f"refs; the list would not be complete (run check())")
            return dict(self._refs)

    def addresses(self) -> Iterator[bytes]:
        with self._mutex:
            self._check_open()
            return iter(list(self._index))
    def close(self) -> None:
        if self._shares <= 1:
            self._closing = True                 # the final flush must not start one
            self._stop_compaction()
        super().close()

    def stats(self, live: "set[bytes] | None" = None) -> dict[str, int]:
        """Sizes in bytes: ``log_bytes`` (the file), ``node_bytes`` (records of stored
        nodes), ``dead_bytes`` (records no longer indexed: removed nodes, superseded ref
        values) and ``reclaimable_bytes``: what a compaction would free. That is exact
        when ``live`` (the addresses still needed, e.g. ``ProllyTree.reachable()``) is
        given; otherwise dead records plus the unreachable nodes found by the last
        automatic-compaction check. Also ``nodes`` and ``compactions`` (by this object).
        O(nodes)."""
        with self._mutex:
            self._check_open()
            node_bytes = sum(NODE_PREFIX + (e & 0xFFFFFFFF) for e in self._index.values())
            ref_bytes = sum(FIXED_SIZE + len(n.encode("utf-8")) + 4 + len(v)
                            for n, v in self._refs.items())
            dead = max(0, self._end - HEADER_SIZE - node_bytes - ref_bytes)
            if live is not None:
                index = self._index
                reclaimable = dead + sum(NODE_PREFIX + (e & 0xFFFFFFFF)
                                         for a, e in index.items() if a not in live)
            else:
                reclaimable = max(dead, self._reclaimable or 0)
            return {"log_bytes": self._end, "node_bytes": node_bytes, "nodes": len(self._index),
                    "dead_bytes": dead, "reclaimable_bytes": reclaimable,
                    "compactions": self._compactions}

    # -- durability ---------------------------------------------------------------------

    def flush(self) -> None:
        """Make every write so far survive power loss (fdatasync of the log)."""
        with self._mutex:
            if self._closed or self.read_only:
                return
            if self._end != self._synced_end:
                fdatasync(self._fd)
                self._synced_end = self._end
                self._write_watermark()
            if self._end > self._mapped:
                self._remap()
            if (self._end - max(self._indexed_end, HEADER_SIZE) >= INDEX_TAIL
                    and not (self._damaged or self._lost or self._bad_refs)):
                self._write_index()
            if self._retired is not None:
                self._release_retired(RETIRED_SECONDS)
            self._maybe_compact()

    def _write_watermark(self) -> None:
        # Written after the data it vouches for was fsynced; it is itself made durable by
        # the next fdatasync (next flush or close). A lost watermark only means a crash
        # treats more of the log as an unverified tail, which is then checked in full.
        self._slot_seq += 1
        slot = SLOT_OFFSETS[self._slot_seq % 2]
        pwrite_all(self._fd, slot_bytes(self._log_id, self._slot_seq, self._synced_end), slot)
        self._durable_end = self._synced_end
        self._watermark_dirty = True

    def _write_index(self) -> None:
        """Checkpoint the index so the next open reads it instead of scanning the log.

        Not fsynced: it is a cache validated by its checksum and log id, and it only
        ever covers data that was already fsynced.
        """
        parts = [IDX_HEAD.pack(IDX_MAGIC, FORMAT_VERSION, self._log_id, self._end,
                                len(self._index), len(self._refs))]
        pack = IDX_NODE.pack
        parts.extend(pack(a, e >> 32, e & 0xFFFFFFFF) for a, e in self._index.items())
        for name, value in self._refs.items():
            raw = name.encode("utf-8")
            parts.append(IDX_REF.pack(len(raw), len(value)) + raw + value)
        data = b"".join(parts)
        data += U64.pack(xxh3_64_intdigest(data))
        tmp = self._idx_path + ".new"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self._idx_path)
        self._indexed_end = self._end

    def _before_close(self) -> None:
        """Flush and checkpoint the index (see the module docstring)."""
        if self.read_only:
            return
        self.flush()
        if self._watermark_dirty:
            fdatasync(self._fd)
            self._watermark_dirty = False
        if (self._end != self._indexed_end
                and not (self._damaged or self._lost or self._bad_refs)):
            self._write_index()

    def _close_handles(self) -> None:
        self._release_retired()
        self._mm = None
        self._mapped = 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- integrity --------------------------------------------------------------------------

    def check(self) -> list[StoreProblem]:
        """Read and verify every record of the log: framing checksums, SHA-256 of every
        node, and agreement with the in-memory index and refs. Returns the problems found
        (an empty list for a healthy store)."""
        with self._mutex:
            self._check_open()
            # Only up to our own end: for a reader, bytes past it may belong to a writer.
            res = self._scan(HEADER_SIZE, self._end, verify_nodes=True)
            problems = list(res.problems)
            for address, entry in self._index.items():
                if res.index.get(address) != entry and address not in res.lost:
                    problems.append(StoreProblem(
                        address, f"the index points to offset {entry >> 32}, where no "
                                 f"intact record of this node is"))
            final = {n: v for n, v in res.refs.items() if v is not None}
            for name in sorted(set(final) | set(self._refs)):
                if name in res.bad_refs:
                    continue
                if final.get(name) != self._refs.get(name):
                    problems.append(StoreProblem(
                        None, f"ref {name!r} is {self._refs.get(name)!r} in memory but "
                              f"{final.get(name)!r} in {LOG_NAME}"))
            return problems

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        state = "closed" if self._closed else f"{len(self._index)} nodes"
        return f"<FileNodeStore {self.path!r} {mode}, {state}>"
