"""Argument checks shared by every node store, and the problem record of ``check()``.

The :class:`~prollytree.storage.base.NodeStore` public methods pass caller input through
these before reaching a backend, so every backend raises the same TypeError / ValueError
for the same bad input, before anything is written.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

#: Length of a node address (SHA-256).
ADDRESS_SIZE = 32
#: Sentinel for ``set_ref`` meaning "whatever the ref holds now".
ANY = object()
#: Longest ref name, in UTF-8 bytes (LMDB keys are limited to 511 bytes; keep well below).
MAX_REF_NAME = 255
#: Largest ref value. Refs hold root hashes and small configs; a cap keeps every backend
#: able to keep all refs in memory and catches a node accidentally stored as a ref.
MAX_REF_VALUE = 1 << 20


def check_address(address: object) -> bytes:
    """``address`` if it is 32 bytes; TypeError for non-bytes, ValueError for a bad length."""
    if type(address) is not bytes:
        if not isinstance(address, bytes):
            raise TypeError(f"node address must be bytes, not {type(address).__name__}")
        address = bytes(address)
    if len(address) != ADDRESS_SIZE:
        raise ValueError(f"node address must be {ADDRESS_SIZE} bytes, got {len(address)}")
    return address


def check_data(data: object) -> bytes:
    """Node bytes as ``bytes`` (bytearray and memoryview are copied)."""
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"node data must be bytes, not {type(data).__name__}")


def check_items(items: Iterable[object]) -> list[tuple[bytes, bytes]]:
    """Validate (address, bytes) pairs for put_many, all of them before any is written."""
    out = []
    append = out.append
    for item in items:
        # Fast path for the common case (what the tree layer passes), checked inline.
        if type(item) is tuple and len(item) == 2:
            a, d = item
            if type(a) is bytes and len(a) == ADDRESS_SIZE and type(d) is bytes:
                append(item)
                continue
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"put_many expects (address, bytes) pairs, got {item!r:.80}")
        out.append((check_address(item[0]), check_data(item[1])))
    return out


def check_ref_name(name: object) -> bytes:
    """A ref name's UTF-8 encoding; TypeError for non-str, ValueError for empty/too long."""
    if not isinstance(name, str):
        raise TypeError(f"ref name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("ref name must not be empty")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"ref name {name!r} is not valid Unicode") from None
    if len(raw) > MAX_REF_NAME:
        raise ValueError(f"ref name is {len(raw)} bytes in UTF-8; the limit is {MAX_REF_NAME}")
    return raw


def check_ref_value(value: object, what: str = "ref value") -> bytes | None:
    """A ref value (or None, meaning delete) as bytes."""
    if value is None:
        return None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes or None, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > MAX_REF_VALUE:
        raise ValueError(f"{what} is {len(value)} bytes; refs hold at most {MAX_REF_VALUE}")
    return value


def check_expected(expected: object) -> object:
    """The ``expected`` argument of set_ref: ANY, None, or bytes."""
    if expected is ANY:
        return ANY
    return check_ref_value(expected, "expected ref value")


class StoreProblem(NamedTuple):
    """One problem found by a store's ``check()``: the node it concerns (None when the
    damage cannot be tied to an address, e.g. an unreadable record header) and what is
    wrong."""

    address: bytes | None
    detail: str

    def __str__(self) -> str:
        if self.address is None:
            return self.detail
        return f"node {self.address.hex()}: {self.detail}"
