"""One Git pack written object by object, for large writes (a streamed value).

:func:`prollytree.git.pack.write_pack` builds a pack in memory and writes it in one go:
right for a commit's few hundred objects, wrong for a 1 GiB value (either the value is
held whole, or it lands in one fsynced pack per batch, which later consolidation then
rewrites). A :class:`PackStream` appends each object to one temporary pack file as it
comes (nothing held, no fsync), and :meth:`PackStream.finish` writes the object count
into the header, the SHA-1 trailer (one re-read of the file: the trailer covers the
header, whose count is only known at the end) and the index v2, fsyncs once, and makes
the pack visible atomically: the finished file is hard-linked into ``objects/pack``
first (a ``.pack`` without its ``.idx`` is invisible to Git, dulwich and
:class:`~prollytree.git.pack.PackReader`), then the index is renamed next to it.

**Crashes.** Until then the pack is a ``stream-*.pack.tmp`` file outside ``objects/pack``
(in the caller's ``tmp_dir``, ``.git/prollytree`` for the node store) on which the writer
holds an ``flock``: nothing reads it but its writer, and :func:`remove_stale` (run before
every new stream and when a writable store opens) deletes those whose writer is gone
(the lock is free), plus a finished pack left without its index by a crash between the
two steps above.

**Reads.** The writer's own process may read objects of the open pack
(:meth:`PackStream.read`): content addressing lets a writer skip chunks it already wrote,
and a reader may look at a node before the session ends.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import struct
import threading
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor

from .._fs import fsync_dir
from .objects import TYPE_NUM, git_raw_id
from .pack import _sha1, _write_file, index_v2, object_header, zlib_level

#: suffix of a pack being written (never ``.pack``: Git and dulwich list ``*.pack``)
TMP_SUFFIX = ".pack.tmp"
#: buffered bytes written with one ``writev`` (objects are ~80 KiB chunks or small nodes)
WRITE_BUFFER = 4 << 20
#: bytes read per step when hashing the finished file
HASH_BLOCK = 8 << 20

_STORED_MAX = 0xFFFF
_adler32 = zlib.adler32
_crc32 = zlib.crc32


def stored_zlib(body) -> list:
    """``body`` as a zlib stream of stored (uncompressed) deflate blocks, what
    ``zlib.compress(body, 0)`` makes, as pieces: small headers and views of ``body``
    (no copy; ~10x cheaper than zlib's own level 0, which copies and is slow about it)."""
    view = memoryview(body)
    n = len(view)
    out: list = []
    head = b"\x78\x01"                 # zlib header: deflate, 32 KiB window, level 0
    pos = 0
    while True:
        size = min(_STORED_MAX, n - pos)
        final = pos + size >= n
        out.append(head + struct.pack("<BHH", final, size, size ^ 0xFFFF))
        if size:
            out.append(view[pos:pos + size])
        pos += size
        if final:
            break
        head = b""
    out.append(struct.pack(">I", _adler32(view)))
    return out


def _same_device(a: str, b: str) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def remove_stale(tmp_dir: str, pack_dir: str) -> int:
    """Delete the temporary packs in ``tmp_dir`` whose writer is gone (its ``flock`` is
    free: it was killed, or closed without finishing), and a finished pack in
    ``pack_dir`` that such a writer had linked but not yet indexed. Returns how many
    temporary packs were removed. Safe while other streams are being written."""
    try:
        names = os.listdir(tmp_dir)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not (name.startswith("stream-") and name.endswith(TMP_SUFFIX)):
            continue
        path = os.path.join(tmp_dir, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                       # its writer is alive
            st = os.fstat(fd)
            size = st.st_size
            if size < 12 and time.time() - st.st_mtime < 60:
                continue       # just created, its writer about to lock it: leave it
            trailer = os.pread(fd, 20, size - 20) if size >= 32 else b""
            if len(trailer) == 20:
                # a crash between linking the finished pack and renaming its index
                base = os.path.join(pack_dir, "pack-" + trailer.hex())
                if os.path.exists(base + ".pack") and not os.path.exists(base + ".idx"):
                    try:
                        os.unlink(base + ".pack")
                    except OSError:
                        pass
            for p in (path, path[:-len(TMP_SUFFIX)] + ".idx.tmp"):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
                except OSError:
                    break           # not ours to delete (permissions): leave it
            else:
                removed += 1
        finally:
            os.close(fd)
    return removed


class PackStream:
    """A pack being written: :meth:`add` objects, then :meth:`finish` (or :meth:`abort`).

    The work per object — its Git id (SHA-1) when the caller has none, the zlib stream
    (stored blocks for data that looks incompressible, see
    :func:`~prollytree.git.pack.zlib_level`: no copy), the CRC-32 the index needs, the
    write — runs on one writer thread in batches of 4 MiB (hashlib, zlib and ``pwritev``
    release the GIL), so the caller chunks and hashes the next batch meanwhile; one
    batch is in flight, so memory stays bounded by two batches plus ~80 bytes per object.
    :meth:`finish` re-reads the pack once (SHA-1 trailer), writes the index and fsyncs
    both. Thread-safe."""

    def __init__(self, pack_dir: str, tmp_dir: str | None = None) -> None:
        os.makedirs(pack_dir, exist_ok=True)
        if tmp_dir is not None:
            os.makedirs(tmp_dir, exist_ok=True)
        if tmp_dir is None or not _same_device(tmp_dir, pack_dir):
            tmp_dir = pack_dir    # links need one file system; the suffix hides it there
        self.pack_dir = pack_dir
        stem = os.path.join(tmp_dir, f"stream-{os.getpid()}-{secrets.token_hex(8)}")
        self.path = stem + TMP_SUFFIX
        self._idx_path = stem + ".idx.tmp"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)   # held until finish/abort: "writer alive"
            os.write(fd, b"PACK" + struct.pack(">II", 2, 0))
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        self._fd: int | None = fd
        self._written = 12                    # bytes written (by the writer thread)
        self._queue: list = []                # objects not yet handed to the thread
        self._queued = 0
        #: 20-byte id -> (offset, header length, packed length, type number)
        self._objects: dict[bytes, tuple[int, int, int, int]] = {}
        self._crcs: list[tuple[bytes, int, int]] = []
        #: caller's key -> 20-byte id, for objects added with a key
        self._keys: dict = {}
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="packstream")
        self._inflight: Future | None = None
        #: the writer thread's error: the pack's layout is unknown after it, so the
        #: stream refuses everything but abort
        self._broken: BaseException | None = None

    def __len__(self) -> int:
        with self._lock:
            self._settle()
            return len(self._objects)

    def __contains__(self, sha: object) -> bool:
        with self._lock:
            self._settle()
            return sha in self._objects

    @property
    def size(self) -> int:
        """Bytes of the pack so far (written and queued)."""
        return self._written + self._queued

    def add(self, kind: bytes, sha: bytes | None, body, level: int | None = None,
            key: object = None) -> None:
        """Queue object ``body`` of ``kind`` (b"blob", b"tree", ...) under id ``sha``
        (20 bytes; None: the writer thread computes it) at zlib ``level`` (default: 0
        for incompressible data, else 1). ``key``: remember the id under it (see
        :meth:`id_of`). An object the pack already holds is not written again."""
        with self._lock:
            self._check_open()
            self._queue.append((kind, sha, body, level, key))
            self._queued += len(body)
            if self._queued >= WRITE_BUFFER:
                self._submit()

    def id_of(self, key: object) -> bytes | None:
        """The 20-byte id of the object added under ``key``, None if none was."""
        with self._lock:
            self._settle()
            return self._keys.get(key)

    def keys(self) -> dict:
        """{key: 20-byte id} of every object added with a key (a copy)."""
        with self._lock:
            self._settle()
            return dict(self._keys)

    def read(self, sha: bytes) -> tuple[int, bytes] | None:
        """(type number, body) of object ``sha`` if this pack holds it, else None."""
        with self._lock:
            if self._fd is None:
                return None
            self._settle()
            at = self._objects.get(sha)
            if at is None:
                return None
            off, hlen, zlen, type_num = at
            z = os.pread(self._fd, zlen, off + hlen)
        return type_num, zlib.decompress(z)

    def _check_open(self) -> None:
        if self._fd is None:
            raise ValueError("the pack stream is finished or aborted")
        if self._broken is not None:
            raise OSError(f"writing {self.path} failed earlier: {self._broken}")

    def _submit(self) -> None:
        """Hand the queued objects to the writer thread (caller holds the lock)."""
        if not self._queue:
            return
        self._wait()
        items, self._queue, self._queued = self._queue, [], 0
        self._inflight = self._pool.submit(self._write, items)

    def _wait(self) -> None:
        """Wait for the batch in flight; raises its error."""
        f, self._inflight = self._inflight, None
        if f is not None:
            try:
                f.result()
            except BaseException as e:
                self._broken = e
                raise

    def _settle(self) -> None:
        """Everything added is written (caller holds the lock)."""
        if self._fd is not None:
            self._check_open()
            self._submit()
            self._wait()

    def _write(self, items: list) -> None:
        """The writer thread: encode and write ``items`` after what is written."""
        objects, crcs, keys = self._objects, self._crcs, self._keys
        fd = self._fd
        pos = self._written
        buf: list = []
        size = 0
        for kind, sha, body, level, key in items:
            if sha is None:
                sha = git_raw_id(kind, body)
            if key is not None:
                keys[key] = sha
            if sha in objects:
                continue
            if level is None:
                level = zlib_level(body)
            hdr = object_header(kind, len(body))
            pieces = stored_zlib(body) if not level else [zlib.compress(body, level)]
            crc = _crc32(hdr)
            zlen = 0
            for p in pieces:
                crc = _crc32(p, crc)
                zlen += len(p)
            objects[sha] = (pos + size, len(hdr), zlen, TYPE_NUM[kind])
            crcs.append((sha, crc, pos + size))
            buf.append(hdr)
            buf += pieces
            size += len(hdr) + zlen
            if len(buf) > 1000:              # writev takes at most IOV_MAX (1024)
                _write_at(fd, buf, size, pos)
                pos += size
                buf, size = [], 0
        if buf:
            _write_at(fd, buf, size, pos)
            pos += size
        self._written = pos

    def finish(self) -> str | None:
        """Finish the pack and make it visible (durably); returns its base path
        (``.../pack-<sha>``), or None when it holds no object (nothing is left). The
        stream is closed either way; on an error the temporary files are deleted."""
        with self._lock:
            if self._fd is None:
                raise ValueError("the pack stream is finished or aborted")
            try:
                self._settle()
                if not self._objects:
                    self._close(remove=True)
                    return None
                return self._finish()
            except BaseException:
                self._close(remove=True)
                raise

    def _finish(self) -> str:
        fd = self._fd
        os.pwrite(fd, struct.pack(">I", len(self._objects)), 8)
        h = _sha1()
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        pos, end = 0, self._written
        while pos < end:
            n = os.preadv(fd, [view[:min(HASH_BLOCK, end - pos)]], pos)
            if n <= 0:
                raise OSError(f"{self.path} is shorter than written")
            h.update(view[:n])
            pos += n
        view.release()
        pack_sha = h.digest()
        os.pwrite(fd, pack_sha, end)
        os.fsync(fd)
        _write_file(self._idx_path, index_v2(self._crcs, pack_sha))
        base = os.path.join(self.pack_dir, "pack-" + pack_sha.hex())
        if os.path.exists(base + ".idx") and os.path.exists(base + ".pack"):
            self._close(remove=True)        # the very same pack is there already
            return base
        try:
            os.link(self.path, base + ".pack")
        except FileExistsError:
            pass                           # an unindexed leftover of the same content
        except OSError:
            os.replace(self.path, base + ".pack")   # no hard links here: move it
        os.replace(self._idx_path, base + ".idx")  # the pack becomes visible
        fsync_dir(self.pack_dir, required=False)
        self._close(remove=True)
        return base

    def abort(self) -> None:
        """Drop the pack: its temporary files are deleted, nothing becomes visible."""
        with self._lock:
            if self._fd is not None:
                self._close(remove=True)

    def _close(self, remove: bool) -> None:
        try:
            self._wait()
        except Exception:  # noqa: BLE001 - closing anyway (abort, or a failed finish)
            pass
        self._pool.shutdown(wait=True)
        fd, self._fd = self._fd, None
        self._queue, self._queued = [], 0
        if remove:
            for p in (self.path, self._idx_path):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
        if fd is not None:
            os.close(fd)   # releases the flock last: a cleaner sees a finished writer

    def __enter__(self) -> "PackStream":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()


def _write_at(fd: int, buf: list, total: int, pos: int) -> None:
    """Write the pieces ``buf`` (``total`` bytes, at most 1024 pieces) at ``pos``."""
    done = os.pwritev(fd, buf, pos)
    if done != total:  # a short write (rare): finish it piece by piece
        data = memoryview(b"".join(buf))[done:]
        pos += done
        while data:
            n = os.pwrite(fd, data, pos)
            data, pos = data[n:], pos + n
