"""Root sets: what one commit records.

A commit holds a *root set*: a map from tree name to (root address, :class:`TreeConfig`).
The tree named ``""`` is the default tree, the one :class:`VersionedKvStore`'s key/value
methods read and write; namespaces, SQL tables and indexes and agent-memory kinds are other
named trees of the same commit, so they commit, branch, diff and merge together.

Canonical encoding (pinned by ``tests/versioning/test_roots_golden.py``)::

    msgpack [b"prollytree-rootset", 1, [[name (str), root (32 bytes), config (bytes)], ...]]

with entries sorted by the UTF-8 bytes of their names and the default tree always present.
The same trees give the same bytes, so the same SHA-256 address, on every backend.
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Mapping, NamedTuple

import msgpack

from ..tree import EMPTY_ROOT, TreeConfig

#: name of the default tree
DEFAULT_TREE = ""
ROOTSET_MAGIC = b"prollytree-rootset"
ROOTSET_VERSION = 1
#: longest tree name, in UTF-8 bytes
MAX_TREE_NAME = 200


def check_tree_name(name: object, *, allow_default: bool = True) -> str:
    """Return ``name`` if it is a valid tree name: a ``str`` of at most
    :data:`MAX_TREE_NAME` UTF-8 bytes without control characters (``""`` is the default
    tree). TypeError / ValueError otherwise."""
    if type(name) is str and name in _VALID:      # hot path: names seen before
        return name
    if not isinstance(name, str):
        raise TypeError(f"tree name must be a str, not {type(name).__name__}")
    if name == DEFAULT_TREE:
        if not allow_default:
            raise ValueError("the default tree '' cannot be used here")
        return name
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"tree name {name!r:.60} is not valid Unicode") from None
    if size > MAX_TREE_NAME:
        raise ValueError(f"tree name is {size} bytes long; at most {MAX_TREE_NAME} allowed")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ValueError(f"tree name {name!r:.60} contains a control character")
    if len(_VALID) < 4096:
        _VALID.add(name)
    return name


#: names already checked (SQL tables and memory kinds ask on every row)
_VALID: set = set()


def _sort_key(name: str) -> bytes:
    return name.encode("utf-8")


class TreeEntry(NamedTuple):
    """One named tree of a commit: its root address and its chunking config."""

    root: bytes
    config: TreeConfig


class RootSet(Mapping[str, TreeEntry]):
    """An immutable, canonical map tree name -> :class:`TreeEntry`; the default tree is
    always present (empty when nothing was written to it)."""

    __slots__ = ("_entries", "_encoded")

    def __init__(self, entries: Mapping[str, TreeEntry] | None = None,
                 default_config: TreeConfig | None = None) -> None:
        items = dict(entries or {})
        if DEFAULT_TREE not in items:
            items[DEFAULT_TREE] = TreeEntry(EMPTY_ROOT, default_config or TreeConfig())
        for name, entry in items.items():
            check_tree_name(name)
            if not isinstance(entry, TreeEntry):
                raise TypeError(f"root set entries must be TreeEntry, not "
                                f"{type(entry).__name__}")
            if not isinstance(entry.root, bytes) or len(entry.root) != 32:
                raise ValueError(f"tree {name!r}: a root address is 32 bytes")
        self._entries = {n: items[n] for n in sorted(items, key=_sort_key)}
        self._encoded: bytes | None = None

    @classmethod
    def single(cls, root: bytes, config: TreeConfig) -> "RootSet":
        """The root set of a dataset that has only the default tree (a version-1 commit)."""
        return cls({DEFAULT_TREE: TreeEntry(root, config)})

    # -- Mapping -------------------------------------------------------------------------

    def __getitem__(self, name: str) -> TreeEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RootSet):
            return self.encode() == other.encode()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.encode())

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {e.root.hex()[:12]}" for n, e in self._entries.items())
        return f"RootSet({{{inner}}})"

    # -- derived sets ------------------------------------------------------------------------

    @property
    def default_root(self) -> bytes:
        return self._entries[DEFAULT_TREE].root

    def root_of(self, name: str) -> bytes | None:
        """The root of tree ``name``, None when the set has no such tree."""
        e = self._entries.get(name)
        return None if e is None else e.root

    def with_tree(self, name: str, root: bytes, config: TreeConfig) -> "RootSet":
        """A copy with tree ``name`` set to (``root``, ``config``)."""
        items = dict(self._entries)
        items[name] = TreeEntry(root, config)
        return RootSet(items)

    def without(self, name: str) -> "RootSet":
        """A copy without tree ``name`` (the default tree becomes empty instead)."""
        items = dict(self._entries)
        if name == DEFAULT_TREE:
            items[name] = TreeEntry(EMPTY_ROOT, items[name].config)
        else:
            items.pop(name, None)
        return RootSet(items)

    def roots(self) -> list[bytes]:
        """Every root address of the set (for reachability walks)."""
        return [e.root for e in self._entries.values()]

    # -- encoding ------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The canonical bytes (see the module docstring)."""
        if self._encoded is None:
            self._encoded = msgpack.packb(
                [ROOTSET_MAGIC, ROOTSET_VERSION,
                 [[n, e.root, e.config.to_bytes()] for n, e in self._entries.items()]],
                use_bin_type=True)
        return self._encoded

    def address(self) -> bytes:
        """SHA-256 of :meth:`encode`: the root set's address in a node store."""
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> "RootSet":
        """Inverse of :meth:`encode`; ValueError for anything else."""
        try:
            rec = msgpack.unpackb(data, raw=False)
        except Exception as e:  # msgpack raises several unrelated types
            raise ValueError(f"not a root set: {e}") from None
        if (not isinstance(rec, list) or len(rec) != 3 or rec[0] != ROOTSET_MAGIC
                or rec[1] != ROOTSET_VERSION or not isinstance(rec[2], list)):
            raise ValueError("not a root set record")
        items = {}
        for ent in rec[2]:
            if (not isinstance(ent, list) or len(ent) != 3 or not isinstance(ent[0], str)
                    or not isinstance(ent[1], bytes) or not isinstance(ent[2], bytes)):
                raise ValueError("damaged root set entry")
            items[ent[0]] = TreeEntry(ent[1], TreeConfig.from_bytes(ent[2]))
        return cls(items)
