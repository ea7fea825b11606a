"""The file store's on-disk format: log header, records and index checkpoint.

Constants and encoders shared by :mod:`prollytree.storage.file` (the store) and
:mod:`prollytree.storage.file_compaction` (rewriting the log). The format is described in
``docs/storage.md``; golden tests pin it (``tests/storage/test_file_store.py``).
"""

from __future__ import annotations

import os
import struct

from xxhash import xxh3_64_intdigest, xxh32_intdigest

from .base import ADDRESS_SIZE

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
LOG_HEAD = struct.Struct("<8sI16s")           # magic, version, log id
U32 = struct.Struct("<I")
SLOT = struct.Struct("<QQ")                   # seq, durable_end
SLOT_OFFSETS = (512, 1024)

# -- records ----------------------------------------------------------------------------
# u8 magic | u8 type | u16 key_len | u32 value_len | u64 xxh3_64(value) | key |
# u32 xxh32(everything before it) | value
REC_MAGIC = 0xB5
REC_FIXED = struct.Struct("<BBHIQ")
FIXED_SIZE = REC_FIXED.size                       # 16
REC_NODE, REC_REF_SET, REC_REF_DEL = 1, 2, 3
NODE_PREFIX = FIXED_SIZE + ADDRESS_SIZE + 4       # bytes before a node's value: 52
MAX_VALUE = 0xFFFFFFFF

# -- index checkpoint -------------------------------------------------------------------
IDX_MAGIC = b"PRLYIDX\x00"
IDX_HEAD = struct.Struct("<8sI16sQQI")        # magic, version, log id, covered end, nodes, refs
IDX_NODE = struct.Struct("<32sQI")            # address, value offset, value length
IDX_REF = struct.Struct("<HI")                # name length, value length
U64 = struct.Struct("<Q")

SCAN_CHUNK = 4 << 20
WRITE_CHUNK = 4 << 20
# Reads past the mapped part of the log use pread; remap once this much is unmapped.
REMAP_SLACK = 32 << 20
# flush() rewrites the index checkpoint once the unindexed tail of the log is this large,
# so that reopening after a crash never has to scan more than about this much.
INDEX_TAIL = 64 << 20

fdatasync = getattr(os, "fdatasync", os.fsync)


def encode_record(rtype: int, key: bytes, value: bytes) -> bytes:
    head = REC_FIXED.pack(REC_MAGIC, rtype, len(key), len(value), xxh3_64_intdigest(value)) + key
    return head + U32.pack(xxh32_intdigest(head)) + value


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def slot_bytes(log_id: bytes, seq: int, end: int) -> bytes:
    body = SLOT.pack(seq, end)
    return body + U32.pack(xxh32_intdigest(log_id + body))


def header_bytes(log_id: bytes, durable_end: int) -> bytes:
    fixed = LOG_HEAD.pack(LOG_MAGIC, FORMAT_VERSION, log_id)
    head = bytearray(HEADER_SIZE)
    head[0:32] = fixed + U32.pack(xxh32_intdigest(fixed))
    # Watermark number ``seq`` always lives in slot ``seq % 2``: the next one (2) then goes
    # to the other slot, never overwriting the newest valid watermark.
    head[SLOT_OFFSETS[1]:SLOT_OFFSETS[1] + 20] = slot_bytes(log_id, 1, durable_end)
    return bytes(head)


class ChunkReader:
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
            want = min(max(n, SCAN_CHUNK), max(self.end - pos, 0))
            self.buf = os.pread(self.fd, want, pos) if want > 0 else b""
            self.base = pos
            off = 0
        return self.buf[off:off + n]
