"""Git's pack format (pack v2 with index v2), written in one go.

Why ours and not dulwich's pack writer: a commit writes a few hundred small objects whose
bodies are already in memory and whose ids we already computed; dulwich's writer wants
object instances and recomputes ids, and it offers no per-object choice of zlib level
(incompressible prolly nodes are stored at level 0, which halves commit time). The output
is checked by ``git fsck``, ``git verify-pack`` and ``git gc`` in the tests.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib

from .._fs import fsync_dir
from .objects import TYPE_NUM

_sha1 = hashlib.sha1


#: sampled bytes, and how many distinct values among them mark data as incompressible
_SAMPLE = 256
_DISTINCT_INCOMPRESSIBLE = 128


def zlib_level(body: bytes, default: int = 1) -> int:
    """The zlib level to store ``body`` at: 0 (stored, ~20x cheaper) for data that looks
    incompressible — more than half of the 256 possible byte values among its first 256
    bytes, as random keys, hashes and packed floats have (text and repetitive data have
    far fewer) — else ``default``. The check costs one ``set()`` over 256 bytes."""
    if len(body) >= _SAMPLE and len(set(body[:_SAMPLE])) > _DISTINCT_INCOMPRESSIBLE:
        return 0
    return default


def object_header(kind: bytes, size: int) -> bytes:
    """The header of a whole (not deltified) object of ``kind`` and ``size`` in a pack."""
    c = (TYPE_NUM[kind] << 4) | (size & 15)
    size >>= 4
    hdr = bytearray()
    while size:
        hdr.append(c | 0x80)
        c = size & 0x7F
        size >>= 7
    hdr.append(c)
    return bytes(hdr)


def index_v2(entries: list[tuple[bytes, int, int]], pack_sha: bytes) -> bytes:
    """The bytes of a pack index v2 for ``entries`` ((20-byte id, CRC-32 of the packed
    object, offset)) of the pack whose trailer is ``pack_sha``. Sorts ``entries``."""
    entries.sort()
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
    return idx_body + _sha1(idx_body).digest()


def _write_file(path: str, data: bytes) -> None:
    """Create ``path`` (read-only mode, as Git makes pack files) holding ``data``, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_pack(pack_dir: str, objects: list[tuple], compression: int = 1) -> str | None:
    """Write ``objects`` ((kind, 20-byte id, body) triples, or (kind, id, body, zlib
    level) to override ``compression`` for one object) as one pack + index v2 in
    ``pack_dir``, durably. Returns the pack's base path (None when nothing to write).
    Everything is built in memory (one pass, no re-read): for commits; large writes use
    :class:`prollytree.git.packstream.PackStream`."""
    if not objects:
        return None
    os.makedirs(pack_dir, exist_ok=True)
    chunks = [b"PACK", struct.pack(">II", 2, len(objects))]
    offset = 12
    entries = []  # (raw sha, crc, offset)
    compress = zlib.compress
    crc32 = zlib.crc32
    header = object_header
    for obj in objects:
        kind, sha, body = obj[0], obj[1], obj[2]
        hdr = header(kind, len(body))
        z = compress(body, obj[3] if len(obj) > 3 else zlib_level(body, compression))
        entries.append((sha, crc32(z, crc32(hdr)), offset))
        chunks.append(hdr)
        chunks.append(z)
        offset += len(hdr) + len(z)
    h = _sha1()
    for c in chunks:
        h.update(c)
    pack_sha = h.digest()
    chunks.append(pack_sha)
    idx_body = index_v2(entries, pack_sha)
    base = os.path.join(pack_dir, "pack-" + pack_sha.hex())
    if os.path.exists(base + ".idx") and os.path.exists(base + ".pack"):
        return base  # the very same objects are already packed
    for suffix, data in ((".pack", b"".join(chunks)), (".idx", idx_body)):
        tmp = f"{base}{suffix}.tmp{os.getpid()}"
        _write_file(tmp, data)
        os.replace(tmp, base + suffix)  # .pack first: readers need the .idx to see it
    fsync_dir(pack_dir, required=False)
    return base


_KIND = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}


def pack_object_ids(idx_path: str) -> list[bytes]:
    """The 20-byte ids of the objects a pack index (version 2, as Git and
    :func:`write_pack` write) lists. ValueError for another format."""
    with open(idx_path, "rb") as f:
        head = f.read(8 + 1024)
        if len(head) < 8 + 1024 or head[:4] != b"\xfftOc" or head[4:8] != b"\0\0\0\2":
            raise ValueError(f"{idx_path} is not a version 2 pack index")
        (count,) = struct.unpack_from(">I", head, 8 + 255 * 4)
        ids = f.read(20 * count)
    if len(ids) != 20 * count:
        raise ValueError(f"{idx_path} is truncated")
    return [ids[i:i + 20] for i in range(0, len(ids), 20)]


def merge_small_packs(pack_dir: str, read_raw, keep_largest: int = 8,
                      max_small_bytes: int = 64 << 20, tmp_dir: str | None = None) -> int:
    """Consolidate the pack files of ``pack_dir`` other than the ``keep_largest``
    largest into one new pack (written durably first), then delete them: lookups scan
    packs in turn, so one small pack per commit slows every read down over thousands of
    commits. Only packs smaller than ``max_small_bytes`` each are merged, so the cost is
    bounded by the small packs' size, never the repository's, and a big pack (a large
    value's, see :mod:`.packstream`) is never rewritten. Objects are read straight from
    the packs (``read_raw(id)`` -> ``(type number, bytes)``, the repository's object
    store, for deltified ones) and streamed into the new pack, so memory stays bounded.
    ``tmp_dir``: where the new pack is written until complete (default: the
    repository's ``prollytree`` directory when it exists, else ``pack_dir``). Safe with
    concurrent readers (a pack disappears only after its objects are in the new one;
    Git and dulwich rescan). Returns how many packs were merged."""
    from .packstream import PackStream, remove_stale

    packs = []
    for name in os.listdir(pack_dir):
        base = os.path.join(pack_dir, name[:-5])
        if (name.startswith("pack-") and name.endswith(".pack")
                and os.path.exists(base + ".idx") and not os.path.exists(base + ".keep")):
            try:
                packs.append((os.path.getsize(base + ".pack"), base))
            except FileNotFoundError:
                continue
    packs.sort()
    small = [b for size, b in packs[:max(0, len(packs) - keep_largest)]
             if size < max_small_bytes]
    if len(small) < 2:
        return 0
    if tmp_dir is None:
        state = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(pack_dir))),
                             "prollytree")
        tmp_dir = state if os.path.isdir(state) else pack_dir
    remove_stale(tmp_dir, pack_dir)
    merged = []
    stream = PackStream(pack_dir, tmp_dir)
    try:
        for base in small:
            try:
                p = _Pack(base)
                for sha, off in p.entries():
                    got = p.read(off)
                    if got is None:            # a delta (after git gc): resolve it
                        got = read_raw(sha)
                    stream.add(_KIND[got[0]], sha, got[1])
            except (OSError, KeyError, ValueError):
                continue   # another writer merged or removed it meanwhile: leave it
            merged.append(base)
        if len(merged) < 2:
            stream.abort()
            return 0
        stream.finish()
    except BaseException:
        stream.abort()
        raise
    for base in merged:
        for suffix in (".idx", ".pack"):   # the index first: a pack without one is unseen
            try:
                os.unlink(base + suffix)
            except FileNotFoundError:
                pass
    fsync_dir(pack_dir, required=False)
    return len(merged)


class _Pack:
    """One pack and its index v2, memory-mapped (a deleted pack stays readable while
    mapped: Linux keeps the file's pages until the mapping goes)."""

    __slots__ = ("idx", "pack", "count", "fan", "names_at", "crc_at", "off_at", "large_at")

    def __init__(self, base: str) -> None:
        import mmap
        with open(base + ".idx", "rb") as f:
            idx = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if len(idx) < 8 + 1024 or idx[:8] != b"\xfftOc\0\0\0\2":
            raise ValueError(f"{base}.idx is not a version 2 pack index")
        with open(base + ".pack", "rb") as f:
            self.pack = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.idx = idx
        self.fan = struct.unpack_from(">256I", idx, 8)
        self.count = n = self.fan[255]
        self.names_at = 8 + 1024
        self.crc_at = self.names_at + 20 * n
        self.off_at = self.crc_at + 4 * n
        self.large_at = self.off_at + 4 * n
        if len(idx) < self.large_at + 40:
            raise ValueError(f"{base}.idx is truncated")

    def entries(self):
        """(20-byte id, offset) of every object of the pack, in index order."""
        idx = self.idx
        for i in range(self.count):
            p = self.names_at + 20 * i
            (off,) = struct.unpack_from(">I", idx, self.off_at + 4 * i)
            if off & 0x80000000:
                (off,) = struct.unpack_from(">Q", idx, self.large_at + 8 * (off & 0x7FFFFFFF))
            yield idx[p:p + 20], off

    def find(self, sha: bytes) -> int:
        """Offset of object ``sha`` in the pack, -1 when the pack lacks it."""
        first = sha[0]
        lo = self.fan[first - 1] if first else 0
        hi = self.fan[first]
        idx, at = self.idx, self.names_at
        while lo < hi:
            mid = (lo + hi) >> 1
            p = at + 20 * mid
            name = idx[p:p + 20]
            if name < sha:
                lo = mid + 1
            elif name > sha:
                hi = mid
            else:
                (off,) = struct.unpack_from(">I", idx, self.off_at + 4 * mid)
                if off & 0x80000000:
                    (off,) = struct.unpack_from(
                        ">Q", idx, self.large_at + 8 * (off & 0x7FFFFFFF))
                return off
        return -1

    def read(self, off: int) -> tuple[int, bytes] | None:
        """(type number, body) of the whole (not deltified) object at ``off``; None for
        a delta (the caller's general reader resolves it). ValueError when damaged."""
        pack = self.pack
        c = pack[off]
        kind = (c >> 4) & 7
        size = c & 15
        shift = 4
        pos = off + 1
        while c & 0x80:
            c = pack[pos]
            pos += 1
            size |= (c & 0x7F) << shift
            shift += 7
        if kind not in _KIND:
            return None
        # a zlib stream is at most 5 bytes per 16 KiB block + 11 longer than its data
        end = pos + size + 5 * (size // 16000 + 1) + 16
        d = zlib.decompressobj()
        try:
            body = d.decompress(pack[pos:end], size)
            if not d.eof:
                body += d.decompress(d.unconsumed_tail)
        except zlib.error as e:
            raise ValueError(f"damaged object at offset {off}: {e}") from e
        if not d.eof:
            return None   # longer than our bound (never written so): the general reader
        if len(body) != size:
            raise ValueError(f"damaged object at offset {off}: wrong size")
        return kind, body


class PackReader:
    """Fast reads of whole objects from the packs of one ``objects/pack`` directory: a
    lookup is a fan-out step and a binary search in each memory-mapped index, a read one
    ``zlib`` call (dulwich's general reader spends ~5x longer per object). Deltified
    objects (after ``git gc``) and loose objects are not read here: :meth:`get` returns
    None for them and the caller asks its general reader. New packs are seen after a
    miss (:meth:`refresh`). Not thread-safe for refresh; callers hold their own lock."""

    def __init__(self, pack_dir: str) -> None:
        self.pack_dir = pack_dir
        self._packs: dict[str, _Pack] = {}
        self._order: list[_Pack] = []
        self._listing: tuple | None = None

    def refresh(self) -> bool:
        """Re-list the directory; True when it changed."""
        try:
            st = os.stat(self.pack_dir)
            names = os.listdir(self.pack_dir)
        except OSError:
            return False
        key = (st.st_mtime_ns, len(names))
        if key == self._listing:
            return False
        bases = {n[:-4] for n in names if n.endswith(".idx")} & {
            n[:-5] for n in names if n.endswith(".pack")}
        packs = {}
        for b in bases:
            p = self._packs.get(b)
            if p is None:
                try:
                    p = _Pack(os.path.join(self.pack_dir, b))
                except (OSError, ValueError):
                    continue
            packs[b] = p
        self._packs = packs
        # largest first: the bulk of a dataset is in its biggest pack
        self._order = sorted(packs.values(), key=lambda p: -p.count)
        self._listing = key
        return True

    def close(self) -> None:
        """Drop the mappings (the reader refreshes on its next use)."""
        self._packs, self._order, self._listing = {}, [], None

    def contains(self, sha: bytes) -> bool:
        """Whether a pack holds object ``sha`` (20 bytes): index lookups only."""
        for attempt in (0, 1):
            for p in self._order:
                if p.find(sha) >= 0:
                    return True
            if attempt or not self.refresh():
                return False
        return False

    def get(self, sha: bytes) -> tuple[int, bytes] | None:
        """(type number, body) of object ``sha`` (20 bytes) if a pack holds it whole;
        None otherwise (absent, loose or deltified). ValueError when damaged."""
        for attempt in (0, 1):
            for p in self._order:
                off = p.find(sha)
                if off >= 0:
                    return p.read(off)
            if attempt or not self.refresh():
                return None
        return None
