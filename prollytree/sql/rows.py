"""Row encoding: a row is the msgpack array of its column values, in column order."""

from __future__ import annotations

import msgpack

__all__ = ["encode_row", "decode_row"]

_packer = msgpack.Packer(use_bin_type=True)


def encode_row(values) -> bytes:
    """msgpack of the list of values (None, int, float, str, bytes)."""
    return _packer.pack(list(values))


def decode_row(b: bytes) -> list:
    return msgpack.unpackb(b, raw=False, use_list=True)
