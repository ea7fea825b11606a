"""Git worktrees as independent working copies of one dataset.

A :class:`WorktreeManager` drives *real* Git worktrees (the ``git`` executable: ``git
worktree add/list/remove``), so ``git worktree list``, ``git status`` and ``git log`` work
in them and worktrees made by other managers, other processes or by hand are seen.

Why this gives independent working copies for free: a linked worktree has its own Git
directory (``.git/worktrees/<id>``), and a :class:`VersionedKvStore` keeps its HEAD,
staging journal and lock in ``<git dir>/prollytree/datasets/...``. So
``VersionedKvStore(<worktree>/<dataset>)`` in each worktree is its own workspace over the
shared objects and refs: commits in one are visible as branches in the others, and two
worktrees commit concurrently without waiting for each other except for the instant of a
ref update.

Locks are Git's own: ``.git/worktrees/<id>/locked`` (what ``git worktree lock`` writes;
Git then refuses to prune, move or remove the worktree). Git cannot lock the main
worktree, so its lock is the file ``.git/prollytree/main-worktree.locked`` (same format).
On top of Git's meaning, a locked worktree refuses writes and commits through every
:class:`~prollytree.versioning.worktree_store.WorktreeVersionedKvStore` except the one
that took the lock (its *holder*, named in ``prollytree-lock-holder`` next to the lock
file), and refuses being the target of a manager merge. Plain :class:`VersionedKvStore`
objects do not look at these locks.

See ``docs/namespaces.md`` for examples.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from typing import Any

from ..errors import (MergeConflictError, StoreError, UnknownRefError,
                      WorktreeLockedError)
from ..tree.merge import ConflictResolution
from .kv_store import VersionedKvStore
from .refs import check_branch_name

__all__ = ["WorktreeManager", "WorktreeLockedError", "GitCommandError", "MAIN_ID"]

#: the id of the main worktree (linked worktrees use Git's id: ``.git/worktrees/<id>``)
MAIN_ID = "main"
_HOLDER = "prollytree-lock-holder"
#: temporary worktrees and branches a merge works in (hidden from the listings)
_TMP_PREFIX = "prollytree-merge-"
_TMP_BRANCH = "prollytree-merge/"


class GitCommandError(ValueError):
    """A ``git`` command the manager ran failed (the message carries Git's)."""


def _git_env() -> dict:
    env = dict(os.environ)
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR"):
        env.pop(k, None)
    return env


def _git(cwd: str, *args: str, data: bytes | None = None, check: bool = True) -> bytes:
    r = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True,
                       env=_git_env())
    if check and r.returncode:
        msg = r.stderr.decode("utf-8", "replace").strip() or f"exit code {r.returncode}"
        raise GitCommandError(f"git {args[0]} {args[1] if len(args) > 1 else ''}: {msg}")
    return r.stdout


def _check_id(worktree_id: object) -> str:
    if not isinstance(worktree_id, str):
        raise TypeError(f"worktree_id must be a str, not {type(worktree_id).__name__}")
    if not worktree_id:
        raise ValueError("worktree_id must not be empty")
    return worktree_id


class WorktreeManager:
    """The worktrees of the Git repository containing ``repo_path``.

    ``dataset`` is the dataset's path relative to a worktree's root (the same in every
    worktree; default ``"data"``, ``"."`` for a dataset at the root). The manager holds
    no state of its own: every call reads Git's, so any number of managers (in any
    number of processes) agree. Each call runs one or a few ``git`` commands.
    """

    def __init__(self, repo_path: str | os.PathLike, dataset: str = "data") -> None:
        if not isinstance(repo_path, (str, os.PathLike)):
            raise TypeError(f"repo_path must be a str or os.PathLike, not "
                            f"{type(repo_path).__name__}")
        if not isinstance(dataset, str):
            raise TypeError(f"dataset must be a str, not {type(dataset).__name__}")
        norm = os.path.normpath(dataset) if dataset else "."
        if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep) \
                or norm.split(os.sep)[0] == ".git":
            raise ValueError(f"dataset must be a path inside the worktree, not {dataset!r}")
        path = os.path.abspath(os.fspath(repo_path))
        if not os.path.isdir(path):
            raise ValueError(f"not a directory: {path}")
        if shutil.which("git") is None:
            raise StoreError("worktrees need the git executable on PATH")
        r = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir",
                            "--is-bare-repository"], cwd=path, capture_output=True,
                           env=_git_env())
        if r.returncode:
            raise ValueError(f"not a Git repository: {path}")
        common, bare = r.stdout.decode().splitlines()[:2]
        if bare == "true":
            raise ValueError(f"a bare repository has no worktree to hold the dataset: {path}")
        self._common = os.path.realpath(common)
        self._dataset = norm
        wts = self._entries()
        self._main = wts[0]["path"]

    # -- properties -------------------------------------------------------------------------

    @property
    def repo_path(self) -> str:
        """The main worktree's root (absolute)."""
        return self._main

    @property
    def git_common_dir(self) -> str:
        """The repository's shared Git directory (objects, refs, worktrees/)."""
        return self._common

    @property
    def dataset(self) -> str:
        """The dataset's path relative to each worktree's root."""
        return self._dataset

    def dataset_path(self, worktree_id: str) -> str:
        """The dataset directory inside worktree ``worktree_id``."""
        return os.path.normpath(os.path.join(self._get(worktree_id)["path"], self._dataset))

    @property
    def main_branch(self) -> str:
        """The branch :meth:`merge_to_main` merges into: the main worktree's branch
        (``"main"`` when its HEAD is detached)."""
        return self._get(MAIN_ID)["branch"] or "main"

    # -- listing ----------------------------------------------------------------------------

    def _ids_by_path(self) -> dict[str, str]:
        """{real path of a linked worktree: its Git id}, from ``.git/worktrees/*/gitdir``."""
        out = {}
        base = os.path.join(self._common, "worktrees")
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            return out
        for wid in names:
            try:
                with open(os.path.join(base, wid, "gitdir"), encoding="utf-8") as f:
                    dotgit = f.read().strip()
            except OSError:
                continue
            out[os.path.realpath(os.path.dirname(dotgit))] = wid
        return out

    def _entries(self, include_temporary: bool = False) -> list[dict]:
        raw = _git(self._common, "worktree", "list", "--porcelain", "-z")
        ids = self._ids_by_path()
        out: list[dict] = []
        cur: dict | None = None
        for field in raw.decode("utf-8", "surrogateescape").split("\0"):
            if not field:
                if cur is not None:
                    out.append(cur)
                    cur = None
                continue
            key, _, value = field.partition(" ")
            if key == "worktree":
                cur = {"path": value, "head": None, "branch": None, "detached": False,
                       "bare": False, "locked": False, "lock_reason": None,
                       "prunable": False}
            elif cur is None:
                continue
            elif key == "HEAD":
                cur["head"] = value
            elif key == "branch":
                cur["branch"] = value[len("refs/heads/"):] if value.startswith(
                    "refs/heads/") else value
            elif key in ("detached", "bare", "prunable"):
                cur[key] = True
            elif key == "locked":
                cur["locked"] = True
                cur["lock_reason"] = value or None
        if cur is not None:
            out.append(cur)
        result = []
        for i, e in enumerate(out):
            real = os.path.realpath(e["path"])
            if i == 0:
                wid, linked = MAIN_ID, False
                e["locked"], e["lock_reason"] = self._main_lock()
            else:
                wid, linked = ids.get(real, os.path.basename(real)), True
            if wid.startswith(_TMP_PREFIX) and not include_temporary:
                continue
            result.append({"id": wid, "path": real, "branch": e["branch"],
                           "is_linked": linked, "head": e["head"], "locked": e["locked"],
                           "lock_reason": e["lock_reason"], "prunable": e["prunable"]})
        return result

    def list_worktrees(self) -> list[dict]:
        """Every worktree of the repository, the main one first (id ``"main"``), as Git
        lists them: dicts with ``id``, ``path`` (absolute), ``branch`` (None when
        detached), ``is_linked``, ``head`` (commit id), ``locked``, ``lock_reason`` and
        ``prunable`` (its directory is gone)."""
        return self._entries()

    def _get(self, worktree_id: str) -> dict:
        _check_id(worktree_id)
        for e in self._entries(include_temporary=True):
            if e["id"] == worktree_id:
                return e
        raise ValueError(f"unknown worktree id {worktree_id!r}")

    def get_worktree(self, worktree_id: str) -> dict:
        """The :meth:`list_worktrees` entry of ``worktree_id`` (ValueError when unknown)."""
        return self._get(worktree_id)

    # -- branches ---------------------------------------------------------------------------

    def list_branches(self) -> list[str]:
        """Every branch of the repository (nested names and packed refs included),
        sorted."""
        raw = _git(self._common, "for-each-ref", "--format=%(refname)", "refs/heads/")
        names = [ln[len("refs/heads/"):] for ln in raw.decode("utf-8").splitlines()]
        return sorted(n for n in names if not n.startswith(_TMP_BRANCH))

    def get_branch_commit(self, branch: str) -> str:
        """The commit id (40 hex) branch ``branch`` points at; UnknownRefError when there
        is no such branch."""
        check_branch_name(branch)
        r = _git(self._common, "rev-parse", "--verify", "--quiet",
                 f"refs/heads/{branch}^{{commit}}", check=False)
        if not r.strip():
            raise UnknownRefError(f"unknown branch {branch!r}")
        return r.decode("ascii").strip()

    def _has_commit(self) -> bool:
        return bool(_git(self._main, "rev-parse", "--verify", "--quiet", "HEAD^{commit}",
                         check=False).strip())

    # -- add / remove -------------------------------------------------------------------------

    def add_worktree(self, path: str | os.PathLike, branch: str, create_branch: bool = False,
                     start: str | None = None) -> dict:
        """Create a linked worktree at ``path`` (which must not exist, or be an empty
        directory) on ``branch``: a new branch at ``start`` (default: the main worktree's
        HEAD) when ``create_branch``, else an existing branch that no other worktree has
        checked out (Git's rule). Returns ``{"id", "path", "branch", "is_linked"}``.

        The dataset's files are not written into the new worktree (they are marked
        skip-worktree in its index, as the store keeps them), so this costs the checkout
        of the user's other files only."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        if not isinstance(create_branch, bool):
            raise TypeError(f"create_branch must be a bool, not {type(create_branch).__name__}")
        if start is not None and not isinstance(start, str):
            raise TypeError(f"start must be a str, not {type(start).__name__}")
        check_branch_name(branch)
        if start is not None and not create_branch:
            raise ValueError("start is only used with create_branch=True")
        target = os.path.abspath(os.fspath(path))
        if os.path.basename(target) == MAIN_ID:
            raise ValueError(f"a worktree directory may not be named {MAIN_ID!r} (that id "
                             f"names the main worktree)")
        if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
            raise ValueError(f"{target} already exists and is not an empty directory")
        if branch.startswith(_TMP_BRANCH):
            raise ValueError(f"branch names starting with {_TMP_BRANCH!r} are reserved")
        exists = branch in self.list_branches()
        if create_branch and exists:
            raise ValueError(f"branch {branch!r} already exists")
        if not create_branch and not exists:
            raise UnknownRefError(f"unknown branch {branch!r} (pass create_branch=True to "
                                  f"create it)")
        if start is not None and not _git(self._common, "rev-parse", "--verify", "--quiet",
                                          "--end-of-options", f"{start}^{{commit}}",
                                          check=False).strip():
            raise UnknownRefError(f"unknown start {start!r}: not a branch, tag or commit")
        if not self._has_commit():
            # `git worktree add` needs a commit to start from: the dataset's first commit
            VersionedKvStore(os.path.join(self._main, self._dataset)).close()
        args = ["worktree", "add", "--no-checkout"]
        if create_branch:
            args += ["-b", branch, target] + ([start] if start else [])
        else:
            args += [target, branch]
        _git(self._main, *args)
        try:
            self._checkout_without_dataset(target)
            # the dataset's directory and its store state, so that it is found there
            # (git-prolly, VersionedKvStore.open) before anything is written
            VersionedKvStore(os.path.join(target, self._dataset)).close()
        except BaseException:
            _git(self._main, "worktree", "remove", "--force", target, check=False)
            if create_branch:
                _git(self._main, "branch", "-D", branch, check=False)
            raise
        real = os.path.realpath(target)
        wid = self._ids_by_path().get(real, os.path.basename(real))
        return {"id": wid, "path": real, "branch": branch, "is_linked": True}

    def _checkout_without_dataset(self, worktree: str) -> None:
        """Fill a ``--no-checkout`` worktree: index = HEAD's tree, the dataset's entries
        flagged skip-worktree (the store never writes them out), other files checked
        out."""
        _git(worktree, "read-tree", "HEAD")
        ds = "" if self._dataset == "." else self._dataset.replace(os.sep, "/") + "/"
        listed = _git(worktree, "ls-files", "-z", "--", f"{ds}.prolly")
        if listed:
            _git(worktree, "update-index", "-z", "--skip-worktree", "--stdin", data=listed)
        _git(worktree, "checkout-index", "--all", "--force")

    def remove_worktree(self, worktree_id: str, force: bool = False) -> bool:
        """Remove linked worktree ``worktree_id`` (its directory and Git's record of it;
        its branch stays). Refused for the main worktree (ValueError) and a locked one
        (WorktreeLockedError); Git refuses a worktree with untracked or modified files
        unless ``force``. Returns True."""
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, not {type(force).__name__}")
        e = self._get(worktree_id)
        if not e["is_linked"]:
            raise ValueError("the main worktree cannot be removed")
        if e["locked"]:
            raise WorktreeLockedError(
                f"worktree {worktree_id!r} is locked ({e['lock_reason'] or 'no reason'}); "
                f"unlock it first", worktree_id, e["lock_reason"])
        if not os.path.isdir(e["path"]):
            # the directory is gone: drop Git's record of it (what `git worktree prune` does)
            shutil.rmtree(os.path.join(self._common, "worktrees", worktree_id),
                          ignore_errors=True)
            return True
        _git(self._main, "worktree", "remove", *(["--force"] if force else []), e["path"])
        return True

    def prune(self) -> dict:
        """Clean up after merges cut short by a crash: scratch worktrees whose directory
        is gone and scratch branches without their worktree. Merges in progress (their
        scratch worktree exists) are left alone. Returns ``{"worktrees": n,
        "branches": n}`` removed."""
        live, gone = set(), 0
        for e in self._entries(include_temporary=True):
            if not e["id"].startswith(_TMP_PREFIX):
                continue
            if os.path.isdir(e["path"]):
                live.add(e["id"][len(_TMP_PREFIX):])
            else:
                shutil.rmtree(os.path.join(self._common, "worktrees", e["id"]),
                              ignore_errors=True)
                gone += 1
        raw = _git(self._common, "for-each-ref", "--format=%(refname)",
                   "refs/heads/" + _TMP_BRANCH)
        branches = 0
        for ref in raw.decode("utf-8").split():
            if ref[len("refs/heads/" + _TMP_BRANCH):] not in live:
                _git(self._common, "update-ref", "-d", ref)
                branches += 1
        return {"worktrees": gone, "branches": branches}

    # -- locks --------------------------------------------------------------------------------

    def _lock_paths(self, worktree_id: str) -> tuple[str, str]:
        if worktree_id == MAIN_ID:
            d = os.path.join(self._common, "prollytree")
            return (os.path.join(d, "main-worktree.locked"),
                    os.path.join(d, "main-worktree." + _HOLDER))
        d = os.path.join(self._common, "worktrees", worktree_id)
        if not os.path.isdir(d):
            raise ValueError(f"unknown worktree id {worktree_id!r}")
        return os.path.join(d, "locked"), os.path.join(d, _HOLDER)

    def _main_lock(self) -> tuple[bool, str | None]:
        path, _ = self._lock_paths(MAIN_ID)
        try:
            with open(path, encoding="utf-8") as f:
                return True, f.read().rstrip("\n") or None
        except FileNotFoundError:
            return False, None

    def lock_state(self, worktree_id: str) -> tuple[bool, str | None, str | None]:
        """``(locked, reason, holder)`` of ``worktree_id``, read from disk (holder: the
        token of the :class:`WorktreeVersionedKvStore` that took the lock, None when the
        lock was taken through the manager or by ``git worktree lock``)."""
        _check_id(worktree_id)
        lock, holder = self._lock_paths(worktree_id)
        try:
            with open(lock, encoding="utf-8") as f:
                reason = f.read().rstrip("\n") or None
        except FileNotFoundError:
            return False, None, None
        try:
            with open(holder, encoding="ascii") as f:
                who = f.read().strip() or None
        except FileNotFoundError:
            who = None
        return True, reason, who

    def is_locked(self, worktree_id: str) -> bool:
        """Whether ``worktree_id`` is locked (by any manager, process or Git)."""
        return self.lock_state(worktree_id)[0]

    def lock_worktree(self, worktree_id: str, reason: str | None = None) -> None:
        """Lock ``worktree_id`` with ``reason`` (Git's ``locked`` file, created
        atomically: of several processes locking at once exactly one succeeds, the others
        get WorktreeLockedError, as they do when it is already locked)."""
        self.lock_for(worktree_id, reason, None)

    def lock_for(self, worktree_id: str, reason: str | None, holder: str | None) -> None:
        """:meth:`lock_worktree` naming a ``holder`` (a token: the
        :class:`WorktreeVersionedKvStore` handle that may keep writing), or None."""
        _check_id(worktree_id)
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"reason must be a str or None, not {type(reason).__name__}")
        if reason and ("\n" in reason or "\0" in reason):
            raise ValueError("reason must be one line")
        self._get(worktree_id)
        lock, holder_path = self._lock_paths(worktree_id)
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        if holder is not None:
            # written before the lock exists: a reader never sees our lock without holder
            tmp = f"{holder_path}.{holder}"
            with open(tmp, "w", encoding="ascii") as f:
                f.write(holder + "\n")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if holder is not None:
                os.unlink(tmp)
            state = self.lock_state(worktree_id)
            raise WorktreeLockedError(
                f"worktree {worktree_id!r} is already locked ({state[1] or 'no reason'})",
                worktree_id, state[1]) from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # Git's format: reason + "\n"
            f.write(reason + "\n" if reason else "")
        if holder is not None:
            os.replace(tmp, holder_path)
        else:
            try:
                os.unlink(holder_path)
            except FileNotFoundError:
                pass

    def unlock_worktree(self, worktree_id: str) -> bool:
        """Unlock ``worktree_id`` whoever locked it; returns whether it was locked."""
        _check_id(worktree_id)
        self._get(worktree_id)
        lock, holder = self._lock_paths(worktree_id)
        try:
            os.unlink(holder)
        except FileNotFoundError:
            pass
        try:
            os.unlink(lock)
        except FileNotFoundError:
            return False
        return True

    # -- merges -------------------------------------------------------------------------------

    def merge_to_main(self, worktree_id: str, commit_message: str,
                      conflict_resolution: Any = None) -> str:
        """:meth:`merge_branch` of worktree ``worktree_id``'s branch into
        :attr:`main_branch`."""
        return self.merge_branch(worktree_id, self.main_branch, commit_message,
                                 conflict_resolution)

    def merge_branch(self, source_worktree_id: str, target_branch: str, commit_message: str,
                     conflict_resolution: Any = None) -> str:
        """Three-way merge the dataset of worktree ``source_worktree_id``'s branch into
        branch ``target_branch``; returns the target's new commit id.

        The target fast-forwards when it is an ancestor of the source, stays when the
        source is already merged, else gets a two-parent merge commit (target first)
        with message ``commit_message``. Conflicting keys raise MergeConflictError
        (``.conflicts``: the :class:`MergeConflict` list) and change nothing, unless a
        ``conflict_resolution`` is given (as for :meth:`VersionedKvStore.merge`).

        Refused (ValueError) when the target is checked out in a worktree whose store
        has staged changes, and (WorktreeLockedError) when that worktree is locked. When
        the target is checked out in a worktree, the merge lands through that worktree's
        store, so its Git index follows."""
        if not isinstance(commit_message, str):
            raise TypeError(f"commit_message must be a str, not "
                            f"{type(commit_message).__name__}")
        if not commit_message.strip():
            raise ValueError("commit message is empty (Git refuses empty messages too)")
        res = conflict_resolution
        if res is not None and not isinstance(res, ConflictResolution) and not callable(res):
            raise TypeError(f"conflict_resolution must be a ConflictResolution or a "
                            f"callable, not {type(res).__name__}")
        check_branch_name(target_branch)
        src = self._get(source_worktree_id)
        if src["branch"] is None:
            raise ValueError(f"worktree {source_worktree_id!r} has a detached HEAD: "
                             f"nothing to merge")
        if src["branch"] == target_branch:
            raise ValueError(f"worktree {source_worktree_id!r} is on {target_branch!r} "
                             f"already")
        for _ in range(20):  # retried only when the target moves during the merge
            done = self._merge_once(src["branch"], target_branch, commit_message, res)
            if done is not None:
                return done
        raise ValueError(f"branch {target_branch!r} kept moving; merge not done, retry")

    def _target_worktree(self, branch: str) -> dict | None:
        for e in self._entries():
            if e["branch"] == branch:
                return e
        return None

    def _merge_once(self, source: str, target: str, message: str, res: Any) -> str | None:
        tip = self.get_branch_commit(target)
        src = self.get_branch_commit(source)
        holder = self._target_worktree(target)
        if holder is not None and self.is_locked(holder["id"]):
            state = self.lock_state(holder["id"])
            raise WorktreeLockedError(
                f"cannot merge into {target!r}: worktree {holder['id']!r} is locked "
                f"({state[1] or 'no reason'})", holder["id"], state[1])
        with _Scratch(self, tip) as work:
            ws = work.store
            if res is None:
                ok, conflicts = ws.try_merge(src)
                if not ok:
                    raise MergeConflictError(
                        f"merge of {source!r} into {target!r} stopped on {len(conflicts)} "
                        f"conflict(s): " + ", ".join(
                            f"{c.tree + ':' if c.tree else ''}{c.key!r}"
                            for c in conflicts[:20]) + (" ..." if len(conflicts) > 20
                                                        else "") + "; nothing was changed",
                        conflicts)
            else:
                ws.merge(src, res)
            result = ws.current_commit()
            if result == tip:
                return tip
            final = result if result == src else self._reword(result, message)
            # land `final` on the target: a fast-forward from `tip`
            if holder is not None and os.path.isdir(holder["path"]):
                store = VersionedKvStore(os.path.join(holder["path"], self._dataset))
                try:
                    if store.current_branch() == target:
                        if store.current_commit() != tip:
                            return None
                        if store.tree_status():
                            raise ValueError(
                                f"cannot merge into {target!r}: the store in worktree "
                                f"{holder['id']!r} has staged changes; commit them first")
                        store.merge(final)
                        return final if store.current_commit() == final else None
                finally:
                    store.close()
            ws.checkout(target)
            if ws.current_commit() != tip:
                return None
            ws.merge(final)
            landed = ws.current_commit()
            return final if landed == final else None

    def _reword(self, commit: str, message: str) -> str:
        """A copy of ``commit`` (same tree, parents, author, committer) with ``message``:
        the store's merge writes its own message."""
        raw = _git(self._common, "cat-file", "commit", commit)
        header, sep, _ = raw.partition(b"\n\n")
        body = message.encode("utf-8")
        if not body.endswith(b"\n"):
            body += b"\n"
        out = _git(self._common, "hash-object", "-t", "commit", "-w", "--stdin",
                   data=header + b"\n\n" + body)
        return out.decode("ascii").strip()

    def __repr__(self) -> str:
        return f"<WorktreeManager {self._main!r} dataset={self._dataset!r}>"


class _Scratch:
    """A temporary detached worktree (no files checked out) with a store on a temporary
    branch at ``start``: the workspace a manager merge runs in, so that no user's store
    moves. Removed, with its branch, on exit."""

    def __init__(self, manager: WorktreeManager, start: str) -> None:
        self.m = manager
        self.start = start

    def __enter__(self) -> "_Scratch":
        m = self.m
        token = uuid.uuid4().hex[:16]
        self.dir = tempfile.mkdtemp(prefix="prollytree-scratch-")
        self.path = os.path.join(self.dir, _TMP_PREFIX + token)
        self.branch = _TMP_BRANCH + token
        _git(m.repo_path, "worktree", "add", "--no-checkout", "--detach", self.path,
             self.start)
        try:
            self.store = VersionedKvStore(os.path.join(self.path, m.dataset))
            self.store.create_branch(self.branch, self.start)
        except BaseException:
            self._cleanup()
            raise
        return self

    def _cleanup(self) -> None:
        store = getattr(self, "store", None)
        if store is not None:
            store.close()
        # the scratch worktree goes first: Git (and the store) refuse to delete a branch
        # a worktree has checked out
        _git(self.m.repo_path, "worktree", "remove", "--force", self.path, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        _git(self.m.repo_path, "worktree", "prune", check=False)
        _git(self.m.repo_path, "branch", "-D", self.branch, check=False)

    def __exit__(self, *exc: object) -> None:
        self._cleanup()
