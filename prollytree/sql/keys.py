"""Order-preserving encoding of SQL key tuples (primary keys and index entries).

``encode_key(values)`` maps a tuple of SQLite values to bytes whose bytewise order is SQLite's
order of the tuples under the BINARY collation: NULL < numbers (integers and reals compared by
value) < text < blob, element by element. Each element is self-delimiting, so the encoding of a
tuple prefix is a byte prefix of the encoding of the whole tuple (index prefix scans rely on it).

Element layouts (tag byte first):

* NULL: ``01``
* number: ``02`` + the IEEE-754 double of the value with its order fixed (8 bytes) + the
  integer remainder ``value - int(float(value))`` (signed, 8 bytes, order fixed; 64-bit
  integers beyond 2**53 stay exact and ordered). An integer and a real of equal value (1 and
  1.0) encode alike, as SQLite compares them equal; an integral number decodes as an int.
* text: ``03`` + UTF-8 with ``00`` escaped as ``00 FF`` + ``00 00``
* blob: ``04`` + bytes escaped the same way + ``00 00``
"""

from __future__ import annotations

import math
import struct

from ..tree import prefix_end  # noqa: E402 - re-exported for the SQL layer

__all__ = ["encode_key", "decode_key", "encode_value", "prefix_end"]

_D = struct.Struct(">d")
_Q = struct.Struct(">Q")
_SIGN = 1 << 63
_MASK = (1 << 64) - 1
_TWO63 = 1 << 63


def _num(v: int | float) -> bytes:
    if isinstance(v, float):
        if math.isnan(v):
            return b"\x01"  # SQLite stores NaN as NULL
        f, rem = v, 0
        if f == 0.0:
            f = 0.0  # -0.0 == 0.0
    else:
        try:
            f = float(v)
        except OverflowError:
            raise ValueError(f"integer out of SQLite's 64-bit range: {v}") from None
        if not -(1 << 63) <= v < (1 << 63):
            raise ValueError(f"integer out of SQLite's 64-bit range: {v}")
        rem = v - int(f)
    (bits,) = _Q.unpack(_D.pack(f))
    bits = bits ^ _MASK if bits & _SIGN else bits | _SIGN
    return b"\x02" + _Q.pack(bits) + _Q.pack((rem + _SIGN) & _MASK)


def _escaped(tag: bytes, b: bytes) -> bytes:
    return tag + b.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


_INT0 = _Q.pack(_SIGN)   # remainder 0
_EXACT = 1 << 53


def encode_value(v: object) -> bytes:
    """The encoding of one SQLite value (None, int, float, str, bytes; bool is an int)."""
    if type(v) is int and -_EXACT <= v <= _EXACT:
        # exact as a double: the common key, without the general path's checks
        (bits,) = _Q.unpack(_D.pack(v))
        return b"\x02" + _Q.pack(bits ^ _MASK if bits & _SIGN else bits | _SIGN) + _INT0
    if v is None:
        return b"\x01"
    if isinstance(v, (int, float)):
        return _num(int(v) if isinstance(v, bool) else v)
    if isinstance(v, str):
        return _escaped(b"\x03", v.encode("utf-8", "surrogatepass"))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _escaped(b"\x04", bytes(v))
    raise TypeError(f"cannot encode a {type(v).__name__} as an SQL key")


def encode_key(values: tuple | list) -> bytes:
    """The order-preserving encoding of a tuple of SQLite values. O(total size)."""
    return b"".join([encode_value(v) for v in values])


def _unescape(b: bytes, i: int) -> tuple[bytes, int]:
    out = []
    while True:
        j = b.index(b"\x00", i)
        out.append(b[i:j])
        if b[j + 1] == 0xFF:
            out.append(b"\x00")
            i = j + 2
        else:  # 00 00 terminator
            return b"".join(out), j + 2


def decode_key(b: bytes) -> tuple:
    """The tuple :func:`encode_key` encoded (inverse). ValueError on malformed input."""
    out: list = []
    i, n = 0, len(b)
    try:
        while i < n:
            tag = b[i]
            if tag == 1:
                out.append(None)
                i += 1
            elif tag == 2:
                (bits,) = _Q.unpack_from(b, i + 1)
                bits = bits ^ _SIGN if bits & _SIGN else bits ^ _MASK
                (f,) = _D.unpack(_Q.pack(bits))
                (rem,) = _Q.unpack_from(b, i + 9)
                if f.is_integer() and -_TWO63 <= f <= _TWO63:
                    iv = int(f) + rem - _SIGN
                    out.append(iv if -_TWO63 <= iv < _TWO63 else f)
                else:
                    out.append(f)
                i += 17
            elif tag in (3, 4):
                raw, i = _unescape(b, i + 1)
                out.append(raw.decode("utf-8", "surrogatepass") if tag == 3 else raw)
            else:
                raise ValueError(f"bad SQL key tag {tag} at offset {i}")
    except (IndexError, struct.error) as e:
        raise ValueError(f"truncated SQL key {b!r}") from e
    return tuple(out)


