"""Editing a dataset's entries in the Git index (``.git/index``), in process.

When the store commits to the branch the repository has checked out, the index must list
the dataset's files as they are in the new commit, otherwise the user's next ``git
commit`` (which writes the index out as a tree) would record the dataset as deleted. Only
the entries under the dataset's ``.prolly/`` directory (one contiguous run: the index is
sorted by path) are touched; every other entry is copied byte for byte.

The edit follows Git's own protocol: ``index.lock`` is created exclusively (a running
``git`` command holding it makes us wait, then give up), the new index is written to it
and renamed over ``index``. Entries the store writes have zero stat data and the
*skip-worktree* flag, as ``git update-index --index-info`` followed by ``git
update-index --skip-worktree`` would write them: Git then never looks for those files in
the working tree, so ``git status`` stays clean without thousands of files on disk.

Format (``gitformat-index(5)``): versions 2 and 3 are edited (version 2 becomes 3 once an
entry has the skip-worktree flag, as Git does). Extensions: the cache tree (``TREE``) is
kept with the dataset directory and its ancestors invalidated (Git recomputes them at the
next ``git commit``); the resolve-undo record (``REUC``) is kept; other optional
extensions (untracked cache, fsmonitor, end-of-index offsets...) describe entries by
position or by stat data and are dropped, which Git allows. An index this module does not
edit — version 4, a split index (``link``), a sparse index (``sdir``), any other required
extension, or conflicted entries under the dataset — raises :class:`UnsupportedIndex`,
and the caller falls back to ``git update-index``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import time

from xxhash import xxh3_128, xxh3_128_hexdigest

HEADER = struct.Struct(">4sII")
SIGNATURE = b"DIRC"
FLAG_EXTENDED = 0x4000
FLAG_STAGE = 0x3000
XFLAG_SKIP_WORKTREE = 0x4000
_ENTRY_HEAD = struct.Struct(">10I20sHH")
#: how long to wait for another process's ``index.lock`` (seconds)
LOCK_WAIT = 5.0
_STATE = ("data", "version", "count", "offsets", "extensions", "skip_hash", "conflicts",
          "trailer")
#: index path -> (file identity, parsed state) of the index as this process last wrote
#: it: the next edit skips reading and walking the file when it is still that file
_LAST_WRITTEN: dict[str, tuple] = {}


class UnsupportedIndex(Exception):
    """The index uses a feature this module does not edit."""


class IndexLocked(Exception):
    """``index.lock`` stayed held by another process."""


def make_entry(path: bytes, mode: int, sha: bytes) -> bytes:
    """An index entry (version 3, skip-worktree, zero stat data) for ``path``."""
    n = len(path)
    data = _ENTRY_HEAD.pack(0, 0, 0, 0, 0, 0, mode, 0, 0, 0, sha,
                            FLAG_EXTENDED | min(n, 0xFFF), XFLAG_SKIP_WORKTREE) + path
    return data + b"\0" * (((64 + n + 8) & ~7) - 64 - n)


#: marks a block digest as xxh3-128 (older records, SHA-1, simply mismatch once)
_DIGEST_TAG = "x3:"


def block_hash(data) -> str:
    """Digest of a run of raw index entries. It only tells whether another program
    rewrote them since this module did (never adversarial), so xxh3-128, ~15x cheaper
    than SHA-1 over the 2 MB of entries a 1M-key dataset has; Git's own checksum of the
    file stays SHA-1."""
    return _DIGEST_TAG + xxh3_128_hexdigest(data)


class IndexFile:
    """One locked edit of an index file: ``with IndexFile(path) as idx: ...; idx.write()``.

    Leaving the block without :meth:`write` releases the lock and changes nothing."""

    def __init__(self, path: str, lock_wait: float = LOCK_WAIT) -> None:
        self.path = path
        self.lock_path = path + ".lock"
        self.lock_wait = lock_wait
        self._fd: int | None = None

    # -- locking -----------------------------------------------------------------------

    def __enter__(self) -> "IndexFile":
        deadline = time.monotonic() + self.lock_wait
        delay = 0.001
        while True:
            try:
                self._fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                   0o666)
                break
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
            if time.monotonic() >= deadline:
                raise IndexLocked(
                    f"{self.lock_path} exists: another git process seems to be running "
                    f"in this repository (remove the file if it is left over from a "
                    f"crashed process)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            self._parse()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            try:
                os.unlink(self.lock_path)
            except FileNotFoundError:
                pass

    # -- reading -----------------------------------------------------------------------

    @staticmethod
    def _identity(st: os.stat_result) -> tuple:
        return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _parse(self) -> None:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                last = _LAST_WRITTEN.get(self.path)
                if last is not None and last[0] == self._identity(st):
                    state = last[1]
                    if state["trailer"] is None or os.pread(
                            f.fileno(), 20, st.st_size - 20) == state["trailer"]:
                        self.__dict__.update(state)  # the file as this process wrote it
                        return
                data = f.read()
        except FileNotFoundError:
            data = b""
        if not data:
            self.data = b""
            self.version, self.count = 2, 0
            self.offsets = [12]
            self.extensions: list[tuple[bytes, bytes]] = []
            self.skip_hash = False
            self.conflicts = False
            self.trailer = None
            return
        if len(data) < 32:
            raise UnsupportedIndex("index file too short")
        sig, version, count = HEADER.unpack_from(data, 0)
        if sig != SIGNATURE:
            raise UnsupportedIndex("not an index file")
        if version not in (2, 3):
            raise UnsupportedIndex(f"index version {version}")
        self.data, self.version, self.count = data, version, count
        offsets = [0] * (count + 1)
        pos = 12
        end = len(data) - 20
        index = data.index
        seen_flags = 0
        for i in range(count):
            offsets[i] = pos
            flags = (data[pos + 60] << 8) | data[pos + 61]
            seen_flags |= flags
            start = pos + (64 if flags & FLAG_EXTENDED else 62)
            n = flags & 0xFFF
            if n == 0xFFF:
                n = index(b"\0", start) - start
            pos = (start - pos + n + 8 & ~7) + pos
            if pos > end:
                raise UnsupportedIndex("truncated index entries")
        offsets[count] = pos
        self.offsets = offsets
        self.conflicts = bool(seen_flags & FLAG_STAGE)
        exts = []
        while pos < end:
            if pos + 8 > end:
                raise UnsupportedIndex("truncated index extension")
            sig = data[pos:pos + 4]
            (size,) = struct.unpack_from(">I", data, pos + 4)
            body = data[pos + 8:pos + 8 + size]
            if len(body) != size:
                raise UnsupportedIndex("truncated index extension")
            if not 65 <= sig[0] <= 90:
                raise UnsupportedIndex(f"required index extension {sig!r}")
            exts.append((sig, body))
            pos += 8 + size
        self.extensions = exts
        self.skip_hash = data[-20:] == b"\0" * 20
        #: the checksum ending the file (None with index.skipHash): another writer
        #: changes it
        self.trailer = None if self.skip_hash else data[-20:]

    def path_at(self, i: int) -> bytes:
        data, pos = self.data, self.offsets[i]
        flags = (data[pos + 60] << 8) | data[pos + 61]
        start = pos + (64 if flags & FLAG_EXTENDED else 62)
        n = flags & 0xFFF
        if n == 0xFFF:
            n = data.index(b"\0", start) - start
        return data[start:start + n]

    def _bisect(self, path: bytes, lo: int, hi: int) -> int:
        """First entry index in [lo, hi) whose path is >= ``path``."""
        path_at = self.path_at
        while lo < hi:
            mid = (lo + hi) // 2
            if path_at(mid) < path:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def block(self, prefix: bytes) -> tuple[int, int]:
        """The entries [lo, hi) whose path starts with ``prefix`` (which ends in "/")."""
        lo = self._bisect(prefix, 0, self.count)
        hi = self._bisect(prefix[:-1] + bytes([prefix[-1] + 1]), lo, self.count)
        if self.conflicts:
            data, offsets = self.data, self.offsets
            for i in range(lo, hi):
                if data[offsets[i] + 60] << 8 & FLAG_STAGE:
                    raise UnsupportedIndex("conflicted entries under the dataset")
        return lo, hi

    def block_digest(self, prefix: bytes) -> str:
        """SHA-1 of the raw entries under ``prefix`` (to tell whether anyone else changed
        them since this module wrote them)."""
        lo, hi = self.block(prefix)
        return block_hash(memoryview(self.data)[self.offsets[lo]:self.offsets[hi]])

    # -- editing -----------------------------------------------------------------------

    def edit(self, prefix: bytes, changes: list | None, entries: list | None = None) -> str:
        """Change the entries under ``prefix``: ``changes`` is a list of (path, mode,
        20-byte id) to add or replace and (path, 0, None) to remove (paths start with
        ``prefix``); or ``entries`` (path, mode, id), when given, replace all of them.
        Returns the new block digest; :meth:`write` makes it so."""
        lo, hi = self.block(prefix)
        data, offsets = self.data, self.offsets
        pieces: list[bytes] = []
        # offsets of the new block's entries, from the start of the block
        new_offsets: list[int] = []
        pos = 0
        start = offsets[lo]  # absolute offset of the block
        if entries is not None:
            entries = sorted(entries)
            for path, mode, sha in entries:
                if not path.startswith(prefix):
                    raise ValueError(f"{path!r} is not under {prefix!r}")
                e = make_entry(path, mode, sha)
                pieces.append(e)
                new_offsets.append(start + pos)
                pos += len(e)
        else:
            i = lo
            last = None
            for path, mode, sha in sorted(changes, key=lambda c: c[0]):
                if not path.startswith(prefix):
                    raise ValueError(f"{path!r} is not under {prefix!r}")
                if path == last:
                    raise ValueError(f"{path!r} changed twice")
                last = path
                j = self._bisect(path, i, hi)
                if j > i:
                    shift = start + pos - offsets[i]
                    new_offsets.extend([o + shift for o in offsets[i:j]])
                    pieces.append(data[offsets[i]:offsets[j]])
                    pos += offsets[j] - offsets[i]
                i = j
                if i < hi and self.path_at(i) == path:
                    i += 1
                if sha is not None:
                    e = make_entry(path, mode, sha)
                    pieces.append(e)
                    new_offsets.append(start + pos)
                    pos += len(e)
            if hi > i:
                shift = start + pos - offsets[i]
                new_offsets.extend([o + shift for o in offsets[i:hi]])
                pieces.append(data[offsets[i]:offsets[hi]])
                pos += offsets[hi] - offsets[i]
        digest = xxh3_128()
        for piece in pieces:
            digest.update(piece)
        self._new = (lo, hi, pieces, pos, new_offsets, prefix)
        return _DIGEST_TAG + digest.hexdigest()

    def _extensions(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        for sig, body in self.extensions:
            if sig == b"TREE":
                try:
                    body = invalidate_cache_tree(body, prefix)
                except (ValueError, IndexError):
                    continue  # not understood: dropping the cache tree is always valid
            elif sig != b"REUC":
                continue
            out.append((sig, body))
        return out

    def write(self) -> None:
        """Write the edited index (to ``index.lock``, then renamed into place)."""
        lo, hi, pieces, block_len, block_offsets, prefix = self._new
        data, offsets = self.data, self.offsets
        count = self.count - (hi - lo) + len(block_offsets)
        version = self.version
        if version == 2 and pieces:
            version = 3  # entries with extended flags need version 3
        parts = [HEADER.pack(SIGNATURE, version, count)]
        if data:
            parts.append(data[12:offsets[lo]])
        parts.extend(pieces)
        if data:
            parts.append(data[offsets[hi]:offsets[self.count]])
        delta = block_len - (offsets[hi] - offsets[lo])
        new_offsets = offsets[:lo] + block_offsets + [o + delta for o in offsets[hi:]]
        extensions = self._extensions(prefix)
        parts.extend(sig + struct.pack(">I", len(body)) + body for sig, body in extensions)
        if self.skip_hash:
            trailer = b"\0" * 20
        else:
            h = hashlib.sha1()
            for part in parts:
                h.update(part)
            trailer = h.digest()
        parts.append(trailer)
        out = b"".join(parts)
        self.written_trailer = None if self.skip_hash else trailer
        view = memoryview(out)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.close(self._fd)
        self._fd = None
        try:
            os.replace(self.lock_path, self.path)
            st = os.stat(self.path)  # (a rename changes the ctime)
        except BaseException:
            try:
                os.unlink(self.lock_path)
            except OSError:
                pass
            _LAST_WRITTEN.pop(self.path, None)
            raise
        state = {"data": out, "version": version, "count": count, "offsets": new_offsets,
                 "extensions": extensions, "skip_hash": self.skip_hash,
                 "conflicts": self.conflicts, "trailer": None if self.skip_hash else trailer}
        _LAST_WRITTEN.clear()  # one index at a time is enough
        _LAST_WRITTEN[self.path] = (self._identity(st), state)


def invalidate_cache_tree(body: bytes, prefix: bytes) -> bytes:
    """The ``TREE`` extension ``body`` with the directory ``prefix`` names (ending in
    "/") and its ancestors marked invalid, and the cached subtrees below it dropped —
    what Git does to the cache tree when entries under ``prefix`` change."""
    pos = 0

    def one() -> list:
        nonlocal pos
        nul = body.index(b"\0", pos)
        name = body[pos:nul]
        lf = body.index(b"\n", nul)
        count_s, sub_s = body[nul + 1:lf].split(b" ")
        count, sub = int(count_s), int(sub_s)
        pos = lf + 1
        sha = None
        if count >= 0:
            sha = body[pos:pos + 20]
            if len(sha) != 20:
                raise ValueError("truncated cache tree")
            pos += 20
        return [name, count, sha, [one() for _ in range(sub)]]

    root = one()
    if pos != len(body):
        raise ValueError("trailing bytes in the cache tree")
    node = root
    node[1], node[2] = -1, None
    parts = prefix.rstrip(b"/").split(b"/")
    for depth, part in enumerate(parts):
        for kid in node[3]:
            if kid[0] == part:
                kid[1], kid[2] = -1, None
                if depth == len(parts) - 1:
                    kid[3] = []
                node = kid
                break
        else:
            break
    out: list[bytes] = []

    def emit(n: list) -> None:
        out.append(n[0] + b"\0" + b"%d %d\n" % (n[1], len(n[3])))
        if n[1] >= 0:
            out.append(n[2])
        for k in n[3]:
            emit(k)

    emit(root)
    return b"".join(out)
