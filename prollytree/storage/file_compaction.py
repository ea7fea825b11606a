"""Compaction of the file store: rewriting the log without the nodes nobody needs.

:class:`FileCompaction` is a mixin of :class:`~prollytree.storage.file.FileNodeStore`:
``remove()`` compacts at once; ``enable_auto_compaction()`` runs it in a background thread
when garbage passes a share of the log. Both copy the live records to ``nodes.log.compact``
and rename it over the log, so a crash leaves the old log or the complete new one.
"""

from __future__ import annotations

import os
import threading
import time
from hashlib import sha256
from typing import Callable, Iterable

from xxhash import xxh3_64_intdigest, xxh32_intdigest

from .._fs import fsync_dir, unlink_quietly
from ..errors import CorruptNodeError, StoreError
from .base import ADDRESS_SIZE
from .checks import check_address
from .file_format import (
    COMPACT_NAME, HEADER_SIZE, LOG_NAME, NODE_PREFIX, REC_FIXED, REC_MAGIC, REC_NODE,
    REC_REF_SET, U32, WRITE_CHUNK, encode_record, fdatasync, header_bytes, pwrite_all,
)

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


class FileCompaction:
    """Compaction methods of the file store (a mixin: the state is the store's)."""

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
            unlink_quietly(tmp)
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
            head = REC_FIXED.pack(REC_MAGIC, REC_NODE, ADDRESS_SIZE, len(data),
                                   xxh3_64_intdigest(data)) + address
            buf += head
            buf += U32.pack(xxh32_intdigest(head))
            new_index[address] = ((pos + len(buf)) << 32) | len(data)
            buf += data
            if len(buf) >= WRITE_CHUNK:
                if stop is not None and stop.is_set():
                    raise _Cancelled()
                pwrite_all(fd, buf, pos)
                pos += len(buf)
                buf = bytearray()
        pwrite_all(fd, buf, pos)
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
            buf = b"".join(encode_record(REC_REF_SET, name.encode("utf-8"), self._refs[name])
                           for name in sorted(self._refs))
            pwrite_all(fd, buf, pos)
            pos += len(buf)
            pwrite_all(fd, header_bytes(log_id, pos), 0)
            fdatasync(fd)
            os.replace(tmp, self._log_path)
        except BaseException:
            os.close(fd)
            unlink_quietly(tmp)
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
        garbage = sum(NODE_PREFIX + (e & 0xFFFFFFFF) for a, e in snapshot.items()
                      if a not in live)
        self._reclaimable = end - HEADER_SIZE - sum(
            NODE_PREFIX + (snapshot[a] & 0xFFFFFFFF) for a in live)
        if garbage < share * (end - HEADER_SIZE):
            return
        fd, log_id, new_index, pos = self._copy_live(
            sorted((snapshot[a], a) for a in live), self._stop)
        with self._mutex:
            if self._closed or self._lost or self._damaged or self._bad_refs:
                os.close(fd)
                unlink_quietly(os.path.join(self.path, COMPACT_NAME))
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
