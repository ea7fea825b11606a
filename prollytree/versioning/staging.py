"""The staging area: uncommitted inserts and deletes, kept in a crash-safe journal.

Every staged write appends one framed record to ``<state dir>/staging.journal`` with a
single ``os.write`` (under the dataset's shared lock), before the call returns: a record
that made it into the file survives the process being killed (``kill -9``), since the
kernel owns it from then on. (It is not fsynced: staged work is not promised to survive
power loss; committed work is.)

File layout: an 8-byte header (magic ``PSJ1`` + a 32-bit generation, bumped each time the
journal is cleared) then records ``[u32 payload length][u32 crc32][payload]`` where the
payload is one of

* ``b"P" + u32 key length + key + value``: put in the default tree;
* ``b"D" + key``: delete from the default tree;
* ``b"p" + u32 name length + name + u32 key length + key + value``: put in a named tree;
* ``b"d" + u32 name length + name + key``: delete from a named tree;
* ``b"X" + name``: drop the named tree (it and its earlier staged writes are gone);
* ``b"C" + u32 name length + name + config``: create the (empty) named tree.

Names are UTF-8. A record cut short or failing its checksum ends the journal: it and
anything after it are ignored (and cut off at the next clear).

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
from bisect import bisect_left, insort
from typing import Iterator

from .lock import DatasetLock

MAGIC = b"PSJ1"
HEADER = struct.Struct(">4sI")
FRAME = struct.Struct(">II")
KLEN = struct.Struct(">I")


def _named(kind: bytes, name: str, rest: bytes, with_len: bool = True) -> bytes:
    n = name.encode("utf-8")
    return kind + (KLEN.pack(len(n)) if with_len else b"") + n + rest


def encode_record(key: bytes, value: bytes | None, tree: str = "") -> bytes:
    """One framed journal record staging ``key`` = ``value`` (None: delete) in ``tree``."""
    if tree:
        if value is None:
            payload = _named(b"d", tree, key)
        else:
            payload = _named(b"p", tree, KLEN.pack(len(key)) + key + value)
    elif value is None:
        payload = b"D" + key
    else:
        payload = b"P" + KLEN.pack(len(key)) + key + value
    return _frame(payload)


def encode_tree_op(op: str, tree: str, config: bytes = b"") -> bytes:
    """A framed record for ``op`` "drop" or "create" (with the config bytes) of ``tree``."""
    if op == "drop":
        return _frame(_named(b"X", tree, b"", with_len=False))
    return _frame(_named(b"C", tree, config))


def _frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _split_name(payload: bytes) -> tuple[str, int] | None:
    """(name, offset after it) of a ``p``/``d``/``C`` payload, None when cut short."""
    if len(payload) < 5:
        return None
    (nlen,) = KLEN.unpack_from(payload, 1)
    if 5 + nlen > len(payload):
        return None
    try:
        return payload[5:5 + nlen].decode("utf-8"), 5 + nlen
    except UnicodeDecodeError:
        return None


def decode_records(data: bytes, start: int = 0) -> tuple[list, int]:
    """(records, end of the last intact record) parsed from ``data[start:]``. A record
    is ``(tree, key, value)`` (value None: delete) or ``(tree, op, config)`` with ``op``
    the string "drop" or "create"."""
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
            out.append(("", payload[5:5 + klen], payload[5 + klen:]))
        elif kind == b"D":
            out.append(("", payload[1:], None))
        elif kind in (b"p", b"d", b"C"):
            named = _split_name(payload)
            if named is None:
                break
            tree, at = named
            if kind == b"d":
                out.append((tree, payload[at:], None))
            elif kind == b"C":
                out.append((tree, "create", payload[at:]))
            else:
                if at + 4 > length:
                    break
                (klen,) = KLEN.unpack_from(payload, at)
                if at + 4 + klen > length:
                    break
                out.append((tree, payload[at + 4:at + 4 + klen], payload[at + 4 + klen:]))
        elif kind == b"X":
            try:
                out.append((payload[1:].decode("utf-8"), "drop", None))
            except UnicodeDecodeError:
                break
        else:
            break
        pos = end
    return out, pos


class TreeStage:
    """What is staged for one tree: writes (key -> value, None deletes), whether the
    tree was dropped first (``reset``: the writes apply to an empty tree) and the config
    bytes of an explicit creation (``config``)."""

    __slots__ = ("changes", "reset", "config", "_keys")

    def __init__(self) -> None:
        self.changes: dict[bytes, bytes | None] = {}
        self.reset = False
        self.config: bytes | None = None
        self._keys: list | None = None      # sorted staged keys, built on first scan

    def __len__(self) -> int:
        return len(self.changes) + self.reset + (self.config is not None)

    def put(self, key: bytes, value: bytes | None) -> None:
        """Stage ``key`` = ``value`` (None: delete). O(1), or O(n) memmove to keep the
        sorted key list once a scan has built it."""
        if key not in self.changes and self._keys is not None:
            insort(self._keys, key)
        self.changes[key] = value

    def drop(self) -> None:
        """Forget the writes: the tree was dropped."""
        self.changes = {}
        self._keys = None
        self.reset = True
        self.config = None

    def in_range(self, start: bytes | None, end: bytes | None
                 ) -> list[tuple[bytes, bytes | None]]:
        """Staged writes with ``start <= key < end``, sorted by key: O(log n + hits)
        once the sorted key list exists (built in O(n log n) by the first scan)."""
        keys = self._keys
        if keys is None:
            keys = self._keys = sorted(self.changes)
        lo = 0 if start is None else bisect_left(keys, start)
        hi = len(keys) if end is None else bisect_left(keys, end)
        ch = self.changes
        return [(k, ch[k]) for k in keys[lo:hi]]


class StagingArea:
    """Staged changes per tree: :attr:`trees` maps a tree name to its
    :class:`TreeStage`; :attr:`changes` is the default tree's key -> value (None for a
    staged delete).

    ``path`` None keeps them in memory only (the InMemory backend)."""

    def __init__(self, path: str | None, lock: DatasetLock) -> None:
        self.path = path
        self.lock = lock
        self.trees: dict[str, TreeStage] = {"": TreeStage()}
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
            self._reset()
            self._gen, self._offset, self._size = -1, 0, size
            return
        if force or gen != self._gen or size < self._offset:
            self._reset()
            self._gen, self._offset = gen, HEADER.size
        if size > self._offset:
            data = os.pread(fd, size - self._offset, self._offset)
            records, end = decode_records(data)
            self._apply(records)
            self._offset += end
        self._size = size

    def _reset(self) -> None:
        self.trees = {"": TreeStage()}

    def _apply(self, records: list) -> None:
        trees = self.trees
        for tree, key, value in records:
            st = trees.get(tree)
            if st is None:
                st = trees[tree] = TreeStage()
            if key == "drop":
                st.drop()
            elif key == "create":
                st.config = value
            else:
                st.put(key, value)

    @property
    def generation(self) -> int:
        """The journal's generation as last read (bumped by every commit and HEAD move)."""
        return self._gen

    @property
    def changes(self) -> dict[bytes, bytes | None]:
        """The default tree's staged writes."""
        return self.trees[""].changes

    def stage_of(self, tree: str) -> TreeStage | None:
        """What is staged for ``tree`` (None: nothing)."""
        return self.trees.get(tree)

    # -- writing ------------------------------------------------------------------------

    def stage(self, key: bytes, value: bytes | None, tree: str = "") -> None:
        """Record one staged put (or delete, ``value`` None) in ``tree``, durably against
        kill -9."""
        self._append(encode_record(key, value, tree))
        self._apply([(tree, key, value)])

    def stage_many(self, items: list[tuple[bytes, bytes | None]], tree: str = "") -> None:
        """Record many staged writes to ``tree`` with a single append (one ``os.write``):
        after a ``kill -9`` either all of them are in the journal or, if the write itself
        was cut, a prefix of whole records (a torn record ends the journal)."""
        if not items:
            return
        self._append(b"".join([encode_record(k, v, tree) for k, v in items]))
        self._apply([(tree, k, v) for k, v in items])

    def stage_tree_op(self, tree: str, op: str, config: bytes = b"") -> None:
        """Stage dropping (``op`` "drop") or creating ("create", with the config bytes)
        the named tree ``tree``."""
        self._append(encode_tree_op(op, tree, config))
        self._apply([(tree, op, config if op == "create" else None)])

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            return
        with self.lock.shared():
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]

    def _write_header_locked(self, gen: int) -> None:
        # called under the exclusive lock only
        os.ftruncate(self._fd, 0)
        os.pwrite(self._hfd, HEADER.pack(MAGIC, gen), 0)

    def clear(self) -> None:
        """Drop every staged change (caller holds the exclusive lock)."""
        self._reset()
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
        return sum(len(st) for st in self.trees.values())

    def items(self) -> Iterator[tuple[bytes, bytes | None]]:
        """The default tree's staged writes, sorted by key."""
        return iter(sorted(self.changes.items()))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            os.close(self._hfd)
            self._fd = None
