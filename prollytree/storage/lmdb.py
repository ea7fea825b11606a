"""The LMDB store, on the ``lmdb`` package.

The directory ``path`` is an LMDB environment (``data.mdb``, ``lock.mdb``) with two named
databases: ``nodes`` (key = 32-byte address, value = node bytes) and ``refs`` (key = UTF-8
ref name, value = ref bytes). The map is 1 TiB of address space by default; on Linux the
file only grows as data is written.

Writes are buffered in memory and committed as one LMDB transaction, with LMDB's default
full sync, by ``flush()``, ``close()``, or when the buffer passes 64 MiB. Each commit is
atomic and durable, so after a crash the store holds exactly the state of some commit:
refs never point at nodes that were buffered with them but lost. Unflushed writes are
lost if the process dies. (Committing every call with LMDB's ``sync=False`` would survive
``kill -9`` but, per LMDB's documentation, can corrupt the database on power loss.)

LMDB allows one environment handle per file per process, so stores opened on the same
path in one process share it: a read-only store alongside a writer in the same process
reads through the writer's environment. Readers see every committed (flushed) write.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from hashlib import sha256
from typing import Any, Iterable, Iterator, Mapping

from ..errors import CorruptNodeError, ReadOnlyError, StoreError
from .base import ADDRESS_SIZE, ANY
from .checks import (
    StoreProblem, check_address, check_expected, check_items, check_ref_name, check_ref_value,
)
from .locking import LockedDirectoryStore

__all__ = ["LMDBNodeStore"]

NODES_DB = b"nodes"
REFS_DB = b"refs"
DEFAULT_MAP_SIZE = 1 << 40
#: Buffered writes are committed once they reach this many bytes.
COMMIT_THRESHOLD = 64 << 20

_INSTALL_HINT = "pip install 'prollytree-py[lmdb]'"


def _lmdb() -> Any:
    """Import lmdb lazily, so that only users of this backend need it."""
    try:
        import lmdb
    except ImportError as e:
        raise StoreError(
            f"the lmdb storage backend needs the lmdb package ({e}); "
            f"install it with: {_INSTALL_HINT}") from e
    return lmdb


class _SharedEnv:
    """One LMDB environment per store directory per process, shared by its stores."""

    def __init__(self, lmdb: Any, path: str, writable: bool, map_size: int) -> None:
        self.lmdb = lmdb
        self.path = path
        self.users = 0
        self.writable = False
        self.env: Any = None
        self.open(writable, map_size)

    def open(self, writable: bool, map_size: int) -> None:
        """(Re)open the environment; reopening closes the old handle first, since LMDB
        refuses a second handle on the same file in one process."""
        old_writable = self.writable
        if self.env is not None:
            self.env.close()
            self.env = None
        try:
            self._open(writable, map_size)
        except BaseException:
            if old_writable != writable and self.users:
                self._open(old_writable, map_size)    # give the other users their handle back
            raise

    def _open(self, writable: bool, map_size: int) -> None:
        lmdb = self.lmdb
        try:
            # readahead=False: node reads are random; OS readahead would evict useful pages
            # once the database is larger than memory.
            env = lmdb.open(self.path, map_size=map_size, max_dbs=2, subdir=True,
                            readonly=not writable, create=writable, readahead=False,
                            lock=True, sync=True, metasync=True)
        except lmdb.Error as e:
            raise StoreError(f"cannot open LMDB store at {self.path}: {e}") from e
        try:
            _check_not_truncated(env, self.path)    # before any page past the metas is read
        except BaseException:
            env.close()
            raise
        try:
            nodes = env.open_db(NODES_DB, create=writable)
            refs = env.open_db(REFS_DB, create=writable)
        except lmdb.NotFoundError:
            env.close()
            raise StoreError(f"{self.path} is an LMDB environment but not a prollytree "
                             f"store (no '{NODES_DB.decode()}' database)") from None
        except lmdb.Error as e:
            env.close()
            raise StoreError(f"cannot open LMDB store at {self.path}: {e}") from e
        self.env, self.nodes, self.refs, self.writable = env, nodes, refs, writable


def _check_not_truncated(env: Any, path: str) -> None:
    """Refuse a data file shorter than the pages LMDB's meta page says are in use: LMDB
    maps the file and would touch pages past its end, killing the process with SIGBUS."""
    data = os.path.join(path, "data.mdb")
    try:
        size = os.path.getsize(data)
        need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    except OSError as e:
        raise StoreError(f"cannot open LMDB store at {path}: {e}") from e
    if size < need:
        raise StoreError(f"LMDB store at {path} is damaged: data.mdb is {size} bytes but "
                         f"its meta page uses {need} (the file was truncated)")


_ENVS: dict[str, _SharedEnv] = {}
_ENVS_LOCK = threading.Lock()


class LMDBNodeStore(LockedDirectoryStore):
    """Nodes and refs in an LMDB environment at directory ``path``.

    ``read_only=True`` opens an existing store without the writer lock, alongside a
    writer if there is one, and sees every flushed write. A writable open waits up to
    ``lock_timeout`` seconds (default ``$PROLLYTREE_LOCK_TIMEOUT`` or 10) for another
    writer to close, then raises StoreLockedError.
    """

    kind = "lmdb"
    verify_reads = True

    def __init__(self, path: str | os.PathLike, read_only: bool = False, *,
                 lock_timeout: float | None = None, map_size: int = DEFAULT_MAP_SIZE) -> None:
        timeout = self._init_directory(path, read_only, lock_timeout)
        if isinstance(map_size, bool) or not isinstance(map_size, int):
            raise TypeError(f"map_size must be an int, not {type(map_size).__name__}")
        if map_size <= 0:
            raise ValueError(f"map_size must be positive, got {map_size}")
        self._lmdb = _lmdb()
        self._shared: _SharedEnv | None = None
        self._pending: dict[bytes, bytes] = {}
        self._pending_refs: dict[str, bytes | None] = {}
        self._pending_bytes = 0

        self._open_directory("data.mdb", "LMDB store", timeout, lambda: self._attach(map_size))

    def _attach(self, map_size: int) -> None:
        key = os.path.realpath(self.path)
        with _ENVS_LOCK:
            shared = _ENVS.get(key)
            if shared is None:
                shared = _SharedEnv(self._lmdb, self.path, not self.read_only, map_size)
                _ENVS[key] = shared
            elif not self.read_only and not shared.writable:
                # Only read-only stores of this process use the environment; reopen it
                # writable (they pick up the new handle on their next call).
                shared.open(True, map_size)
            shared.users += 1
            self._shared = shared
            self._key = key

    def _check_open(self) -> _SharedEnv:
        shared = self._shared
        if self._closed or shared is None:
            raise StoreError(f"LMDB store at {self.path} is closed")
        return shared

    def _failed(self, what: str, e: Exception) -> StoreError:
        return StoreError(f"LMDB store at {self.path}: {what} failed: {e}")

    # -- NodeStore --------------------------------------------------------------------------

    def _get(self, address: bytes) -> bytes | None:
        if type(address) is not bytes or len(address) != ADDRESS_SIZE:
            address = check_address(address)
        with self._mutex:
            shared = self._check_open()
            data = self._pending.get(address)
            if data is not None:
                return data
            try:
                with shared.env.begin(db=shared.nodes) as txn:
                    return txn.get(address)
            except self._lmdb.Error as e:
                raise self._failed("read", e) from e

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        keys = [check_address(a) for a in addresses]
        out = {}
        with self._mutex:
            shared = self._check_open()
            pending = self._pending
            try:
                with shared.env.begin(db=shared.nodes) as txn:
                    for a in keys:
                        data = pending.get(a)
                        if data is None:
                            data = txn.get(a)
                            if data is None:
                                continue
                        if sha256(data).digest() != a:
                            raise CorruptNodeError(a, "stored bytes do not hash to the address")
                        out[a] = data
            except self._lmdb.Error as e:
                raise self._failed("read", e) from e
        return out

    def _has(self, address: bytes) -> bool:
        if type(address) is not bytes or len(address) != ADDRESS_SIZE:
            address = check_address(address)
        with self._mutex:
            shared = self._check_open()
            if address in self._pending:
                return True
            try:
                with shared.env.begin(db=shared.nodes, buffers=True) as txn:
                    return txn.get(address) is not None
            except self._lmdb.Error as e:
                raise self._failed("read", e) from e

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        items = check_items(items)
        with self._mutex:
            self._check_open()
            pending = self._pending
            for address, data in items:
                if address not in pending:
                    pending[address] = data
                    self._pending_bytes += len(data) + ADDRESS_SIZE
            if self._pending_bytes >= COMMIT_THRESHOLD:
                self._commit()

    def _get_ref(self, name: str) -> bytes | None:
        raw = check_ref_name(name)
        with self._mutex:
            return self._current_ref(name, raw)

    def _current_ref(self, name: str, raw: bytes) -> bytes | None:
        shared = self._check_open()
        if name in self._pending_refs:
            return self._pending_refs[name]
        try:
            with shared.env.begin(db=shared.refs) as txn:
                return txn.get(raw)
        except self._lmdb.Error as e:
            raise self._failed("ref read", e) from e

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        raw = check_ref_name(name)
        value = check_ref_value(value)
        expected = check_expected(expected)
        with self._mutex:
            # Atomic: this process holds the writer lock for the store's life, and the
            # mutex keeps other threads out between the read and the write.
            if expected is not ANY and self._current_ref(name, raw) != expected:
                return False
            self._pending_refs[name] = value
            self._pending_bytes += len(raw) + (len(value) if value else 0)
            return True

    def refs(self) -> Mapping[str, bytes]:
        with self._mutex:
            shared = self._check_open()
            try:
                with shared.env.begin(db=shared.refs) as txn:
                    out = {k.decode("utf-8"): v for k, v in txn.cursor()}
            except self._lmdb.Error as e:
                raise self._failed("ref listing", e) from e
            for name, value in self._pending_refs.items():
                if value is None:
                    out.pop(name, None)
                else:
                    out[name] = value
            return out

    def addresses(self) -> Iterator[bytes]:
        with self._mutex:
            shared = self._check_open()
            try:
                # Collected inside one short read transaction: a long-lived one would pin
                # old pages and make the file grow while the caller works.
                with shared.env.begin(db=shared.nodes) as txn:
                    keys = list(txn.cursor().iternext(keys=True, values=False))
            except self._lmdb.Error as e:
                raise self._failed("listing", e) from e
            extra = [a for a in self._pending if not _contains(keys, a)]
            return iter(keys + extra)

    def remove(self, addresses: Iterable[bytes]) -> int:
        """Delete nodes in one transaction (committed with any buffered writes). LMDB
        reuses the freed pages; the file itself does not shrink."""
        if self.read_only:
            raise ReadOnlyError(f"LMDB store at {self.path} is open read-only")
        keys = [check_address(a) for a in addresses]
        with self._mutex:
            shared = self._check_open()
            self._commit()
            n = 0
            try:
                with shared.env.begin(write=True, db=shared.nodes) as txn:
                    for a in dict.fromkeys(keys):
                        if txn.delete(a):
                            n += 1
            except self._lmdb.Error as e:
                raise self._failed("remove", e) from e
            return n

    def _commit(self) -> None:
        """Write the buffered nodes and refs in one durable LMDB transaction."""
        if not self._pending and not self._pending_refs:
            return
        shared = self._check_open()
        try:
            with shared.env.begin(write=True) as txn:
                if self._pending:
                    # overwrite=False: an address already stored holds the same bytes.
                    with txn.cursor(db=shared.nodes) as cur:
                        cur.putmulti(sorted(self._pending.items()), overwrite=False)
                for name, value in self._pending_refs.items():
                    raw = name.encode("utf-8")
                    if value is None:
                        txn.delete(raw, db=shared.refs)
                    else:
                        txn.put(raw, value, db=shared.refs)
        except self._lmdb.MapFullError as e:
            raise StoreError(f"LMDB store at {self.path} is full (map_size "
                             f"{shared.env.info()['map_size']} bytes); reopen it with a "
                             f"larger map_size") from e
        except self._lmdb.Error as e:
            raise self._failed("commit", e) from e
        self._pending.clear()
        self._pending_refs.clear()
        self._pending_bytes = 0

    def flush(self) -> None:
        """Commit buffered writes in one synced transaction: they survive power loss."""
        with self._mutex:
            if self._closed or self.read_only:
                return
            self._commit()

    def _close_handles(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            with _ENVS_LOCK:
                shared.users -= 1
                if shared.users == 0:
                    _ENVS.pop(self._key, None)
                    shared.env.close()

    def check(self) -> list[StoreProblem]:
        """Read every stored node and ref and check each node's SHA-256 against its key.
        (Buffered, uncommitted writes are not checked: they have not touched the disk.)"""
        problems: list[StoreProblem] = []
        with self._mutex:
            shared = self._check_open()
            try:
                with shared.env.begin(db=shared.nodes) as txn:
                    for key, data in txn.cursor():
                        if len(key) != ADDRESS_SIZE:
                            problems.append(StoreProblem(
                                None, f"key {key[:40]!r} in the nodes database is not a "
                                      f"{ADDRESS_SIZE}-byte node address"))
                        elif sha256(data).digest() != key:
                            problems.append(StoreProblem(
                                key, "stored bytes do not hash to the address"))
                with shared.env.begin(db=shared.refs) as txn:
                    for key in txn.cursor().iternext(keys=True, values=False):
                        try:
                            key.decode("utf-8")
                        except UnicodeDecodeError:
                            problems.append(StoreProblem(None, f"ref name {key!r} is not UTF-8"))
            except self._lmdb.Error as e:
                problems.append(StoreProblem(None, f"LMDB failed while reading: {e}"))
        return problems

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<LMDBNodeStore {self.path!r} {mode}{', closed' if self._closed else ''}>"


def _contains(sorted_keys: list[bytes], key: bytes) -> bool:
    """Membership in a sorted list (LMDB iterates keys in order)."""
    i = bisect_left(sorted_keys, key)
    return i < len(sorted_keys) and sorted_keys[i] == key
