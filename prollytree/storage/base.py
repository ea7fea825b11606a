"""The content-addressed node-store interface every backend implements.

A node store maps a 32-byte address (SHA-256 of the node's encoding) to the node's bytes,
and keeps a handful of small named *refs* (a tree's current root, its config, a branch
head) updated by compare-and-swap. Nodes are immutable, so a store never overwrites one.

A new backend subclasses :class:`NodeStore` and implements five methods: ``_get``,
``_put_many``, ``_has``, ``_get_ref`` and ``_set_ref``. Everything else has a working
default that a backend may override for speed (``get_many``, ``addresses``, ``remove``).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Iterable, Iterator, Mapping

from ..errors import CorruptNodeError, ReadOnlyError
from .checks import (
    ADDRESS_SIZE, ANY, check_address, check_expected, check_items, check_ref_name,
    check_ref_value,
)

__all__ = ["ADDRESS_SIZE", "ANY", "NodeStore", "address_of"]


def address_of(data: bytes) -> bytes:
    """The content address of encoded node bytes: their SHA-256 digest."""
    return hashlib.sha256(data).digest()


class NodeStore(ABC):
    """Content-addressed node storage with compare-and-swap refs.

    Subclasses set :attr:`verify_reads` to True when the bytes they return could have been
    damaged outside this process (anything on disk); reads are then checked against their
    address and a mismatch raises :class:`~prollytree.errors.CorruptNodeError`.
    """

    #: Check every node read against its address.
    verify_reads: bool = False
    #: True when the store was opened without write access.
    read_only: bool = False
    #: Bumped by every successful :meth:`set_ref` through this object.
    ref_generation: int = 0
    #: Short name of the backend ("memory", "file", ...).
    kind: str = "abstract"

    # -- what a backend implements -------------------------------------------------

    @abstractmethod
    def _get(self, address: bytes) -> bytes | None:
        """Raw bytes stored under ``address``, or None."""

    @abstractmethod
    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """Store (address, bytes) pairs. Addresses already present may be skipped."""

    @abstractmethod
    def _has(self, address: bytes) -> bool:
        """Whether ``address`` is stored."""

    @abstractmethod
    def _get_ref(self, name: str) -> bytes | None:
        """The value of ref ``name`` or None."""

    @abstractmethod
    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        """Set (or delete when ``value`` is None) a ref if it currently equals ``expected``
        (``ANY`` skips the check). Returns whether the ref was changed."""

    # -- public surface ----------------------------------------------------------------

    def get(self, address: bytes) -> bytes | None:
        """The node stored at ``address``, or None when absent.

        Raises CorruptNodeError when the stored bytes do not hash to ``address``.
        """
        data = self._get(check_address(address))
        if data is not None and self.verify_reads and address_of(data) != address:
            raise CorruptNodeError(address, "stored bytes do not hash to the address")
        return data

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        """The nodes present among ``addresses``, as a dict (absent ones are left out)."""
        out = {}
        for a in map(check_address, addresses):
            data = self.get(a)
            if data is not None:
                out[a] = data
        return out

    def put(self, address: bytes, data: bytes) -> None:
        """Store one node under its address."""
        self.put_many([(address, data)])

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Store many (address, bytes) pairs."""
        if self.read_only:
            raise ReadOnlyError(f"{self.kind} store is open read-only")
        items = check_items(items)
        if items:
            self._put_many(items)

    def has(self, address: bytes) -> bool:
        """Whether a node is stored at ``address``."""
        return self._has(check_address(address))

    def get_ref(self, name: str) -> bytes | None:
        """The value of the named ref, or None when it does not exist."""
        check_ref_name(name)
        return self._get_ref(name)

    def set_ref(self, name: str, value: bytes | None, expected: object = ANY) -> bool:
        """Set ref ``name`` to ``value`` (None deletes it), atomically, if it currently holds
        ``expected`` (None meaning "does not exist"; the default ``ANY`` skips the check).
        Returns False, changing nothing, when the current value differs."""
        if self.read_only:
            raise ReadOnlyError(f"{self.kind} store is open read-only")
        check_ref_name(name)
        done = self._set_ref(name, check_ref_value(value), check_expected(expected))
        if done:
            # objects sharing this store (two trees on one path in one process) notice
            # ref moves by comparing this counter: one attribute read per lookup
            self.ref_generation += 1
        return done

    def refs(self) -> Mapping[str, bytes]:
        """All refs, as a name -> value mapping."""
        raise NotImplementedError(f"{self.kind} store cannot list refs")

    def addresses(self) -> Iterator[bytes]:
        """Every stored node address (order unspecified)."""
        raise NotImplementedError(f"{self.kind} store cannot enumerate its nodes")

    def remove(self, addresses: Iterable[bytes]) -> int:
        """Delete the given nodes; returns how many were removed. Used by garbage
        collection, which alone decides what is unreachable."""
        raise NotImplementedError(f"{self.kind} store cannot remove nodes")

    def flush(self) -> None:
        """Make every write so far durable (a no-op for volatile stores)."""

    def close(self) -> None:
        """Flush and release files and locks. The store is unusable afterwards."""
        self.flush()

    def __enter__(self) -> "NodeStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
