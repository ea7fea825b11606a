"""``git-prolly worktree``: Git worktrees as independent working copies of the dataset
(see docs/namespaces.md). Runs in any worktree of the repository."""

from __future__ import annotations

import os

import click

from .app import Fail, App, json_option, pass_app, short
from .output import show


def _manager(app: App, dataset: str | None):
    from prollytree.versioning import WorktreeManager
    cwd = os.getcwd()
    if dataset is None:
        # the dataset this command would use, as a path relative to its worktree's root
        from .dataset import NotADataset, find_repo_root, locate
        try:
            loc = locate(cwd)
            root = find_repo_root(loc.path)
            dataset = os.path.relpath(loc.path, root) if root else "data"
        except NotADataset:
            dataset = "data"
    return WorktreeManager(cwd, dataset=dataset)


dataset_option = click.option(
    "--dataset", metavar="PATH",
    help="The dataset's path relative to a worktree's root (default: the dataset found "
         "from the current directory, else 'data').")


@click.group("worktree")
def worktree_group() -> None:
    """Git worktrees, each an independent working copy of the dataset.

    \b
    Examples:
      git-prolly worktree add ../agent1 -b agent1
      git-prolly worktree list
      git-prolly worktree lock agent1 --reason "agent running"
      git-prolly worktree merge agent1 -m "Merge agent1's work"
      git-prolly worktree remove agent1
    """


@worktree_group.command("add")
@click.argument("path", type=click.Path(file_okay=False))
@click.argument("branch", required=False)
@click.option("-b", "new_branch", metavar="NAME", help="Create branch NAME (at the main "
                                                       "worktree's HEAD) for the worktree.")
@dataset_option
@json_option
@pass_app
def wt_add(app: App, path: str, branch: str | None, new_branch: str | None,
           dataset: str | None) -> None:
    """Create a worktree at PATH on BRANCH (existing), or on a new branch with -b.

    \b
    Examples:
      git-prolly worktree add ../agent1 -b agent1
      git-prolly worktree add ../review feature
    """
    if (branch is None) == (new_branch is None):
        raise click.UsageError("give either BRANCH or -b NEW_BRANCH")
    m = _manager(app, dataset)
    info = m.add_worktree(path, new_branch or branch, new_branch is not None)
    out = app.out
    if out.json_mode:
        out.json(info)
    else:
        out.line(f"Created worktree {info['id']} at {info['path']} on branch {info['branch']}")


@worktree_group.command("list")
@dataset_option
@json_option
@pass_app
def wt_list(app: App, dataset: str | None) -> None:
    """List the worktrees (id, branch, commit, path, lock).

    \b
    Examples:
      git-prolly worktree list
      git-prolly worktree list --json
    """
    rows = _manager(app, dataset).list_worktrees()
    out = app.out
    if out.json_mode:
        out.json(rows)
        return
    out.table(["Id", "Branch", "Commit", "Path", "Locked"],
              ([r["id"], r["branch"] or "(detached)", short(r["head"]), r["path"],
                (r["lock_reason"] or "yes") if r["locked"] else ""] for r in rows),
              styles=["bold", "green", "yellow", None, "red"])


@worktree_group.command("remove")
@click.argument("worktree_id", metavar="ID")
@click.option("--force", is_flag=True, help="Remove even with untracked or modified files.")
@dataset_option
@pass_app
def wt_remove(app: App, worktree_id: str, force: bool, dataset: str | None) -> None:
    """Remove worktree ID (not the main one, not a locked one); its branch stays.

    \b
    Example:
      git-prolly worktree remove agent1
    """
    _manager(app, dataset).remove_worktree(worktree_id, force=force)
    app.out.line(f"Removed worktree {worktree_id}")


@worktree_group.command("lock")
@click.argument("worktree_id", metavar="ID")
@click.option("--reason", metavar="TEXT", help="Why (shown by 'git worktree list').")
@dataset_option
@pass_app
def wt_lock(app: App, worktree_id: str, reason: str | None, dataset: str | None) -> None:
    """Lock worktree ID (Git's lock: no removal; worktree stores refuse writes).

    \b
    Example:
      git-prolly worktree lock agent1 --reason "agent running"
    """
    _manager(app, dataset).lock_worktree(worktree_id, reason)
    app.out.line(f"Locked worktree {worktree_id}")


@worktree_group.command("unlock")
@click.argument("worktree_id", metavar="ID")
@dataset_option
@pass_app
def wt_unlock(app: App, worktree_id: str, dataset: str | None) -> None:
    """Unlock worktree ID (exit code 1 when it was not locked).

    \b
    Example:
      git-prolly worktree unlock agent1
    """
    if not _manager(app, dataset).unlock_worktree(worktree_id):
        raise Fail(f"worktree {worktree_id!r} is not locked", 1)
    app.out.line(f"Unlocked worktree {worktree_id}")


_STRATEGIES = {"take-source": "TakeSource", "take-destination": "TakeDestination"}


@worktree_group.command("merge")
@click.argument("worktree_id", metavar="ID")
@click.option("--into", "target", metavar="BRANCH",
              help="Target branch (default: the main worktree's branch).")
@click.option("-m", "--message", metavar="MSG", help="Merge commit message.")
@click.option("--strategy", type=click.Choice(list(_STRATEGIES)),
              help="Settle conflicts; without it conflicts stop the merge.")
@dataset_option
@json_option
@pass_app
def wt_merge(app: App, worktree_id: str, target: str | None, message: str | None,
             strategy: str | None, dataset: str | None) -> None:
    """Merge worktree ID's branch into the main branch (or --into BRANCH): a
    fast-forward, or a two-parent merge commit. Conflicts: exit code 1, nothing
    changed.

    \b
    Examples:
      git-prolly worktree merge agent1 -m "Merge agent1"
      git-prolly worktree merge agent1 --into release --strategy take-source
    """
    from prollytree.errors import MergeConflictError
    from prollytree.versioning import ConflictResolution
    m = _manager(app, dataset)
    src = m.get_worktree(worktree_id)
    into = target or m.main_branch
    msg = message or f"Merge worktree {worktree_id} ({src['branch']}) into {into}"
    res = getattr(ConflictResolution, _STRATEGIES[strategy]) if strategy else None
    out = app.out
    try:
        cid = m.merge_branch(worktree_id, into, msg, res)
    except MergeConflictError as e:
        if out.json_mode:
            out.json({"result": "conflicts", "conflicts": [
                {"tree": c.tree, "key": show(c.key)} for c in e.conflicts]})
        else:
            out.lines(f"conflict: {show(c.key)}" + (f" (tree {c.tree})" if c.tree else "")
                      for c in e.conflicts)
        raise Fail(f"merge of worktree {worktree_id!r} into {into!r} stopped on "
                   f"{len(e.conflicts)} conflict(s); nothing was changed", 1) from None
    if out.json_mode:
        out.json({"result": "merged", "commit": cid, "into": into})
    else:
        out.line(f"Merged {src['branch']} into {into}: {short(cid)}")
