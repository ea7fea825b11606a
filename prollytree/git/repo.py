"""Finding Git repositories: written once, used by every layer that needs it.

:func:`work_tree_of` walks up from a path to the work tree that contains it without
opening anything (``.git`` is a directory, or a file ``gitdir: <dir>`` in a linked
worktree or a submodule); :func:`find_repo` opens the repository containing a path that
need not exist yet.
"""

from __future__ import annotations

import os

from dulwich.repo import NotGitRepository, Repo


def work_tree_of(path: str) -> tuple[str, str] | None:
    """(work tree root, Git directory) of the non-bare repository containing ``path``,
    found without opening it (``.git`` is a directory, or a file ``gitdir: <dir>`` in a
    linked worktree or a submodule); None outside any."""
    d = path
    while True:
        dotgit = os.path.join(d, ".git")
        if os.path.isdir(dotgit):
            return d, dotgit
        if os.path.isfile(dotgit):
            try:
                with open(dotgit, encoding="utf-8") as f:
                    line = f.readline().strip()
            except OSError:
                return None
            if not line.startswith("gitdir:"):
                return None
            g = line[len("gitdir:"):].strip()
            return d, g if os.path.isabs(g) else os.path.normpath(os.path.join(d, g))
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def find_repo(path: str) -> Repo | None:
    """The Git repository containing ``path`` (which need not exist yet), or None."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    try:
        return Repo.discover(probe)
    except NotGitRepository:
        return None




def find_repo_root(start: str) -> str | None:
    """The work tree root of the Git repository containing ``start`` (or None)."""
    found = work_tree_of(os.path.realpath(start))
    return None if found is None else found[0]
