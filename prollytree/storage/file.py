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
import time
from hashlib import sha256
from typing import Callable, Iterable, Iterator, Mapping

from xxhash import xxh3_64_intdigest, xxh32_intdigest

from ..errors import CorruptNodeError, ReadOnlyError, StoreError
from .base import ADDRESS_SIZE, ANY
from .checks import (
    StoreProblem, check_address, check_expected, check_items, check_ref_name, check_ref_value,
)
from .._fs import fsync_dir
from .locking import LockedDirectoryStore

__all__ = ["FileNodeStore"]

LOG_NAME = "nodes.log"
INDEX_NAME = "nodes.idx"
COMPACT_NAME = "nodes.log.compact"

FORMAT_VERSION = 1

# -- log header -------------------------------------------------------------------------
# [0:32]   magic, version, log id, xxh32 of those 28 bytes
# [512:532]  watermark slot 0 }  seq, durable_end, xxh32(log id + seq + end);
# [1024:1044] watermark slot 1 }  two slots in different sectors, written alternately,
#                                 so a torn slot write leaves the other one intact.
HEADER_SIZE = 4096
LOG_MAGIC = b"PRLYLOG\x00"
_LOG_HEAD = struct.Struct("<8sI16s")           # magic, version, log id
_U32 = struct.Struct("<I")
_SLOT = struct.Struct("<QQ")                   # seq, durable_end
_SLOT_OFFSETS = (512, 1024)

# -- records ----------------------------------------------------------------------------
# u8 magic | u8 type | u16 key_len | u32 value_len | u64 xxh3_64(value) | key |
# u32 xxh32(everything before it) | value
REC_MAGIC = 0xB5
_REC_FIXED = struct.Struct("<BBHIQ")
_FIXED = _REC_FIXED.size                       # 16
REC_NODE, REC_REF_SET, REC_REF_DEL = 1, 2, 3
_NODE_PREFIX = _FIXED + ADDRESS_SIZE + 4       # bytes before a node's value: 52
MAX_VALUE = 0xFFFFFFFF

# -- index checkpoint -------------------------------------------------------------------
IDX_MAGIC = b"PRLYIDX\x00"
_IDX_HEAD = struct.Struct("<8sI16sQQI")        # magic, version, log id, covered end, nodes, refs
_IDX_NODE = struct.Struct("<32sQI")            # address, value offset, value length
_IDX_REF = struct.Struct("<HI")                # name length, value length
_U64 = struct.Struct("<Q")

_SCAN_CHUNK = 4 << 20
_WRITE_CHUNK = 4 << 20
# Reads past the mapped part of the log use pread; remap once this much is unmapped.
_REMAP_SLACK = 32 << 20
# flush() rewrites the index checkpoint once the unindexed tail of the log is this large,
# so that reopening after a crash never has to scan more than about this much.
_INDEX_TAIL = 64 << 20

_fdatasync = getattr(os, "fdatasync", os.fsync)

#: Automatic compaction (see FileNodeStore.enable_auto_compaction) runs when unreachable
#: nodes are at least this share of the log...
AUTO_COMPACT_SHARE = 0.5
#: ...and is not even checked before the log is this large.
AUTO_COMPACT_MIN_BYTES = 64 << 20


#: After an automatic compaction the old log stays open (unlinked) this long, and nodes
#: it had but the new one dropped are still served from it, so that a reader walking an
#: older version when the compaction happened is not cut off. Released by the first
#: flush after that, by the next compaction, or by close().
RETIRED_SECONDS = 30.0


class _Cancelled(Exception):
    """A background compaction was asked to stop (the store is closing)."""


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _encode_record(rtype: int, key: bytes, value: bytes) -> bytes:
    head = _REC_FIXED.pack(REC_MAGIC, rtype, len(key), len(value), xxh3_64_intdigest(value)) + key
    return head + _U32.pack(xxh32_intdigest(head)) + value


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _slot_bytes(log_id: bytes, seq: int, end: int) -> bytes:
    body = _SLOT.pack(seq, end)
    return body + _U32.pack(xxh32_intdigest(log_id + body))


def _header_bytes(log_id: bytes, durable_end: int) -> bytes:
    fixed = _LOG_HEAD.pack(LOG_MAGIC, FORMAT_VERSION, log_id)
    head = bytearray(HEADER_SIZE)
    head[0:32] = fixed + _U32.pack(xxh32_intdigest(fixed))
    # Watermark number ``seq`` always lives in slot ``seq % 2``: the next one (2) then goes
    # to the other slot, never overwriting the newest valid watermark.
    head[_SLOT_OFFSETS[1]:_SLOT_OFFSETS[1] + 20] = _slot_bytes(log_id, 1, durable_end)
    return bytes(head)


class _ChunkReader:
    """Sequential reads of a file through pread, in large chunks.

    Scans use this instead of the mmap because a concurrent writer may truncate a torn
    tail while a reader is scanning: a short pread is just an earlier end of file, while
    touching a truncated page of an mmap kills the process with SIGBUS.
    """

    def __init__(self, fd: int, end: int) -> None:
        self.fd = fd
        self.end = end
        self.base = 0
        self.buf = b""

    def read(self, pos: int, n: int) -> bytes:
        """``n`` bytes at ``pos``, or fewer if the file ends first."""
        off = pos - self.base
        if off < 0 or off + n > len(self.buf):
            want = min(max(n, _SCAN_CHUNK), max(self.end - pos, 0))
            self.buf = os.pread(self.fd, want, pos) if want > 0 else b""
            self.base = pos
            off = 0
        return self.buf[off:off + n]


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


class FileNodeStore(LockedDirectoryStore):
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
                _fdatasync(self._fd)
            elif end < self._durable_end:
                # Flushed data is missing (the file was truncated). Zero-fill up to the
                # watermark instead of appending over it, so the loss stays visible to
                # every later open instead of being silently covered by new records.
                os.ftruncate(self._fd, self._durable_end)
                _fdatasync(self._fd)
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
            _pwrite_all(fd, _header_bytes(os.urandom(16), HEADER_SIZE), 0)
            _fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._log_path)
        fsync_dir(self.path)

    def _read_header(self, size: int) -> tuple[bytes, int, int]:
        head = os.pread(self._fd, HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE:
            raise StoreError(f"{self._log_path} is too short to be a prollytree log "
                             f"({size} bytes)")
        magic, version, log_id = _LOG_HEAD.unpack_from(head, 0)
        if magic != LOG_MAGIC:
            raise StoreError(f"{self._log_path} is not a prollytree log (bad magic)")
        if _U32.unpack_from(head, 28)[0] != xxh32_intdigest(head[:28]):
            raise StoreError(f"{self._log_path}: log header is damaged (checksum mismatch)")
        if version != FORMAT_VERSION:
            raise StoreError(f"{self._log_path}: unsupported log format version {version}")
        best_seq, best_end = 0, HEADER_SIZE
        for off in _SLOT_OFFSETS:
            body = head[off:off + 16]
            if _U32.unpack_from(head, off + 16)[0] == xxh32_intdigest(log_id + body):
                seq, end = _SLOT.unpack(body)
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
        if len(data) < _IDX_HEAD.size + 8:
            return None
        if _U64.unpack_from(data, len(data) - 8)[0] != xxh3_64_intdigest(memoryview(data)[:-8]):
            return None
        magic, version, log_id, covered, n_nodes, n_refs = _IDX_HEAD.unpack_from(data, 0)
        if (magic != IDX_MAGIC or version != FORMAT_VERSION or log_id != self._log_id
                or covered > size or covered < HEADER_SIZE):
            return None
        pos = _IDX_HEAD.size
        end_nodes = pos + n_nodes * _IDX_NODE.size
        if end_nodes > len(data) - 8:
            return None
        try:
            index = {a: (o << 32) | n
                     for a, o, n in _IDX_NODE.iter_unpack(memoryview(data)[pos:end_nodes])}
            pos = end_nodes
            refs = {}
            for _ in range(n_refs):
                nlen, vlen = _IDX_REF.unpack_from(data, pos)
                pos += _IDX_REF.size
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
        reader = _ChunkReader(self._fd, end)
        durable = self._durable_end
        pos = start
        while pos < end:
            head = b""
            head_ok = False
            fixed = reader.read(pos, _FIXED)
            if len(fixed) == _FIXED:
                magic, rtype, klen, vlen, vhash = _REC_FIXED.unpack(fixed)
                if magic == REC_MAGIC and rtype in (REC_NODE, REC_REF_SET, REC_REF_DEL):
                    head = reader.read(pos, _FIXED + klen + 4)
                    head_ok = (len(head) == _FIXED + klen + 4
                               and _U32.unpack_from(head, _FIXED + klen)[0]
                               == xxh32_intdigest(head[:_FIXED + klen]))
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
            key = head[_FIXED:_FIXED + klen]
            vstart = pos + _FIXED + klen + 4
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
    def _resync(reader: _ChunkReader, pos: int, end: int) -> int:
        """Offset of the next record whose header and value checksums hold, or ``end``."""
        while pos < end:
            chunk = reader.read(pos, min(_SCAN_CHUNK, end - pos))
            if not chunk:
                break                              # the file ended early (truncated meanwhile)
            i = chunk.find(bytes((REC_MAGIC,)))
            if i < 0:
                pos += len(chunk)
                continue
            cand = pos + i
            fixed = reader.read(cand, _FIXED)
            if len(fixed) == _FIXED:
                magic, rtype, klen, vlen, vhash = _REC_FIXED.unpack(fixed)
                if rtype in (REC_NODE, REC_REF_SET, REC_REF_DEL):
                    head = reader.read(cand, _FIXED + klen + 4)
                    if (len(head) == _FIXED + klen + 4
                            and _U32.unpack_from(head, _FIXED + klen)[0]
                            == xxh32_intdigest(head[:_FIXED + klen])):
                        value = reader.read(cand + _FIXED + klen + 4, vlen)
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
            _pwrite_all(self._fd, data, off)
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
        if self._end - self._mapped >= _REMAP_SLACK:
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
            pack, u32 = _REC_FIXED.pack, _U32.pack
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
                pos += _NODE_PREFIX
                pending[address] = (pos << 32) | n
                pos += n
                if pos - base >= _WRITE_CHUNK:
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
                    self._append(_encode_record(REC_REF_DEL, raw, b""))
                self._refs.pop(name, None)
            else:
                if value != current or damaged:
                    self._append(_encode_record(REC_REF_SET, raw, value))
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

    def remove(self, addresses: Iterable[bytes]) -> int:
        """Delete nodes by compacting: the live records are copied to a new log, which
        atomically replaces the old one. Costs a rewrite of the whole store, so pass all
        garbage in one call. Refuses (StoreError) on a log with unreadable regions."""
        self._check_writable()
        addresses = [check_address(a) for a in addresses]
        with self._compact_lock:                 # after any background compaction
            with self._mutex:
                self._check_open()
                doomed = {a for a in addresses if a in self._index}
                if not doomed:
                    return 0
                if self._damaged or self._lost or self._bad_refs:
                    raise StoreError(
                        f"{self._log_path} has damaged records; remove() would discard the "
                        f"evidence. Copy the readable nodes to a new store instead (see "
                        f"check())")
                self.flush()
                live = sorted((e, a) for a, e in self._index.items() if a not in doomed)
                fd, log_id, new_index, pos = self._copy_live(live)
                self._finish_compaction(fd, log_id, new_index, pos, set())
                return len(doomed)

    # -- compaction -------------------------------------------------------------------------

    def _copy_live(self, live: list[tuple[int, bytes]], stop: "threading.Event | None" = None
                   ) -> tuple[int, bytes, dict[bytes, int], int]:
        """Copy the nodes ``live`` ((index entry, address), in log order) into a new log
        file ``nodes.log.compact``; returns (its fd, log id, index, end). Reads through
        pread, so it may run without the mutex while other threads read and append."""
        log_id = os.urandom(16)
        tmp = os.path.join(self.path, COMPACT_NAME)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            new_index: dict[bytes, int] = {}
            pos = self._copy_nodes(fd, live, HEADER_SIZE, new_index, stop)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        return fd, log_id, new_index, pos

    def _copy_nodes(self, fd: int, live: list[tuple[int, bytes]], pos: int,
                    new_index: dict[bytes, int], stop: "threading.Event | None") -> int:
        # Re-encode each record from the indexed address and its verified bytes, so that
        # compaction never carries damage (a flipped header bit, a bad value) along.
        buf = bytearray()
        src = self._fd
        for entry, address in live:
            off = entry >> 32
            data = os.pread(src, entry & 0xFFFFFFFF, off)
            if sha256(data).digest() != address:
                raise CorruptNodeError(address, f"its bytes at offset {off} of {LOG_NAME} do "
                                                f"not hash to the address (compaction stopped)")
            head = _REC_FIXED.pack(REC_MAGIC, REC_NODE, ADDRESS_SIZE, len(data),
                                   xxh3_64_intdigest(data)) + address
            buf += head
            buf += _U32.pack(xxh32_intdigest(head))
            new_index[address] = ((pos + len(buf)) << 32) | len(data)
            buf += data
            if len(buf) >= _WRITE_CHUNK:
                if stop is not None and stop.is_set():
                    raise _Cancelled()
                _pwrite_all(fd, buf, pos)
                pos += len(buf)
                buf = bytearray()
        _pwrite_all(fd, buf, pos)
        return pos + len(buf)

    def _finish_compaction(self, fd: int, log_id: bytes, new_index: dict[bytes, int],
                           pos: int, extra: set[bytes], retire: bool = False) -> None:
        """Under the mutex: copy the nodes in ``extra`` (written or reused while the copy
        ran), append the refs, make the new log durable and swap it in (rename: a crash
        at any point leaves either the old log or the complete new one)."""
        tmp = os.path.join(self.path, COMPACT_NAME)
        try:
            more = sorted((self._index[a], a) for a in extra
                          if a in self._index and a not in new_index)
            pos = self._copy_nodes(fd, more, pos, new_index, None)
            buf = b"".join(_encode_record(REC_REF_SET, name.encode("utf-8"), self._refs[name])
                           for name in sorted(self._refs))
            _pwrite_all(fd, buf, pos)
            pos += len(buf)
            _pwrite_all(fd, _header_bytes(log_id, pos), 0)
            _fdatasync(fd)
            os.replace(tmp, self._log_path)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        fsync_dir(self.path)
        # Swap in the new log. Read-only openers keep the old file through their own fd.
        self._release_retired()
        if retire:
            self._retired = (self._fd, self._index, time.monotonic())
        else:
            os.close(self._fd)
        self._fd = fd
        self._log_id = log_id
        self._index = new_index
        self._end = self._synced_end = self._durable_end = pos
        self._slot_seq = 1
        self._watermark_dirty = False
        self._indexed_end = 0
        self._remap()
        self._write_index()
        self._compactions += 1

    def _release_retired(self, older_than: float = 0.0) -> None:
        retired = self._retired
        if retired is not None and time.monotonic() - retired[2] >= older_than:
            self._retired = None
            os.close(retired[0])

    def _read_retired(self, address: bytes) -> bytes | None:
        """A node the last automatic compaction dropped, from the old log (or None)."""
        retired = self._retired
        entry = retired[1].get(address) if retired is not None else None
        if entry is None:
            return None
        data = os.pread(retired[0], entry & 0xFFFFFFFF, entry >> 32)
        return data if sha256(data).digest() == address else None

    def enable_auto_compaction(self, root_refs: Iterable[str],
                               children: Callable[[bytes], tuple[list[bytes], bool]],
                               garbage_share: float | None = None) -> None:
        """Compact automatically, in a background thread, once unreachable nodes make up
        ``garbage_share`` (default :data:`AUTO_COMPACT_SHARE`) of the log. Checked at the
        first flush once the log is past :data:`AUTO_COMPACT_MIN_BYTES`, then each time
        it has doubled since the last check; a check walks the internal nodes only.

        The owner of the store declares what is live: the nodes reachable from the values
        of ``root_refs`` (``children(node bytes)`` returns the node's child addresses and
        whether those children are leaves, which are then not read), plus every
        node written or re-written since. Readers are not blocked while live nodes are
        copied; only the final swap takes the store's mutex; for :data:`RETIRED_SECONDS`
        after it, nodes the compaction dropped are still served (from the old log, kept
        open), so readers walking an older version finish. A crash at any moment loses
        nothing (the new log replaces the old one by an atomic rename). Only a store with
        one owner compacts: while the object is shared (opened twice in this process),
        automatic compaction waits."""
        if garbage_share is None:
            garbage_share = AUTO_COMPACT_SHARE
        if isinstance(garbage_share, bool) or not isinstance(garbage_share, (int, float)):
            raise TypeError(f"garbage_share must be a number, not {type(garbage_share).__name__}")
        if not 0 < garbage_share < 1:
            raise ValueError(f"garbage_share must be between 0 and 1, got {garbage_share!r}")
        with self._mutex:
            self._auto = (tuple(root_refs), children, float(garbage_share))
            # First check at the first flush past the floor: the garbage a log holds when
            # opened is unknown (a process killed before its compaction leaves some).
            self._next_check = max(self._next_check, AUTO_COMPACT_MIN_BYTES, self._end)

    def _maybe_compact(self) -> None:
        """Start a background compaction check if the log grew enough (mutex held)."""
        if (self._auto is None or self._end < self._next_check or self._shares != 1
                or self._closing
                or self.read_only or self._compactor is not None
                or self._damaged or self._lost or self._bad_refs):
            return
        self._next_check = 2 * self._end         # also if this check finds little garbage
        self._stop.clear()
        t = threading.Thread(target=self._auto_compact, name="prollytree-compaction",
                             daemon=True)
        self._compactor = t
        t.start()

    def _auto_compact(self) -> None:
        try:
            with self._compact_lock:
                self._auto_compact_locked()
        except _Cancelled:
            pass
        except Exception as e:  # noqa: BLE001 - a background task must not die loudly
            self.last_compaction_error = f"{type(e).__name__}: {e}"
        finally:
            with self._mutex:
                self._compactor = None

    def _auto_compact_locked(self) -> None:
        root_refs, children, share = self._auto
        with self._mutex:
            if self._closed:
                return
            roots = [self._refs[n] for n in root_refs if n in self._refs]
            snapshot = dict(self._index)
            end = self._end
            # nodes written since the roots were last set, or from now on, stay live
            self._touched = set(self._since_root)
        live: set[bytes] = set()
        stack = [r for r in roots if r in snapshot]
        while stack:                             # reachability, reading through get()
            addr = stack.pop()
            if addr in live:
                continue
            live.add(addr)
            if self._stop.is_set():
                raise _Cancelled()
            data = self.get(addr)
            if data is None:
                raise StoreError(f"node {addr.hex()} is missing: not compacting")
            kids, leaves = children(data)
            for c in kids:
                if c not in snapshot:
                    raise StoreError(f"node {c.hex()} is missing: not compacting")
            if leaves:
                live.update(kids)                # leaves name nothing: not read
            else:
                stack.extend(c for c in kids if c not in live)
        garbage = sum(_NODE_PREFIX + (e & 0xFFFFFFFF) for a, e in snapshot.items()
                      if a not in live)
        self._reclaimable = end - HEADER_SIZE - sum(
            _NODE_PREFIX + (snapshot[a] & 0xFFFFFFFF) for a in live)
        if garbage < share * (end - HEADER_SIZE):
            return
        fd, log_id, new_index, pos = self._copy_live(
            sorted((snapshot[a], a) for a in live), self._stop)
        with self._mutex:
            if self._closed or self._lost or self._damaged or self._bad_refs:
                os.close(fd)
                _unlink_quietly(os.path.join(self.path, COMPACT_NAME))
                return
            # Written since the snapshot, or reused (put again) by a writer: keep.
            extra = {a for a in self._index if a not in snapshot} | self._touched
            self._touched = None
            self._finish_compaction(fd, log_id, new_index, pos, extra, retire=True)
            self._reclaimable = 0
            self._next_check = max(AUTO_COMPACT_MIN_BYTES, 2 * self._end)

    def _stop_compaction(self) -> None:
        """Cancel a background compaction and wait for it (never under the mutex)."""
        t = self._compactor
        if t is not None:
            self._stop.set()
            t.join()

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
            node_bytes = sum(_NODE_PREFIX + (e & 0xFFFFFFFF) for e in self._index.values())
            ref_bytes = sum(_FIXED + len(n.encode("utf-8")) + 4 + len(v)
                            for n, v in self._refs.items())
            dead = max(0, self._end - HEADER_SIZE - node_bytes - ref_bytes)
            if live is not None:
                index = self._index
                reclaimable = dead + sum(_NODE_PREFIX + (e & 0xFFFFFFFF)
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
                _fdatasync(self._fd)
                self._synced_end = self._end
                self._write_watermark()
            if self._end > self._mapped:
                self._remap()
            if (self._end - max(self._indexed_end, HEADER_SIZE) >= _INDEX_TAIL
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
        slot = _SLOT_OFFSETS[self._slot_seq % 2]
        _pwrite_all(self._fd, _slot_bytes(self._log_id, self._slot_seq, self._synced_end), slot)
        self._durable_end = self._synced_end
        self._watermark_dirty = True

    def _write_index(self) -> None:
        """Checkpoint the index so the next open reads it instead of scanning the log.

        Not fsynced: it is a cache validated by its checksum and log id, and it only
        ever covers data that was already fsynced.
        """
        parts = [_IDX_HEAD.pack(IDX_MAGIC, FORMAT_VERSION, self._log_id, self._end,
                                len(self._index), len(self._refs))]
        pack = _IDX_NODE.pack
        parts.extend(pack(a, e >> 32, e & 0xFFFFFFFF) for a, e in self._index.items())
        for name, value in self._refs.items():
            raw = name.encode("utf-8")
            parts.append(_IDX_REF.pack(len(raw), len(value)) + raw + value)
        data = b"".join(parts)
        data += _U64.pack(xxh3_64_intdigest(data))
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
            _fdatasync(self._fd)
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
