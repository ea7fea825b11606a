"""Merge and revert of a working copy: three-way, per named tree.

A mixin of :class:`~.workspace.Workspace` (kept in its own module: one idea per module).
``merge`` fast-forwards when it can, does nothing when the source is merged already, and
otherwise plans a three-way merge per changed tree (:mod:`.rootmerge`), settles conflicts
with the chosen policy (:func:`resolve_conflicts`, the one policy merge and revert share)
and records a two-parent merge commit. Costs grow with the changes on both sides.
"""

from __future__ import annotations

from typing import Any

from ..errors import MergeConflictError, RevertConflictError
from ..tree import ConflictResolution, MergeConflict
from .backend import HEADS
from .rootmerge import apply_merge, plan_merge, resolve_all
from .roots import RootSet
from .types import Unresolved


def _check_message(message: object) -> None:
    """A merge message given by the caller: None (the default) or a non-blank str."""
    if message is None:
        return
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, not {type(message).__name__}")
    if not message.strip():
        raise ValueError("commit message is empty (Git refuses empty messages too)")


class MergeMixin:
    """``merge``, ``try_merge`` and ``revert`` of a :class:`~.workspace.Workspace`."""

    def _merge_plan(self, source_branch: str):
        """(dest tip, source commit, base or None, kind) with kind "noop", "ff" or "merge"."""
        if not isinstance(source_branch, str):
            raise TypeError(f"source_branch must be a str, not {type(source_branch).__name__}")
        self._writable()
        src = self.repo.resolve(source_branch)
        base, kind = self.repo.merge_kind(self._head, src)
        return self._head, src, base, kind

    def _check_clean(self, what: str) -> None:
        """Refuse ``what`` with staged changes (under the exclusive lock); staged writes
        that change nothing (see :meth:`status`) are dropped instead."""
        if len(self._staging):
            changes = self.tree_status()  # every tree: namespaces too
            if changes:
                raise ValueError(f"cannot {what} with {len(changes)} staged change(s): "
                                 f"commit them first")
            self._staging.clear()
            self._gen = self._staging.generation

    def merge(self, source_branch: str, conflict_resolution: Any = None, *,
              message: str | None = None) -> str:
        """Three-way merge ``source_branch`` (any ref expression) into the current branch;
        returns the resulting commit id.

        Fast-forwards when the current branch is an ancestor of the source, does nothing
        when the source is already merged, else records a two-parent merge commit.
        ``conflict_resolution``: None or ``ConflictResolution.IgnoreAll`` /
        ``TakeDestination`` keep the current branch's value for conflicting keys;
        ``TakeSource`` takes the source's (deleting where the source deleted); a callable
        gets each :class:`MergeConflict` and returns the value to keep (None deletes), or
        :data:`Unresolved` to refuse: the merge then raises MergeConflictError (a
        ValueError) listing those conflicts and changes nothing, as it does when the
        callable raises. ``message`` replaces the default merge commit message
        (``Merge branch 'x' into main``)."""
        _check_message(message)
        res = conflict_resolution
        if res is not None and not isinstance(res, ConflictResolution) and not callable(res):
            raise TypeError(f"conflict_resolution must be a ConflictResolution or a callable, "
                            f"not {type(res).__name__}")
        return self._merge(source_branch, message, res, refuse_conflicts=False)[0]

    def _merge(self, source_branch: str, message: str | None, res: Any,
               refuse_conflicts: bool) -> tuple[str | None, list]:
        """(resulting commit id, []) after merging; (None, conflicts) having changed
        nothing when ``refuse_conflicts`` and there are conflicts; MergeConflictError
        when ``res`` leaves some unresolved."""
        with self._backend.lock.exclusive():
            self._sync()
            self._load_head()
            self._check_clean("merge")
            dest, src, base, kind = self._merge_plan(source_branch)
            if kind == "noop":
                return dest, []
            if kind == "ff":
                self.repo.fast_forward(self._branch, dest, src)
                self._moved()
                return src, []
            dest_trees, plans, conflicts = self.repo.plan(base, dest, src)
            if refuse_conflicts:
                if conflicts:
                    return None, conflicts
                extra: dict = {}
            else:
                extra, unresolved = self._resolve_conflicts(plans, res)
                if unresolved:
                    raise MergeConflictError(
                        f"merge of {source_branch!r} into {self._branch!r} stopped on "
                        f"{len(unresolved)} unresolved conflict(s): "
                        + ", ".join(repr(c.key) for c in unresolved[:20])
                        + (" ..." if len(unresolved) > 20 else ""), unresolved)
            return self._finish_merge(source_branch, dest, src, dest_trees, plans, extra,
                                      message), []

    @staticmethod
    def _resolve_conflicts(plans: list, res: Any) -> tuple[dict, list]:
        """({tree: edits settling its conflicts}, conflicts left unresolved)."""

        def choose(c: MergeConflict) -> tuple[bool, object]:
            if res is None or res is ConflictResolution.IgnoreAll \
                    or res is ConflictResolution.TakeDestination:
                return True, c.destination_value
            if res is ConflictResolution.TakeSource:
                return True, c.source_value
            try:
                value = res(c)
            except Exception as e:
                raise MergeConflictError(
                    f"conflict resolver failed on key {c.key!r}: {e!r}; nothing was "
                    f"merged", [c]) from e
            if value is Unresolved:
                return False, None
            if value is not None and not isinstance(value, bytes):
                raise TypeError(f"conflict resolver must return bytes, None or "
                                f"Unresolved, not {type(value).__name__}")
            return True, value

        return resolve_all(plans, choose)

    def _finish_merge(self, source: str, dest: str, src: str, dest_trees: RootSet,
                      plans: list, extra: dict | None = None,
                      message: str | None = None) -> str:
        b = self._backend
        trees = apply_merge(b.cache, dest_trees, plans, extra)
        if b.get_ref(HEADS + source) is not None:
            label = f"branch '{source}'"
        elif b.remote_commit(source) is not None:
            label = f"remote-tracking branch '{source}'"
        else:
            label = f"commit '{src[:12]}'"
        if message is None:
            message = f"Merge {label} into {self._branch}"
        cid = self.repo.write_commit(self._branch, dest, trees, [dest, src], message)
        self._moved()
        return cid

    def try_merge(self, source_branch: str, *, message: str | None = None
                  ) -> tuple[bool, list[MergeConflict]]:
        """Merge ``source_branch`` if that needs no conflict resolution: returns
        ``(True, [])`` after merging, or ``(False, conflicts)`` (sorted by tree and key)
        having changed nothing."""
        _check_message(message)
        cid, conflicts = self._merge(source_branch, message, None, refuse_conflicts=True)
        return cid is not None, conflicts

    def revert(self, ref: str, message: str | None = None) -> str | None:
        """Record a new commit on the current branch undoing the changes of commit
        ``ref`` (for a merge commit: its changes against its first parent): each key it
        changed goes back to its value before it (a key it added is deleted). Returns
        the new commit id, or None when those changes are already undone (nothing is
        committed).

        A key changed again since ``ref`` (its current value is neither the one ``ref``
        made nor the one before) is a conflict: RevertConflictError (a ValueError, with
        ``conflicts``) and nothing changes. Refused with staged changes (ValueError) or
        a detached HEAD (ReadOnlyError). The default message is Git's: ``Revert
        "<subject>"`` and ``This reverts commit <id>.``"""
        if message is not None and not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        b = self._backend
        with b.lock.exclusive():
            self._sync()
            self._load_head()
            self._writable()
            self._check_clean("revert")
            cid = self.repo.resolve(ref)
            c = b.read_commit(cid)
            before = (b.read_commit(c.parents[0]).trees if c.parents
                      else RootSet(default_config=b.config))
            # a three-way merge of the state before the commit into HEAD, with the
            # commit itself as the base: only the commit's changes move
            plans = plan_merge(b.cache, c.trees, self._trees, before)
            conflicts = [x for p in plans for x in p.conflicts]
            if conflicts:
                raise RevertConflictError(
                    f"cannot revert {cid[:12]}: {len(conflicts)} key(s) changed since: "
                    + ", ".join(repr(x.key) for x in conflicts[:20])
                    + (" ..." if len(conflicts) > 20 else "") + "; nothing was changed",
                    conflicts)
            trees = apply_merge(b.cache, self._trees, plans)
            if trees == self._trees:
                return None
            subject = (c.message.splitlines() or [""])[0]
            if message is None:
                message = f'Revert "{subject}"\n\nThis reverts commit {cid}.'
            new = self.repo.write_commit(self._branch, self._head, trees, [self._head], message)
            self._moved()
            return new
