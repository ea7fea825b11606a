"""Root sets changed as a whole: staged writes applied, three-way merges per named tree.

Both functions work tree by tree and touch only trees that changed: an unchanged tree
keeps its root (and costs nothing); a changed one costs O(changes x depth).
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

from ..tree import EMPTY_ROOT, NodeCache, Snapshot, TreeConfig
from .roots import DEFAULT_TREE, RootSet, TreeEntry
from .staging import TreeStage


def stage_exists(stage: TreeStage, committed: bool) -> bool:
    """Whether a tree exists in the working view: it was created, or written to (a put),
    or it is committed and was not dropped since."""
    if stage.config is not None:
        return True
    if any(v is not None for v in stage.changes.values()):
        return True
    return committed and not stage.reset


def apply_stages(cache: NodeCache, trees: RootSet, stages: Mapping[str, TreeStage],
                 default_config: TreeConfig) -> RootSet:
    """The root set after applying the staged writes, drops and creations to ``trees``.
    Writes that change nothing are skipped; a dropped tree with nothing written after
    the drop leaves the set (the default tree becomes empty instead)."""
    out = trees
    for name, st in stages.items():
        if not len(st):
            continue
        entry = trees.get(name)
        live = entry is not None and not st.reset
        base = entry.root if live else EMPTY_ROOT
        if st.config is not None:
            config = TreeConfig.from_bytes(st.config)
        elif entry is not None:
            config = entry.config
        else:
            config = default_config
        root = Snapshot(cache, base, config).apply(
            Snapshot(cache, base, config).changed(st.changes)).root
        if name == DEFAULT_TREE or stage_exists(st, entry is not None):
            if entry is None or entry.root != root or entry.config != config:
                out = out.with_tree(name, root, config)
        elif entry is not None:
            out = out.without(name)
    return out


class TreeMerge(NamedTuple):
    """The plan for one named tree of a merge."""

    name: str
    dest_root: bytes
    config: TreeConfig
    edits: list          #: (key, value or None) to apply to dest_root, sorted
    conflicts: list      #: MergeConflict objects (tree = name)
    exists: bool         #: whether the tree exists after the merge (before resolution)


def plan_merge(cache: NodeCache, base: RootSet | None, dest: RootSet, src: RootSet
               ) -> list[TreeMerge]:
    """Three-way merge plans for every tree whose root differs between ``dest`` and
    ``src`` (a tree absent on a side merges as empty; ``base`` None: no common history).
    A tree's existence merges three-way too: dropped on one side and untouched on the
    other, it is dropped; dropped on one side and changed on the other, the changes are
    conflicts (delete against modify) and the tree stays if anything is left in it."""
    base = base if base is not None else RootSet()
    out = []
    for name in sorted(set(dest) | set(src), key=lambda n: n.encode("utf-8")):
        b_e, d_e, s_e = base.get(name), dest.get(name), src.get(name)
        b_ex, d_ex, s_ex = b_e is not None, d_e is not None, s_e is not None
        b_root = b_e.root if b_ex else EMPTY_ROOT
        d_root = d_e.root if d_ex else EMPTY_ROOT
        s_root = s_e.root if s_ex else EMPTY_ROOT
        exists = s_ex if d_ex == b_ex else d_ex
        if d_root == s_root and d_ex == s_ex:
            continue
        if d_root == b_root and d_ex == b_ex:  # only the source changed it: take it whole
            out.append(TreeMerge(name, s_root, s_e.config if s_ex else d_e.config if d_ex
                                 else TreeConfig(), [], [], exists))
            continue
        if d_root == s_root or s_root == b_root:
            edits, conflicts = [], []
        else:
            edits, conflicts = Snapshot(cache, d_root, TreeConfig()).merge(
                Snapshot(cache, b_root, TreeConfig()), Snapshot(cache, s_root, TreeConfig()),
                None, name)
        config = d_e.config if d_ex else (s_e.config if s_ex else TreeConfig())
        out.append(TreeMerge(name, d_root, config, edits, conflicts, exists))
    return out


def apply_merge(cache: NodeCache, dest: RootSet, plans: list[TreeMerge],
                resolved: Mapping[str, list] | None = None) -> RootSet:
    """``dest`` with every plan applied (plus the ``resolved`` edits per tree name: the
    values chosen for conflicts)."""
    out = dest
    for p in plans:
        edits = p.edits + list((resolved or {}).get(p.name, ()))
        edits.sort(key=lambda e: e[0])
        root = Snapshot(cache, p.dest_root, p.config).apply(edits).root
        if p.name == DEFAULT_TREE or p.exists or root != EMPTY_ROOT:
            out = out.with_tree(p.name, root, p.config)
        else:
            out = out.without(p.name)
    return out


def resolve_all(plans: list[TreeMerge], choose: Callable[[object], tuple[bool, object]]
                ) -> tuple[dict[str, list], list]:
    """Settle every plan's conflicts with ``choose(conflict) -> (settled, value)``:
    returns ({tree name: extra edits}, unresolved conflicts)."""
    extra: dict[str, list] = {}
    unresolved: list = []
    for p in plans:
        for c in p.conflicts:
            settled, value = choose(c)
            if not settled:
                unresolved.append(c)
            elif value != c.destination_value:
                extra.setdefault(p.name, []).append((c.key, value))
    return extra, unresolved


__all__ = ["apply_stages", "plan_merge", "apply_merge", "resolve_all", "stage_exists",
           "TreeMerge", "TreeEntry"]
