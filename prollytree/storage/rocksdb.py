"""The RocksDB store, on ``rocksdict`` in raw mode.

The directory ``path`` is a plain RocksDB database that other RocksDB tools (``ldb``,
other bindings) can open: raw mode means keys and values are stored as the bytes given,
with no pickling or type tags.

- Nodes live in the ``default`` column family: key = 32-byte address, value = node bytes.
- Refs live in a separate column family named ``refs``: key = UTF-8 ref name, value =
  ref bytes. A separate column family (rather than a key prefix) means a ref can never
  collide with a node address and that iterating the nodes never meets a ref.

Writes go to RocksDB's write-ahead log, which is written (not synced) on every call, so
they survive the process being killed; ``flush()`` syncs the WAL so they survive power
loss. RocksDB recovers to a consistent prefix of the WAL after a crash.

Besides RocksDB's own ``LOCK`` file, a writable open takes the shared
``prollytree.lock`` (see :mod:`~prollytree.storage.locking`) so that a second writer waits
and then gets :class:`~prollytree.errors.StoreLockedError` instead of an I/O error.
"""

from __future__ import annotations

import os
import zlib
from hashlib import sha256
from typing import Any, Iterable, Iterator, Mapping

from ..errors import CorruptNodeError, ReadOnlyError, StoreError, StoreLockedError
from .base import ADDRESS_SIZE, ANY
from .checks import (
    StoreProblem, check_address, check_expected, check_items, check_ref_name, check_ref_value,
)
from .._fs import atomic_write
from .locking import LockedDirectoryStore

__all__ = ["RocksDBNodeStore"]

REFS_CF = "refs"
#: Where a clean close records RocksDB's last sequence number (see _check_sequence).
SEQ_FILE = "prollytree.seq"

_INSTALL_HINT = "pip install 'prollytree-py[rocksdb]'"


def _rocksdict() -> Any:
    """Import rocksdict lazily, so that only users of this backend need it."""
    try:
        import rocksdict
    except ImportError as e:
        raise StoreError(
            f"the rocksdb storage backend needs the rocksdict package ({e}); "
            f"install it with: {_INSTALL_HINT}") from e
    return rocksdict


def _scan(db: Any, what: str, values: bool = True) -> Iterator[tuple[bytes, bytes | None]]:
    """Iterate (key, value) pairs of a column family, raising on a read error.

    rocksdict's ``items()``/``keys()`` iterators end silently when RocksDB hits damage
    (the error only shows in the iterator's status), which would make a listing look
    complete when it is not. This checks the status at the end.
    """
    it = db.iter()
    it.seek_to_first()
    while it.valid():
        yield it.key(), (it.value() if values else None)
        it.next()
    try:
        it.status()
    except Exception as e:
        raise StoreError(f"RocksDB could not read all {what}: {e}") from e


class RocksDBNodeStore(LockedDirectoryStore):
    """Nodes and refs in a RocksDB database at directory ``path``.

    ``read_only=True`` opens an existing database without the writer lock, alongside a
    writer if there is one; it sees the data present when it was opened. A writable open
    waits up to ``lock_timeout`` seconds (default ``$PROLLYTREE_LOCK_TIMEOUT`` or 10) for
    another writer to close, then raises StoreLockedError.
    """

    kind = "rocksdb"
    verify_reads = True

    def __init__(self, path: str | os.PathLike, read_only: bool = False, *,
                 lock_timeout: float | None = None, block_cache_mb: int = 64) -> None:
        timeout = self._init_directory(path, read_only, lock_timeout)
        if isinstance(block_cache_mb, bool) or not isinstance(block_cache_mb, int):
            raise TypeError(f"block_cache_mb must be an int, not {type(block_cache_mb).__name__}")
        if block_cache_mb <= 0:
            raise ValueError(f"block_cache_mb must be positive, got {block_cache_mb}")
        rd = _rocksdict()
        self._db: Any = None
        self._refs_cf: Any = None
        self._open_directory("CURRENT", "RocksDB store", timeout,
                             lambda: self._open(rd, block_cache_mb))

    def _options(self, rd: Any, block_cache_mb: int) -> Any:
        opts = rd.Options(raw_mode=True)
        opts.create_if_missing(not self.read_only)
        opts.create_missing_column_families(not self.read_only)
        # Nodes are fetched by exact address: bloom filters make misses (has() of an
        # absent node) nearly free, and a block cache keeps hot interior nodes in memory.
        table = rd.BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(rd.Cache(block_cache_mb << 20))
        opts.set_block_based_table_factory(table)
        opts.increase_parallelism(max(2, os.cpu_count() or 2))
        return opts

    def _open(self, rd: Any, block_cache_mb: int) -> None:
        opts = self._options(rd, block_cache_mb)
        cfs = {REFS_CF: rd.Options(raw_mode=True)}
        if self.read_only:
            try:
                existing = rd.Rdict.list_cf(self.path, rd.Options(raw_mode=True))
            except Exception as e:
                raise StoreError(f"cannot open RocksDB store at {self.path}: {e}") from e
            if REFS_CF not in existing:
                cfs = {}          # a database never written by prollytree: no refs yet
            access = rd.AccessType.read_only(False)
        else:
            access = rd.AccessType.read_write()
        try:
            self._db = rd.Rdict(self.path, opts, column_families=cfs, access_type=access)
        except Exception as e:
            # RocksDB's own lock is "IO error: While lock file: <path>/LOCK: ..."; a
            # "block checksum mismatch" (damage) must not read as a lock problem.
            if "while lock file" in str(e).lower():
                raise StoreLockedError(
                    f"RocksDB store at {self.path} is locked by a process that does not "
                    f"use prollytree's lock: {e}") from e
            raise StoreError(f"cannot open RocksDB store at {self.path}: {e}") from e
        self._refs_cf = self._db.get_column_family(REFS_CF) if cfs else None
        self._wb_cls = rd.WriteBatch
        self._check_sequence()

    # RocksDB silently opens an older state when the tail of its MANIFEST (or WAL) is
    # lost or damaged: a store that had data opens empty, or with refs gone back in
    # time. To report that instead of serving it, a clean close records RocksDB's last
    # sequence number (which only grows) in SEQ_FILE; an open that finds the database
    # behind it refuses with StoreError.

    def _recorded_sequence(self) -> int | None:
        try:
            with open(os.path.join(self.path, SEQ_FILE), "rb") as f:
                raw = f.read(64)
        except OSError:
            return None
        if len(raw) != 12 or zlib.crc32(raw[:8]) != int.from_bytes(raw[8:], "little"):
            return None                     # damaged: it can vouch for nothing
        return int.from_bytes(raw[:8], "little")

    def _check_sequence(self) -> None:
        recorded = self._recorded_sequence()
        if recorded is None:
            return
        try:
            seq = self._db.latest_sequence_number()
        except Exception as e:
            raise self._failed("open", e) from e
        if seq < recorded:
            self._close_handles()
            raise StoreError(
                f"RocksDB store at {self.path} is damaged: it opens at sequence number "
                f"{seq}, but {recorded} was reached before it was last closed, so "
                f"writes were lost (its MANIFEST, CURRENT or WAL files are damaged). "
                f"RocksDB's repair tool (ldb repair) may recover them")

    def _before_close(self) -> None:
        self.flush()
        if self.read_only or self._db is None:
            return
        try:
            seq = self._db.latest_sequence_number()
        except Exception:
            return
        raw = seq.to_bytes(8, "little")
        atomic_write(os.path.join(self.path, SEQ_FILE),
                     raw + zlib.crc32(raw).to_bytes(4, "little"))

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"RocksDB store at {self.path} is closed")

    def _failed(self, what: str, e: Exception) -> StoreError:
        return StoreError(f"RocksDB store at {self.path}: {what} failed: {e}")

    def _read_failed(self, address: bytes, e: Exception) -> StoreError:
        """RocksDB could not read node ``address``: damage (its message says
        "Corruption") is a CorruptNodeError carrying RocksDB's message."""
        if "corruption" in str(e).lower():
            return CorruptNodeError(address, f"RocksDB store at {self.path}: {e}")
        return self._failed("read", e)

    # -- NodeStore --------------------------------------------------------------------------

    def _get(self, address: bytes) -> bytes | None:
        if type(address) is not bytes or len(address) != ADDRESS_SIZE:
            address = check_address(address)
        self._check_open()
        try:
            return self._db.get(address)
        except Exception as e:
            raise self._read_failed(address, e) from e

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        keys = [check_address(a) for a in addresses]
        self._check_open()
        if not keys:
            return {}
        try:
            values = self._db.get(keys)        # one multi-get
        except Exception as e:
            raise self._failed("read", e) from e
        out = {}
        for a, data in zip(keys, values):
            if data is not None:
                if sha256(data).digest() != a:
                    raise CorruptNodeError(a, "stored bytes do not hash to the address")
                out[a] = data
        return out

    def _has(self, address: bytes) -> bool:
        if type(address) is not bytes or len(address) != ADDRESS_SIZE:
            address = check_address(address)
        self._check_open()
        try:
            return address in self._db
        except Exception as e:
            raise self._read_failed(address, e) from e

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        items = check_items(items)
        with self._mutex:
            self._check_open()
            wb = self._wb_cls(raw_mode=True)
            for address, data in items:
                wb.put(address, data)
            try:
                self._db.write(wb)             # one atomic WAL append for the batch
            except Exception as e:
                raise self._failed("write", e) from e

    def _get_ref(self, name: str) -> bytes | None:
        raw = check_ref_name(name)
        self._check_open()
        if self._refs_cf is None:
            return None
        try:
            return self._refs_cf.get(raw)
        except Exception as e:
            raise self._failed("ref read", e) from e

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        raw = check_ref_name(name)
        value = check_ref_value(value)
        expected = check_expected(expected)
        with self._mutex:
            self._check_open()
            # Compare-and-swap is a read then a write: atomic because this process holds
            # the writer lock (no other process writes) and the mutex (no other thread).
            try:
                if expected is not ANY and self._refs_cf.get(raw) != expected:
                    return False
                if value is None:
                    self._refs_cf.delete(raw)
                else:
                    self._refs_cf.put(raw, value)
            except Exception as e:
                raise self._failed("ref write", e) from e
            return True

    def refs(self) -> Mapping[str, bytes]:
        self._check_open()
        if self._refs_cf is None:
            return {}
        try:
            return {k.decode("utf-8"): v for k, v in _scan(self._refs_cf, f"refs of {self.path}")}
        except StoreError:
            raise
        except Exception as e:
            raise self._failed("ref listing", e) from e

    def addresses(self) -> Iterator[bytes]:
        """Every node address, streamed from an iterator over a RocksDB snapshot; raises
        StoreError (after the readable ones) if RocksDB cannot read part of the data."""
        self._check_open()
        return (k for k, _ in _scan(self._db, f"node addresses of {self.path}", values=False)
                if len(k) == ADDRESS_SIZE)

    def remove(self, addresses: Iterable[bytes]) -> int:
        """Delete nodes (one atomic batch). Space is reclaimed by RocksDB compaction, which
        is forced when the batch removes a large share of the store."""
        if self.read_only:
            raise ReadOnlyError(f"RocksDB store at {self.path} is open read-only")
        keys = [check_address(a) for a in addresses]
        with self._mutex:
            self._check_open()
            try:
                wb = self._wb_cls(raw_mode=True)
                n = 0
                for a in dict.fromkeys(keys):
                    if a in self._db:
                        wb.delete(a)
                        n += 1
                if n:
                    self._db.write(wb)
                    total = self._db.property_int_value("rocksdb.estimate-num-keys") or 0
                    if n >= 10_000 or n * 4 >= total:
                        self._db.compact_range(None, None)
            except Exception as e:
                raise self._failed("remove", e) from e
            return n

    def flush(self) -> None:
        """Sync RocksDB's write-ahead log: every write so far survives power loss."""
        with self._mutex:
            if self._closed or self.read_only:
                return
            try:
                self._db.flush_wal(True)
            except Exception as e:
                raise self._failed("flush", e) from e

    def _close_handles(self) -> None:
        # Every Python handle on the database (the refs column family included) keeps
        # RocksDB's own LOCK held until closed, which would block a reopen.
        db, self._db = self._db, None
        cf, self._refs_cf = self._refs_cf, None
        for handle in (cf, db):
            if handle is not None:
                try:
                    handle.close()
                except Exception:
                    pass

    def check(self) -> list[StoreProblem]:
        """Read every node and ref (RocksDB verifies its block checksums on the way) and
        check each node's SHA-256 against its key. Returns the problems found."""
        self._check_open()
        problems: list[StoreProblem] = []
        try:
            for key, data in _scan(self._db, "nodes"):
                if len(key) != ADDRESS_SIZE:
                    problems.append(StoreProblem(
                        None, f"key {key[:40]!r} in the default column family is not a "
                              f"{ADDRESS_SIZE}-byte node address"))
                elif sha256(data).digest() != key:
                    problems.append(StoreProblem(key, "stored bytes do not hash to the address"))
        except Exception as e:
            problems.append(StoreProblem(None, str(e)))
        if self._refs_cf is not None:
            try:
                for key, _ in _scan(self._refs_cf, "refs", values=False):
                    try:
                        key.decode("utf-8")
                    except UnicodeDecodeError:
                        problems.append(StoreProblem(None, f"ref name {key!r} is not UTF-8"))
            except Exception as e:
                problems.append(StoreProblem(None, str(e)))
        return problems

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<RocksDBNodeStore {self.path!r} {mode}{', closed' if self._closed else ''}>"
