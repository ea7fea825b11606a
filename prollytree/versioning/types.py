"""The vocabulary of changes shared by every diff consumer.

:class:`ChangeKind` is the one enum of change kinds; the seed-facing strings ("Added",
"Removed", "Modified") of :class:`DiffOperation` and the status words of
``VersionedKvStore.status()`` ("added", "deleted", "modified") derive from it.
"""

from __future__ import annotations

import enum


class ChangeKind(enum.Enum):
    """What happened to a key between two versions."""

    ADDED = "Added"
    REMOVED = "Removed"
    MODIFIED = "Modified"

    @classmethod
    def of(cls, old: object, new: object) -> "ChangeKind":
        """The kind of a change from ``old`` to ``new`` (None: absent)."""
        if old is None:
            return cls.ADDED
        return cls.REMOVED if new is None else cls.MODIFIED

    @property
    def status_word(self) -> str:
        """The word ``status()`` uses: "added", "deleted" or "modified"."""
        return "deleted" if self is ChangeKind.REMOVED else self.value.lower()


class _UnresolvedType:
    """Return :data:`Unresolved` from a conflict-resolution callable to leave a conflict
    unresolved: ``merge`` then raises MergeConflictError listing every such conflict and
    changes nothing."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Unresolved"


Unresolved = _UnresolvedType()


class DiffOperation:
    """What happened to a key, as the seed's API has it: ``operation_type`` is "Added",
    "Removed" or "Modified"; ``value`` is the value added or removed (None for
    Modified); ``old_value`` / ``new_value`` the two values of a modification (None
    otherwise). Compares equal to its kind string."""

    __slots__ = ("kind", "_old", "_new")

    def __init__(self, kind: ChangeKind, old_value: bytes | None,
                 new_value: bytes | None) -> None:
        self.kind = kind
        self._old = old_value
        self._new = new_value

    @property
    def operation_type(self) -> str:
        return self.kind.value

    @property
    def value(self) -> bytes | None:
        if self.kind is ChangeKind.ADDED:
            return self._new
        return self._old if self.kind is ChangeKind.REMOVED else None

    @property
    def old_value(self) -> bytes | None:
        return self._old if self.kind is ChangeKind.MODIFIED else None

    @property
    def new_value(self) -> bytes | None:
        return self._new if self.kind is ChangeKind.MODIFIED else None

    @property
    def old_size(self) -> int | None:
        return None if self._old is None else len(self._old)

    @property
    def new_size(self) -> int | None:
        return None if self._new is None else len(self._new)

    @property
    def value_size(self) -> int | None:
        return self.new_size if self.kind is ChangeKind.ADDED else self.old_size

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.kind.value == other
        if isinstance(other, DiffOperation):
            return (self.kind, self._old, self._new) == (other.kind, other._old, other._new)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.kind.value)

    def __str__(self) -> str:
        return self.kind.value

    def __repr__(self) -> str:
        if self.kind is ChangeKind.MODIFIED:
            return f"DiffOperation.Modified(old_size={self.old_size}, new_size={self.new_size})"
        return f"DiffOperation.{self.kind.value}(value_size={self.value_size})"


class KvDiff:
    """One changed key between two versions: ``key``, ``operation`` (a
    :class:`DiffOperation`, equal to "Added", "Removed" or "Modified"), ``old_value`` and
    ``new_value`` (None where absent)."""

    __slots__ = ("key", "old_value", "new_value", "operation")

    def __init__(self, key: bytes, old_value: bytes | None, new_value: bytes | None) -> None:
        self.key = key
        self.old_value = old_value
        self.new_value = new_value
        self.operation = DiffOperation(ChangeKind.of(old_value, new_value), old_value,
                                       new_value)

    @property
    def kind(self) -> ChangeKind:
        return self.operation.kind

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KvDiff):
            return NotImplemented
        return (self.key, self.old_value, self.new_value) == (
            other.key, other.old_value, other.new_value)

    def __hash__(self) -> int:
        return hash((self.key, self.old_value, self.new_value))

    def __repr__(self) -> str:
        return f"KvDiff(key={self.key!r}, operation={self.operation!r})"
