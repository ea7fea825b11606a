"""Branch commands: ``branch``, ``checkout``, ``diff``, ``merge``, ``revert``."""

from __future__ import annotations


import click

from .app import (App, Fail, change_kind, cli,
                  diff_json, json_option, pass_app,
                  print_changes, report_commit, short)
from .output import Output, put_bytes, show



# -- branches -----------------------------------------------------------------------------------


@cli.command()
@click.argument("name", required=False)
@click.option("-d", "--delete", "delete_name", metavar="NAME",
              help="Delete branch NAME (refused unless it is merged, as in Git).")
@click.option("-D", "force_delete", metavar="NAME",
              help="Delete branch NAME even when it is not merged.")
@json_option
@pass_app
def branch(app: App, name: str | None, delete_name: str | None,
           force_delete: str | None) -> None:
    """List branches, create branch NAME at the current commit, or delete one (-d/-D).

    \b
    Examples:
      git-prolly branch
      git-prolly branch experiment
      git-prolly branch -d experiment
    """
    store = app.store()
    out = app.out
    if sum(x is not None for x in (name, delete_name, force_delete)) > 1:
        raise click.UsageError("give one of NAME, -d NAME or -D NAME")
    if force_delete:
        delete_name = force_delete
    if delete_name:
        cid = store.delete_branch(delete_name, force=force_delete is not None)
        if out.json_mode:
            out.json({"deleted": delete_name, "commit": cid})
        else:
            out.line(f"Deleted branch {delete_name} (was {short(cid)})")
        return
    if name:
        store.branch(name)
        if out.json_mode:
            out.json({"created": name, "commit": store.current_commit()})
        else:
            out.line(f"Created branch {name} at {short(store.current_commit())}")
        return
    current = store.current_branch()
    tips = {r[len("refs/heads/"):]: c for r, c in store.list_refs().items()
            if r.startswith("refs/heads/")}
    if out.json_mode:
        out.json([{"name": n, "commit": tips[n], "current": n == current}
                  for n in sorted(tips)])
        return
    if current is None:
        out.line(f"* (HEAD detached at {short(store.current_commit())})", style="red")
    for n in sorted(tips):
        if n == current:
            out.styled([("* ", None), (n, "green")])
        else:
            out.line("  " + n)


@cli.command()
@click.argument("ref", required=False)
@click.argument("start", required=False)
@click.option("-b", "new_branch", metavar="NAME",
              help="Create branch NAME (at START, default the current commit) and switch "
                   "to it.")
@click.option("--carry", "staged", flag_value="carry",
              help="Keep staged changes, staged on top of the target.")
@click.option("--discard", "staged", flag_value="discard", help="Drop staged changes.")
@json_option
@pass_app
def checkout(app: App, ref: str | None, start: str | None, new_branch: str | None,
             staged: str | None) -> None:
    """Switch to a branch, or to a commit (detached, read-only): any ref such as a tag,
    an abbreviated commit id or HEAD~2. With -b NAME, create a branch and switch to it.

    Staged changes stop a checkout that would lose them, unless --carry or --discard.

    \b
    Examples:
      git-prolly checkout main
      git-prolly checkout -b experiment
      git-prolly checkout HEAD~2
    """
    store = app.store()
    out = app.out
    mode = staged or "error"
    if new_branch:
        if ref and start:
            raise click.UsageError("checkout -b takes one START ref")
        store.create_branch(new_branch, start or ref, staged=mode)
        if out.json_mode:
            out.json({"branch": new_branch, "commit": store.current_commit(),
                      "created": True})
        else:
            out.line(f"Switched to a new branch '{new_branch}' at "
                     f"{short(store.current_commit())}")
        return
    if not ref:
        raise click.UsageError("missing REF (or -b NAME)")
    if start:
        raise click.UsageError("unexpected extra argument (START goes with -b)")
    store.checkout(ref, staged=mode)
    branch_name = store.current_branch()
    cid = store.current_commit()
    if out.json_mode:
        out.json({"branch": branch_name, "detached": branch_name is None, "commit": cid,
                  "created": False})
    elif branch_name is not None:
        out.line(f"Switched to branch '{branch_name}' at {short(cid)}")
    else:
        out.line(f"HEAD is now at {short(cid)} (detached, read-only)")


# -- diff / merge / revert ------------------------------------------------------------------------


@cli.command()
@click.argument("from_ref", metavar="FROM")
@click.argument("to_ref", metavar="TO")
@click.option("--format", "fmt", type=click.Choice(["compact", "detailed", "json"]),
              default="compact", show_default=True, help="Output format.")
@click.option("--keys", "patterns", multiple=True, metavar="PATTERN",
              help="Only keys matching the glob PATTERN (*, ?, [...]); repeatable.")
@json_option
@pass_app
def diff(app: App, from_ref: str, to_ref: str, fmt: str, patterns: tuple[str, ...]) -> None:
    """Show the keys added, modified and deleted from FROM to TO.

    \b
    Examples:
      git-prolly diff main feature
      git-prolly diff HEAD~1 HEAD --keys 'user:*' --format detailed
    """
    store = app.store()
    out = app.out
    changes = store.diff(from_ref, to_ref)
    if patterns:
        import fnmatch
        changes = [d for d in changes
                   if any(fnmatch.fnmatchcase(d.key.decode("utf-8", "surrogateescape"), p)
                          for p in patterns)]
    if out.json_mode or fmt == "json":
        out.json([diff_json(d) for d in changes])
        return
    if fmt == "compact":
        print_changes(out, changes, "compact")
        return
    counts = {"added": 0, "modified": 0, "deleted": 0}
    for d in changes:
        counts[change_kind(d)] += 1
    out.table(["Change", "Key", "Old value", "New value"],
              ([change_kind(d), show(d.key),
                show(d.old_value) if d.old_value is not None else "(absent)",
                show(d.new_value) if d.new_value is not None else "(absent)"]
               for d in changes),
              title=f"{from_ref} -> {to_ref}", styles=["cyan", None, "red", "green"])
    if out.rich:
        out.line(f"{counts['added']} added, {counts['modified']} modified, "
                 f"{counts['deleted']} deleted")


_STRATEGIES = {"ignore-all": "IgnoreAll", "take-source": "TakeSource",
               "take-destination": "TakeDestination"}


@cli.command()
@click.argument("source")
@click.option("--strategy", type=click.Choice(list(_STRATEGIES)),
              help="Settle conflicts: take-source (their value), take-destination or "
                   "ignore-all (keep the current branch's value). Without it, conflicts "
                   "stop the merge.")
@json_option
@pass_app
def merge(app: App, source: str, strategy: str | None) -> None:
    """Merge branch SOURCE into the current branch.

    A fast-forward when the current branch has not moved, else a merge commit with two
    parents. Conflicting keys (changed differently on both sides) are listed and the
    merge stops (exit code 1, nothing changed) unless --strategy settles them.

    \b
    Examples:
      git-prolly merge feature
      git-prolly merge feature --strategy take-source
    """
    store = app.store()
    out = app.out
    before = store.current_commit()
    src = store.resolve_ref(source)
    conflicts: list = []
    if strategy is None:
        ok, conflicts = store.try_merge(source)
        if not ok:
            _conflict_table(out, conflicts, source, store.current_branch())
            raise Fail(f"merge of {source!r} stopped on {len(conflicts)} conflict(s); "
                       f"nothing was changed; rerun with --strategy take-source, "
                       f"take-destination or ignore-all", 1)
    else:
        from prollytree.versioning import ConflictResolution
        resolution = getattr(ConflictResolution, _STRATEGIES[strategy])
        seen: list = []

        def record(c):  # counts the conflicts, then applies the chosen strategy
            seen.append(c)
            if resolution is ConflictResolution.TakeSource:
                return c.source_value
            return c.destination_value
        store.merge(source, record)
        conflicts = seen
    after = store.current_commit()
    kind = ("up-to-date" if after == before else "fast-forward" if after == src
            else "merge")
    if out.json_mode:
        out.json({"result": kind, "commit": after, "source": source,
                  "branch": store.current_branch(), "resolved_conflicts": len(conflicts),
                  "strategy": strategy})
        return
    if kind == "up-to-date":
        out.line("Already up to date.")
    elif kind == "fast-forward":
        out.line(f"Fast-forward {short(before)}..{short(after)}")
    else:
        out.styled([(f"Merged {source} into {store.current_branch()}: ", None),
                    (short(after), "yellow")])
    if conflicts:
        out.line(f"{len(conflicts)} conflict(s) resolved with {strategy}")


def _conflict_table(out: Output, conflicts: list, source: str, dest: str | None) -> None:
    if out.json_mode:
        docs = []
        for c in conflicts:
            d = put_bytes({}, "key", c.key)
            put_bytes(d, "base", c.base_value)
            put_bytes(d, "source", c.source_value)
            put_bytes(d, "destination", c.destination_value)
            docs.append(d)
        out.json({"result": "conflicts", "conflicts": docs})
        return

    def cell(v):
        return show(v) if v is not None else "(absent)"

    out.table(["Key", "Base", f"Source ({source})", f"Destination ({dest})"],
              ([show(c.key), cell(c.base_value), cell(c.source_value),
                cell(c.destination_value)] for c in conflicts),
              title=f"{len(conflicts)} conflict(s)", styles=["bold", None, "green", "cyan"])


@cli.command()
@click.argument("ref")
@click.option("-m", "--message", metavar="MSG", help="Commit message (default: Revert \"...\").")
@json_option
@pass_app
def revert(app: App, ref: str, message: str | None) -> None:
    """Record a new commit undoing the changes of commit REF.

    Each key REF changed goes back to its value before REF (for a merge commit: its
    first parent). A key changed again since REF is a conflict: they are listed and
    nothing is changed (exit code 1).

    \b
    Example:
      git-prolly revert HEAD~2
    """
    from prollytree.versioning import RevertConflictError
    store = app.store()
    out = app.out
    cid = store.resolve_ref(ref)
    head = store.current_commit()
    try:
        new = store.revert(cid, message)
    except RevertConflictError as e:
        if out.json_mode:
            docs = []
            for c in e.conflicts:
                d = put_bytes({}, "key", c.key)
                put_bytes(d, "before", c.source_value)
                put_bytes(d, "after", c.base_value)
                put_bytes(d, "current", c.destination_value)
                docs.append(d)
            out.json({"result": "conflicts", "conflicts": docs})
        else:
            def cell(v):
                return show(v) if v is not None else "(absent)"
            out.table(["Key", f"Before {cid[:12]}", f"After {cid[:12]}", "Now"],
                      ([show(c.key), cell(c.source_value), cell(c.base_value),
                        cell(c.destination_value)] for c in e.conflicts),
                      title=f"{len(e.conflicts)} conflict(s)")
        raise Fail(f"cannot revert {cid[:12]}: {len(e.conflicts)} key(s) changed since; "
                   f"nothing was changed", 1) from None
    if new is None:
        raise Fail(f"nothing to revert: the changes of {cid[:12]} are already undone", 1)
    from .dataset import change_counts
    report_commit(app, store, new, store.commit_info(new)["message"],
                   change_counts(store.diff(head, new)))
