"""Large values: content-defined chunks in the node store, an envelope in the leaf.

A value longer than the tree's threshold (:data:`DEFAULT_THRESHOLD`, 64 KiB) is cut into
chunks by :mod:`.cdc` (FastCDC, 16/64/256 KiB); each chunk is stored in the tree's node
store under the SHA-256 of its bytes, so equal chunks are stored once across keys and
versions, and the leaf holds a small :class:`~.codec.Envelope` instead of the value
(marked as such by the leaf's envelope bitmap, see ``docs/format.md``):

    envelope:    [1, length, digest, level, addresses, sizes]
    index blob:  [level, addresses, sizes]
    data chunk:  the chunk's bytes as one msgpack bin (so every stored object is msgpack:
                 garbage collection recognises a dead chunk as ours)

``length`` is the value's size, ``digest`` the SHA-256 of the concatenated addresses of
all its data chunks in order (which binds the value's content: one SHA-256 pass over the
value gives both the chunk addresses and the digest), ``addresses`` the concatenated
32-byte addresses of the entries below (``bin``) and ``sizes`` the value bytes under each.
At level 0 the entries are data chunks; above, they are index blobs (stored like chunks)
one level down. Chunk lists longer than :data:`INLINE` entries are grouped into index
blobs, cut after an entry whose address's first two bytes are below :data:`_CUT` (a
content rule: an edit changes only the groups around it) or at :data:`GROUP_MAX`
entries, until at most :data:`INLINE` remain; so an envelope stays under ~2.5 KB even
for a 4 GiB value. Everything is a function of the value's bytes: the same value gives
the same envelope, and root hashes stay history independent.

Costs: writing is one chunking pass and one SHA-256 pass over the value, storing only
chunks the store lacks is the store's business (content addressed). Reading a value
reads its chunks; :class:`ValueReader` reads one chunk at a time (seek: O(log chunks)).
"""

from __future__ import annotations

import hashlib
import io
from bisect import bisect_right
from itertools import accumulate
from typing import Callable, Iterable, Iterator

import msgpack

from ..errors import CorruptNodeError, MissingNodeError
from . import cdc
from .codec import Envelope, _bin_header, is_leaf_bytes

#: values longer than this many bytes are chunked (a single FastCDC chunk is 16-256 KiB,
#: so smaller values would gain no dedup; larger ones would make large leaves)
DEFAULT_THRESHOLD = 64 * 1024
#: at most this many entries are listed in the envelope itself
INLINE = 64
#: index blobs hold at most this many entries
GROUP_MAX = 1024
#: an index group ends after an entry whose address starts below this (1 in 256)
_CUT = 256
#: chunks written per put_many call (bytes)
_BATCH = 4 * 1024 * 1024
ENVELOPE_VERSION = 1

_sha256 = hashlib.sha256
_packb = msgpack.Packer(use_bin_type=True).pack

Get = Callable[[bytes], "bytes | None"]

__all__ = ["DEFAULT_THRESHOLD", "Envelope", "ValueInfo", "ValueReader", "write_value",
           "read_value", "open_value", "value_info", "chunk_refs", "matches",
           "children", "check_value"]


class ValueInfo:
    """A decoded envelope: ``length``, ``digest``, ``level``, ``addresses`` (list of
    32-byte addresses) and ``sizes`` (list of ints) of its top entries."""

    __slots__ = ("length", "digest", "level", "addresses", "sizes")

    def __init__(self, length: int, digest: bytes, level: int, addresses: list,
                 sizes: list) -> None:
        self.length, self.digest, self.level = length, digest, level
        self.addresses, self.sizes = addresses, sizes


def _split_addresses(blob: bytes) -> list[bytes]:
    return [blob[i:i + 32] for i in range(0, len(blob), 32)]


def value_info(envelope: bytes) -> ValueInfo:
    """Decode an envelope; raises ValueError when it is malformed."""
    try:
        obj = msgpack.unpackb(envelope)
    except Exception as e:  # msgpack raises many types
        raise ValueError(f"malformed envelope ({e})") from None
    if (type(obj) is not list or len(obj) != 6 or obj[0] != ENVELOPE_VERSION
            or type(obj[1]) is not int or type(obj[2]) is not bytes or len(obj[2]) != 32
            or type(obj[3]) is not int or not 0 <= obj[3] < 16
            or type(obj[4]) is not bytes or len(obj[4]) % 32 or type(obj[5]) is not list
            or len(obj[5]) != len(obj[4]) // 32 or sum(obj[5]) != obj[1]):
        raise ValueError("malformed envelope")
    return ValueInfo(obj[1], obj[2], obj[3], _split_addresses(obj[4]), obj[5])


def _index(blob: bytes) -> tuple[int, list, list]:
    obj = msgpack.unpackb(blob)
    if (type(obj) is not list or len(obj) != 3 or type(obj[0]) is not int
            or type(obj[1]) is not bytes or len(obj[1]) % 32 or type(obj[2]) is not list
            or len(obj[2]) != len(obj[1]) // 32 or not obj[2]):
        raise ValueError("malformed chunk index")
    return obj[0], _split_addresses(obj[1]), obj[2]


def _group(entries: list) -> list[list]:
    """Cut a list of (address, size) into groups by the content rule."""
    groups, cur = [], []
    for e in entries:
        cur.append(e)
        if len(cur) >= GROUP_MAX or int.from_bytes(e[0][:2], "big") < _CUT:
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


class _Writer:
    """Stores chunks in batches (each distinct address once per batch; with ``has``,
    none the store already holds)."""

    def __init__(self, put_many: Callable[[list], object],
                 has: Callable[[bytes], bool] | None = None, batch: int = 0) -> None:
        self.put_many = put_many
        self.has = has
        self.limit = batch or _BATCH
        self.batch: dict[bytes, bytes] = {}
        self.size = 0

    def add(self, addr: bytes, data: bytes) -> None:
        if addr not in self.batch and (self.has is None or not self.has(addr)):
            self.batch[addr] = data
            self.size += len(data)
            if self.size >= self.limit:
                self.flush()

    def flush(self) -> None:
        if self.batch:
            self.put_many(list(self.batch.items()))
            self.batch = {}
            self.size = 0


def write_chunks(put_many: Callable[[list], object], chunks: Iterable[bytes],
                 has: Callable[[bytes], bool] | None = None, batch: int = 0) -> Envelope:
    """Store ``chunks`` (a value's chunks, in order) and return the value's envelope
    (``has(address)``: skip chunks the store already holds; ``batch``: bytes per
    ``put_many`` call, default 4 MiB)."""
    w = _Writer(put_many, has, batch)
    digest = _sha256()
    entries: list = []
    length = 0
    for chunk in chunks:
        blob = _bin_header(len(chunk)) + chunk  # one copy (chunk may be a memoryview)
        addr = _sha256(blob).digest()
        digest.update(addr)
        w.add(addr, blob)
        entries.append((addr, len(chunk)))
        length += len(chunk)
    level = 0
    while len(entries) > INLINE:
        up = []
        for g in _group(entries):
            blob = _packb([level, b"".join(a for a, _ in g), [s for _, s in g]])
            addr = _sha256(blob).digest()
            w.add(addr, blob)
            up.append((addr, sum(s for _, s in g)))
        entries = up
        level += 1
    w.flush()
    return Envelope(_packb([ENVELOPE_VERSION, length, digest.digest(), level,
                            b"".join(a for a, _ in entries), [s for _, s in entries]]))


def _chunks_of(data) -> Iterator[bytes]:
    view = memoryview(data)
    pos = 0
    for n in cdc.cut(view):
        yield bytes(view[pos:pos + n])
        pos += n


def write_value(put_many: Callable[[list], object], data,
                has: Callable[[bytes], bool] | None = None) -> Envelope:
    """Chunk bytes-like ``data``, store the chunks, return the envelope."""
    return write_chunks(put_many, _chunks_of(data), has)


def write_stream(put_many: Callable[[list], object], read: Callable[[int], bytes],
                 threshold: int = DEFAULT_THRESHOLD,
                 has: Callable[[bytes], bool] | None = None, batch: int = 0) -> bytes:
    """Read a value from ``read(n)`` without holding it: returns the value itself when it
    is at most ``threshold`` bytes, else its envelope (chunks stored)."""
    head = bytearray()
    while len(head) <= threshold:
        block = read(threshold + 1 - len(head))
        if block is None:
            raise ValueError("the stream returned None (non-blocking streams are not supported)")
        if not isinstance(block, (bytes, bytearray, memoryview)):
            raise TypeError(f"read() must return bytes, not {type(block).__name__}")
        if not block:
            return bytes(head)
        head += block
    first = [bytes(head)]

    def joined(n: int) -> bytes:
        if first:
            return first.pop()
        return read(n)

    return write_chunks(put_many, cdc.stream_chunks(joined), has, batch)


def _need(get: Get, addr: bytes) -> bytes:
    data = get(addr)
    if data is None:
        raise MissingNodeError(addr)
    return data


def _chunk_data(blob: bytes, addr: bytes) -> bytes:
    """The chunk bytes of a stored data chunk (a msgpack bin)."""
    t = blob[:1]
    h = 3 if t == b"\xc5" else 5 if t == b"\xc6" else 2 if t == b"\xc4" else 0
    if not h or int.from_bytes(blob[1:h], "big") != len(blob) - h:
        raise CorruptNodeError(addr, "not a data chunk")
    return blob[h:]


def _data_entries(get: Get, info: ValueInfo) -> tuple[list, list]:
    """(addresses, sizes) of every data chunk of a value, in order."""
    addrs, sizes, level = info.addresses, info.sizes, info.level
    while level:
        na, ns = [], []
        for a in addrs:
            lv, xa, xs = _index(_need(get, a))
            if lv != level - 1:
                raise CorruptNodeError(a, "chunk index at the wrong level")
            na += xa
            ns += xs
        addrs, sizes, level = na, ns, level - 1
    return addrs, sizes


def chunk_refs(get: Get, envelope: bytes) -> list[bytes]:
    """Every address a value needs: its index blobs and data chunks."""
    info = value_info(envelope)
    out = list(info.addresses)
    addrs, level = info.addresses, info.level
    while level:
        nxt = []
        for a in addrs:
            nxt += _index(_need(get, a))[1]
        out += nxt
        addrs, level = nxt, level - 1
    return out


class ValueReader(io.RawIOBase):
    """A read-only, seekable binary file over a chunked value: reads one chunk at a time
    (at most one chunk held). ``len()`` is the value's length."""

    def __init__(self, get: Get, envelope: bytes) -> None:
        super().__init__()
        info = value_info(envelope)
        self._get = get
        self._length = info.length
        self._addrs, sizes = _data_entries(get, info)
        self._starts = list(accumulate(sizes, initial=0))
        self._pos = 0
        self._cur = -1
        self._chunk = b""

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise TypeError(f"offset must be an int, not {type(offset).__name__}")
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._length + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def _chunk_at(self, i: int) -> bytes:
        if i != self._cur:
            addr = self._addrs[i]
            data = _chunk_data(_need(self._get, addr), addr)
            if len(data) != self._starts[i + 1] - self._starts[i]:
                raise CorruptNodeError(addr, "chunk size differs from its index")
            self._cur, self._chunk = i, data
        return self._chunk

    def readinto(self, b) -> int:
        self._checkClosed()
        view = memoryview(b).cast("B")
        want = len(view)
        done = 0
        while done < want and self._pos < self._length:
            i = bisect_right(self._starts, self._pos) - 1
            chunk = self._chunk_at(i)
            off = self._pos - self._starts[i]
            n = min(want - done, len(chunk) - off)
            view[done:done + n] = chunk[off:off + n]
            done += n
            self._pos += n
        return done

    def read(self, size: int = -1) -> bytes:
        self._checkClosed()
        if size is None or size < 0:
            size = max(self._length - self._pos, 0)
        size = min(size, max(self._length - self._pos, 0))
        if not size:
            return b""
        i = bisect_right(self._starts, self._pos) - 1
        chunk = self._chunk_at(i)
        off = self._pos - self._starts[i]
        if off + size <= len(chunk):  # within one chunk: no copy into a buffer
            self._pos += size
            return chunk[off:off + size] if (off or size != len(chunk)) else chunk
        buf = bytearray(size)
        n = self.readinto(buf)
        del buf[n:]
        return bytes(buf)

    def readall(self) -> bytes:
        return self.read(-1)


def open_value(get: Get, value: bytes) -> io.RawIOBase:
    """A read-only binary file over a leaf value: a :class:`ValueReader` for an
    envelope, a BytesIO (read-only use) for an inline value."""
    if type(value) is Envelope:
        return ValueReader(get, value)
    return io.BytesIO(value)


def resolve_items(get: Get, pairs: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """``pairs`` with each chunked value (envelope) read in full."""
    for k, v in pairs:
        yield k, (read_value(get, v) if type(v) is Envelope else v)


def read_value(get: Get, value: bytes) -> bytes:
    """The bytes a leaf value stands for (an envelope's chunks joined; any other value
    as is)."""
    if type(value) is not Envelope:
        return value
    info = value_info(value)
    addrs, sizes = _data_entries(get, info)
    out = b"".join(_chunk_data(_need(get, a), a) for a in addrs)
    if len(out) != info.length:
        raise CorruptNodeError(_sha256(value).digest(), "chunks do not add up to the value's length")
    return out


def matches(envelope: bytes, value: bytes) -> bool:
    """Whether ``value`` is the value ``envelope`` stands for (length and digest; one
    chunking and SHA-256 pass, nothing read from a store)."""
    info = value_info(envelope)
    if len(value) != info.length:
        return False
    digest = _sha256()
    for chunk in _chunks_of(value):
        digest.update(_sha256(_bin_header(len(chunk)) + chunk).digest())
    return digest.digest() == info.digest


def usage(get: Get, envelopes: Iterable[bytes]) -> dict[str, int]:
    """What chunking of ``envelopes`` stores: ``chunked_values``, ``value_bytes`` (their
    total length), ``chunks`` and ``chunk_bytes`` (distinct data chunks and their size)
    and ``dedup_saved_bytes`` (value bytes stored once thanks to shared chunks). Reads
    chunk indexes only."""
    sizes: dict[bytes, int] = {}
    n = total = 0
    for env in envelopes:
        info = value_info(env)
        n += 1
        total += info.length
        addrs, lens = _data_entries(get, info)
        sizes.update(zip(addrs, lens))
    stored = sum(sizes.values())
    return {"chunked_values": n, "value_bytes": total, "chunks": len(sizes),
            "chunk_bytes": stored, "dedup_saved_bytes": total - stored}


def leaf_refs(data: bytes) -> list[bytes]:
    """Top-level addresses named by the envelopes of encoded leaf ``data``."""
    from .codec import decode  # a leaf decodes in place: cheap

    leaf = decode(data)
    env = getattr(leaf, "env", None)
    if env is None:
        return []
    out: list = []
    for v in leaf.vals:
        if type(v) is Envelope:
            try:
                out += value_info(v).addresses
            except ValueError:
                pass  # damage: fsck reports it
    return out


def children(data: bytes) -> list[bytes]:
    """Addresses named by any stored object: an internal node's children, a leaf's
    envelopes' top entries, an index blob's entries; none for a data chunk. Used by
    walkers that only see bytes (a data chunk that happens to parse as a node or index
    only keeps more alive, never less)."""
    from .codec import decode

    if is_leaf_bytes(data):
        try:
            return leaf_refs(data)
        except (CorruptNodeError, ValueError):
            return []
    try:
        return list(decode(data).vals)
    except (CorruptNodeError, ValueError):
        pass
    try:
        return _index(data)[1]
    except Exception:  # a data chunk: any bytes
        return []


def check_value(get: Get, envelope: bytes) -> tuple[list[bytes], list[tuple[bytes, str]]]:
    """Check a chunked value in full: (addresses visited, [(address, problem)]). Each
    chunk must be present and hash to its address, index blobs must decode with the
    sizes they claim, and the data chunks must add up to the length and digest."""
    problems: list = []
    visited: list = []
    env_addr = _sha256(envelope).digest()
    try:
        info = value_info(envelope)
    except ValueError as e:
        return visited, [(env_addr, str(e))]
    digest = _sha256()
    total = 0
    stack = [(a, s, info.level) for a, s in zip(info.addresses, info.sizes)][::-1]
    while stack:
        addr, size, level = stack.pop()
        visited.append(addr)
        try:
            data = get(addr)
        except Exception as e:  # noqa: BLE001 - store errors are reported as damage
            problems.append((addr, f"unreadable chunk ({e})"))
            continue
        if data is None:
            problems.append((addr, "missing chunk"))
            continue
        if _sha256(data).digest() != addr:
            problems.append((addr, "chunk does not hash to its address"))
            continue
        if level:
            try:
                lv, xa, xs = _index(data)
            except Exception as e:  # noqa: BLE001
                problems.append((addr, f"undecodable chunk index ({e})"))
                continue
            if lv != level - 1 or sum(xs) != size:
                problems.append((addr, "chunk index does not match its parent"))
                continue
            stack += [(a, s, lv) for a, s in zip(xa, xs)][::-1]
        else:
            try:
                n = len(_chunk_data(data, addr))
            except CorruptNodeError:
                problems.append((addr, "not a data chunk"))
                continue
            if n != size:
                problems.append((addr, "chunk size differs from its index"))
            digest.update(addr)
            total += n
    if not problems and (total != info.length or digest.digest() != info.digest):
        problems.append((env_addr, "chunks do not match the envelope's length and digest"))
    return visited, problems
