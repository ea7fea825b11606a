"""Three-way merge of two trees against their common base.

Both sides' changes are computed structurally (see :mod:`.diff`), so the cost grows with
the number of changes, not with tree size. A key changed on one side only takes that
side's change; a key changed identically on both sides is fine; a key changed differently
on both sides (including delete vs modify) is a :class:`MergeConflict`, settled by a
resolution or reported back unresolved.
"""

from __future__ import annotations

import enum
from typing import Callable, Union

from .codec import Envelope
from .diff import diff_roots
from .node_cache import NodeCache
from .values import DEFAULT_THRESHOLD, read_value, write_value


class ConflictResolution(enum.Enum):
    """Built-in strategies for merge conflicts.

    ``IgnoreAll`` keeps the destination's value for every conflicting key (the source's
    conflicting changes are ignored); ``TakeSource`` takes the source's value (deleting
    the key when the source deleted it); ``TakeDestination`` keeps the destination's.
    """

    IgnoreAll = "ignore_all"
    TakeSource = "take_source"
    TakeDestination = "take_destination"

    def __repr__(self) -> str:
        return f"ConflictResolution.{self.name}"

    __str__ = __repr__


class MergeConflict:
    """A key both sides changed differently. Values are None where the key is absent
    (never existed in the base, or deleted on that side). ``tree`` names the tree of a
    versioned store the key belongs to (``""``: the default tree)."""

    __slots__ = ("key", "base_value", "source_value", "destination_value", "tree")

    def __init__(self, key: bytes, base_value: bytes | None, source_value: bytes | None,
                 destination_value: bytes | None, tree: str = "") -> None:
        self.key = key
        self.base_value = base_value
        self.source_value = source_value
        self.destination_value = destination_value
        self.tree = tree

    def _tuple(self) -> tuple:
        return (self.key, self.base_value, self.source_value, self.destination_value,
                self.tree)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MergeConflict):
            return NotImplemented
        return self._tuple() == other._tuple()

    def __hash__(self) -> int:
        return hash(self._tuple())

    def __repr__(self) -> str:
        where = f", tree={self.tree!r}" if self.tree else ""
        return (f"MergeConflict(key={self.key!r}, base_value={self.base_value!r}, "
                f"source_value={self.source_value!r}, "
                f"destination_value={self.destination_value!r}{where})")


#: A resolver: a ConflictResolution, or a callable returning the value to keep (None to
#: delete the key). Callables may raise to abort the merge.
Resolver = Union[ConflictResolution, Callable[[MergeConflict], Union[bytes, None]], None]


class _Unresolved:
    pass


UNRESOLVED = _Unresolved()


def resolve_conflict(conflict: MergeConflict, resolver: Resolver) -> object:
    """The value ``resolver`` picks for ``conflict`` (None = delete), or UNRESOLVED."""
    if resolver is None:
        return UNRESOLVED
    if resolver is ConflictResolution.IgnoreAll or resolver is ConflictResolution.TakeDestination:
        return conflict.destination_value
    if resolver is ConflictResolution.TakeSource:
        return conflict.source_value
    if callable(resolver):
        value = resolver(conflict)
        if value is not None and not isinstance(value, bytes):
            raise TypeError(
                f"conflict resolver must return bytes or None, not {type(value).__name__}")
        return value
    raise TypeError(f"conflict_resolution must be a ConflictResolution or a callable, "
                    f"not {type(resolver).__name__}")


def _stored_form(cache: NodeCache, value, conflict: MergeConflict, base, src, dst):
    """The leaf form of a resolved value: a side's own envelope when it is that side's
    value, a new envelope (chunks stored) for another large value, else the bytes."""
    if value is None:
        return None
    for shown, stored in ((conflict.source_value, src), (conflict.destination_value, dst),
                          (conflict.base_value, base)):
        if stored is not None and type(stored) is Envelope and value == shown:
            return stored
    if len(value) > DEFAULT_THRESHOLD and type(value) is not Envelope:
        return write_value(cache.store.put_many, value)
    return value


def three_way_merge(cache: NodeCache, base: bytes, destination: bytes, source: bytes,
                    resolver: Resolver = None, tree: str = ""
                    ) -> tuple[list, list[MergeConflict]]:
    """Merge ``source`` into ``destination`` (all three are root addresses in ``cache``'s
    store; ``tree`` labels the conflicts). Returns (edits to apply to ``destination``, sorted, value None = delete;
    conflicts the resolver left unresolved, sorted by key)."""
    edits: list = []
    unresolved: list[MergeConflict] = []
    raw = cache.raw

    def read(v):
        return read_value(raw, v) if type(v) is Envelope else v

    dst = diff_roots(cache, base, destination)
    src = diff_roots(cache, base, source)
    end = object()
    d = next(dst, end)
    s = next(src, end)
    while s is not end:
        if d is not end and d[0] < s[0]:
            d = next(dst, end)
            continue
        if d is end or s[0] < d[0]:
            edits.append((s[0], s[2]))  # only the source changed this key
        elif d[2] != s[2]:
            # values compared as the leaves hold them; a conflict shows the bytes
            conflict = MergeConflict(s[0], read(s[1]), read(s[2]), read(d[2]), tree)
            value = resolve_conflict(conflict, resolver)
            if value is not UNRESOLVED:
                value = _stored_form(cache, value, conflict, s[1], s[2], d[2])
            if value is UNRESOLVED:
                unresolved.append(conflict)
            elif value != d[2]:
                edits.append((s[0], value))
            d = next(dst, end)
        else:
            d = next(dst, end)  # both sides made the same change
        s = next(src, end)
    return edits, unresolved
