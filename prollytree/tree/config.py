"""TreeConfig: the parameters of the chunk-boundary rule.

A prolly tree cuts each level's sorted entries into nodes at *content-defined* boundaries:
an entry ends a node when a hash of its key, taken modulo ``modulus``, equals ``pattern``.
Only key bytes are hashed, so a value change never moves a boundary. With the defaults a
node holds about 64 entries. The parameters:

``base``
    Seed of the boundary hash (mixed with the level number). Two trees with different
    bases chunk independently; the same base always gives the same shape.
``modulus``
    Average node fan-out: each key is a boundary with probability ``1/modulus``.
``pattern``
    The residue that marks a boundary, ``0 <= pattern < modulus``.
``min_chunk_size``
    A boundary is only honoured once a node holds at least this many entries. Internal
    levels always use at least 2, which guarantees each level is at most half as wide as
    the one below, so every tree has a single root.
``max_chunk_size``
    A node is cut after this many entries even without a hash boundary (bounds node size
    for adversarial keys).

A config whose leaves would hold fewer than two entries on average is refused (ValueError):
such trees have as many leaves as pairs. The expected leaf size is
``min + q * modulus * (1 - q ** (max - min))`` with ``q = 1 - 1 / modulus`` (every position
from ``min - 1`` on is a cut with probability ``1 / modulus``, capped at ``max``); for
example ``modulus=1`` needs ``min_chunk_size >= 2``, and ``modulus=2, max_chunk_size=3``
is refused. Internal levels hold at least two entries per node by construction.

Every tree with the same config and the same key/value set has the same root hash. Changing
any parameter changes the shapes, and so the root hashes, of trees built with it.
"""

from __future__ import annotations

from typing import Any

import msgpack

_FIELDS = ("base", "modulus", "min_chunk_size", "max_chunk_size", "pattern")
_MAX_SEED_BASE = 2**47  # base << 16 | level must fit xxh3's 64-bit seed


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"TreeConfig.{name} must be an int, not {type(value).__name__}")
    return value


def expected_leaf_size(modulus: int, min_chunk_size: int, max_chunk_size: int) -> float:
    """Mean number of entries per leaf under these parameters (random keys)."""
    q = 1.0 - 1.0 / modulus
    return min_chunk_size + q * modulus * (1.0 - q ** (max_chunk_size - min_chunk_size))


class TreeConfig:
    """Chunking parameters of a prolly tree (see the module docstring)."""

    __slots__ = _FIELDS

    def __init__(self, base: int = 4, modulus: int = 64, min_chunk_size: int = 1,
                 max_chunk_size: int = 4096, pattern: int = 0) -> None:
        base = _check_int("base", base)
        modulus = _check_int("modulus", modulus)
        min_chunk_size = _check_int("min_chunk_size", min_chunk_size)
        max_chunk_size = _check_int("max_chunk_size", max_chunk_size)
        pattern = _check_int("pattern", pattern)
        if not 0 <= base < _MAX_SEED_BASE:
            raise ValueError(f"TreeConfig.base must be in [0, 2**47), got {base}")
        if modulus < 1:
            raise ValueError(f"TreeConfig.modulus must be >= 1, got {modulus}")
        if not 0 <= pattern < modulus:
            raise ValueError(
                f"TreeConfig.pattern must be in [0, modulus={modulus}), got {pattern}")
        if min_chunk_size < 1:
            raise ValueError(f"TreeConfig.min_chunk_size must be >= 1, got {min_chunk_size}")
        if max_chunk_size < 2:
            raise ValueError(f"TreeConfig.max_chunk_size must be >= 2, got {max_chunk_size}")
        if max_chunk_size < min_chunk_size:
            raise ValueError(
                f"TreeConfig.max_chunk_size ({max_chunk_size}) must be >= "
                f"min_chunk_size ({min_chunk_size})")
        expected = expected_leaf_size(modulus, min_chunk_size, max_chunk_size)
        if expected < 2 - 1e-9:
            raise ValueError(
                f"TreeConfig(modulus={modulus}, min_chunk_size={min_chunk_size}, "
                f"max_chunk_size={max_chunk_size}) gives leaves of {expected:.2f} entries on "
                f"average: a degenerate tree (at least 2 needed; raise modulus, "
                f"min_chunk_size or max_chunk_size)")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "modulus", modulus)
        object.__setattr__(self, "min_chunk_size", min_chunk_size)
        object.__setattr__(self, "max_chunk_size", max_chunk_size)
        object.__setattr__(self, "pattern", pattern)

    def __setattr__(self, name: str, value: Any) -> None:
        # Immutable: a tree's shape depends on its config, so changing it under a live
        # tree would silently break history independence.
        raise AttributeError("TreeConfig is immutable; create a new one")

    def to_dict(self) -> dict[str, int]:
        """The five parameters as a dict."""
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> "TreeConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        if not isinstance(d, dict):
            raise TypeError("TreeConfig.from_dict expects a dict")
        unknown = set(d) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown TreeConfig fields: {sorted(unknown)}")
        return cls(**d)

    def to_bytes(self) -> bytes:
        """Canonical serialisation (msgpack array in field order), as kept in stores."""
        return msgpack.packb([getattr(self, f) for f in _FIELDS])

    @classmethod
    def from_bytes(cls, data: bytes) -> "TreeConfig":
        """Inverse of :meth:`to_bytes`."""
        try:
            values = msgpack.unpackb(data)
        except Exception as e:  # msgpack raises several unrelated types
            raise ValueError(f"not a serialised TreeConfig: {e}") from None
        if not isinstance(values, list) or len(values) != len(_FIELDS):
            raise ValueError("not a serialised TreeConfig")
        return cls(*values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TreeConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in _FIELDS))

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)}" for f in _FIELDS)
        return f"TreeConfig({args})"

    def __reduce__(self):
        return (TreeConfig, tuple(getattr(self, f) for f in _FIELDS))
