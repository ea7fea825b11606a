"""Where a dataset lives in a Git commit's tree (format: ``docs/format.md``, root sets).

Layout of a dataset at ``<prefix>`` in every commit's tree::

    <prefix>/.prolly/ROOT     "prollytree-dataset 2\nroot <64 hex>\nrootset <64 hex>\n"
    <prefix>/.prolly/rootset  the root set's canonical bytes
    <prefix>/.prolly/config   the default tree's TreeConfig bytes
    <prefix>/.prolly/tree     the default tree's mirror
    <prefix>/.prolly/trees/<%-quoted name>   every other named tree's mirror
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

from .roots import DEFAULT_TREE, RootSet

DATASET_DIR = b".prolly"
ROOT_ENTRY = b"ROOT"
CONFIG_ENTRY = b"config"
TREE_ENTRY = b"tree"
TREES_DIR = b"trees"
ROOTSET_ENTRY = b"rootset"
ROOT_MAGIC_V1 = b"prollytree-dataset 1\n"
ROOT_MAGIC = b"prollytree-dataset 2\n"


class Dataset(NamedTuple):
    """The dataset in one commit's tree."""

    trees: RootSet              #: the named trees (only an empty default: no dataset)
    tree_id: bytes | None       #: 20-byte id of the ``.prolly`` tree (None: no dataset)
    files: dict                 #: {entry name: (mode, 20-byte id)} of ``.prolly``
    mirrors: dict               #: {tree name: (mode, 20-byte id) of its mirror}

    @property
    def root(self) -> bytes:
        """Root address of the default tree (EMPTY_ROOT when there is no dataset)."""
        return self.trees.default_root


def mirror_path(name: str) -> bytes:
    """Path of tree ``name``'s mirror below ``.prolly/``."""
    if name == DEFAULT_TREE:
        return TREE_ENTRY
    return TREES_DIR + b"/" + quote(name, safe="").encode("ascii")


NO_DATASET = Dataset(RootSet(), None, {}, {})
