"""The staging area: uncommitted inserts and deletes, kept in a crash-safe journal.

Every staged write appends one framed record to ``<state dir>/staging.journal`` with a
single ``os.write`` (under the dataset's shared lock), before the call returns: a record
that made it into the file survives the process being killed (``kill -9``), since the
kernel owns it from then on. (It is not fsynced: staged work is not promised to survive
power loss; committed work is.)

File layout: an 8-byte header (magic ``PSJ1`` + a 32-bit generation, bumped each time the
journal is cleared) then records ``[u32 payload length][u32 crc32][payload]`` where the
payload is ``b"P" + u32 key length + key + value`` (put) or ``b"D" + key`` (delete). A
record cut short or failing its checksum ends the journal: it and anything after it are
ignored (and cut off at the next clear).

Several processes (or store objects) may stage into one dataset: each keeps an in-memory
view and re-reads the file's tail when it grew, or all of it when its generation changed
(someone committed). The commit clears the journal under the exclusive lock, after the
commit is durable; a crash between the two leaves records equal to the new head, which
``status()`` does not show and the next commit drops.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Iterator

from .lock import DatasetLock

MAGIC = b"PSJ1"
HEADER = struct.Struct(">4sI")
FRAME = struct.Struct(">II")
KLEN = struct.Struct(">I")


def encode_record(key: bytes, value: bytes | None) -> bytes:
    if value is None:
        payload = b"D" + key
    else:
        payload = b"P" + KLEN.pack(len(key)) + key + value
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes, start: int = 0) -> tuple[list, int]:
    """(records, end of the last intact record) parsed from ``data[start:]``."""
    out = []
    pos, n = start, len(data)
    while pos + FRAME.size <= n:
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if end > n or length == 0:
            break
        payload = data[pos + FRAME.size:end]
        if zlib.crc32(payload) != crc:
            break
        kind = payload[:1]
        if kind == b"P" and length >= 5:
            (klen,) = KLEN.unpack_from(payload, 1)
            if 5 + klen > length:
                break
            out.append((payload[5:5 + klen], payload[5 + klen:]))
        elif kind == b"D":
            out.append((payload[1:], None))
        else:
            break
        pos = end
    return out, pos


class StagingArea:
    """Staged changes: key -> value (or None for a staged delete).

    ``path`` None keeps them in memory only (the InMemory backend)."""

    def __init__(self, path: str | None, lock: DatasetLock) -> None:
        self.path = path
        self.lock = lock
        self.changes: dict[bytes, bytes | None] = {}
        self._fd: int | None = None
        self._gen = -1
        self._offset = 0
        self._size = -1
        if path is not None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            # header writes need a descriptor without O_APPEND (pwrite would append)
            self._hfd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            if os.fstat(self._fd).st_size < HEADER.size:
                with lock.exclusive():
                    if os.fstat(self._fd).st_size < HEADER.size:
                        self._write_header_locked(0)
            with lock.shared():
                self.sync(force=True)

    # -- reading the journal ------------------------------------------------------------

    def _read_header(self) -> int:
        head = os.pread(self._fd, HEADER.size, 0)
        if len(head) < HEADER.size:
            return -1
        magic, gen = HEADER.unpack(head)
        return gen if magic == MAGIC else -2

    def sync(self, force: bool = False) -> None:
        """Bring the in-memory view up to date with the journal file."""
        fd = self._fd
        if fd is None:
            return
        size = os.fstat(fd).st_size
        gen = self._read_header()
        if not force and size == self._size and gen == self._gen:
            return
        if gen == -1 and size < HEADER.size:
            self.changes = {}
            self._gen, self._offset, self._size = -1, 0, size
            return
        if force or gen != self._gen or size < self._offset:
            self.changes = {}
            self._gen, self._offset = gen, HEADER.size
        if size > self._offset:
            data = os.pread(fd, size - self._offset, self._offset)
            records, end = decode_records(data)
            ch = self.changes
            for k, v in records:
                ch[k] = v
            self._offset += end
        self._size = size

    # -- writing ------------------------------------------------------------------------

    def stage(self, key: bytes, value: bytes | None) -> None:
        """Record one staged put (or delete, ``value`` None), durably against kill -9."""
        if self._fd is not None:
            rec = encode_record(key, value)
            with self.lock.shared():
                os.write(self._fd, rec)
        self.changes[key] = value

    def stage_many(self, items: list[tuple[bytes, bytes | None]]) -> None:
        """Record many staged writes with a single append (one ``os.write``): after a
        ``kill -9`` either all of them are in the journal or, if the write itself was
        cut, a prefix of whole records (a torn record ends the journal)."""
        if not items:
            return
        if self._fd is not None:
            data = b"".join([encode_record(k, v) for k, v in items])
            with self.lock.shared():
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
        ch = self.changes
        for k, v in items:
            ch[k] = v

    def _write_header_locked(self, gen: int) -> None:
        # called under the exclusive lock only
        os.ftruncate(self._fd, 0)
        os.pwrite(self._hfd, HEADER.pack(MAGIC, gen), 0)

    def clear(self) -> None:
        """Drop every staged change (caller holds the exclusive lock)."""
        self.changes = {}
        if self._fd is None:
            return
        gen = (max(self._read_header(), self._gen, 0) + 1) & 0xFFFFFFFF
        self._write_header_locked(gen)
        self._gen, self._offset = gen, HEADER.size
        self._size = HEADER.size

    def bump(self) -> None:
        """Tell other readers that the head moved (caller holds the exclusive lock):
        bump the generation, keeping the staged records."""
        if self._fd is None:
            return
        gen = (max(self._read_header(), self._gen, 0) + 1) & 0xFFFFFFFF
        os.pwrite(self._hfd, HEADER.pack(MAGIC, gen), 0)
        self._gen = gen

    def __len__(self) -> int:
        return len(self.changes)

    def items(self) -> Iterator[tuple[bytes, bytes | None]]:
        return iter(sorted(self.changes.items()))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            os.close(self._hfd)
            self._fd = None
