"""History commands: ``commit``, ``log``, ``show``, ``history``, ``keys-at``."""

from __future__ import annotations


import click

from .app import (App, Fail, change_kind, cli,
                  commit_json, diff_json, enc, first_line, json_option, pass_app,
                  print_changes, report_commit)
from .output import Output, put_bytes, show, timestamp_text



# -- commit / log / show / history / keys-at ---------------------------------------------------


@cli.command()
@click.option("-m", "--message", "messages", multiple=True, required=True, metavar="MSG",
              help="Commit message (several -m make several paragraphs).")
@click.option("--allow-empty", is_flag=True, help="Record a commit even with nothing staged.")
@json_option
@pass_app
def commit(app: App, messages: tuple[str, ...], allow_empty: bool) -> None:
    """Commit the staged changes on the current branch.

    \b
    Example:
      git-prolly commit -m "Add users"
    """
    store = app.store()
    staged = store.tree_status()   # every named tree (namespaces...), not only the default
    if not staged and not allow_empty:
        raise Fail("nothing to commit (stage changes with 'git-prolly set' or 'delete', "
                   "or pass --allow-empty)", 1)
    message = "\n\n".join(messages)
    counts = {"added": 0, "modified": 0, "deleted": 0}
    for tree, key, s in staged:
        if key is not None:
            counts[s] = counts.get(s, 0) + 1
        elif s == "dropped":          # a dropped tree deletes every key it held (O(1))
            counts["deleted"] += store.tree_at("HEAD", tree).size()
    cid = store.commit(message)
    report_commit(app, store, cid, message, counts)


@cli.command()
@click.argument("ref", required=False, default="HEAD")
@click.option("-n", "--limit", type=click.IntRange(min=0), metavar="N",
              help="Show at most N commits.")
@click.option("--kv-summary", is_flag=True,
              help="Count the keys each commit added, modified and deleted.")
@click.option("--oneline", is_flag=True, help="One line per commit.")
@json_option
@pass_app
def log(app: App, ref: str, limit: int | None, kv_summary: bool, oneline: bool) -> None:
    """Show the commit history of REF (default HEAD), newest first.

    \b
    Examples:
      git-prolly log --limit 5 --kv-summary
      git-prolly log feature --oneline
    """
    from .dataset import change_counts, commit_changes, ref_labels
    store = app.store()
    out = app.out
    labels = ref_labels(store) if not out.json_mode else {}
    docs = []
    for c in store.log(ref, limit):
        counts = change_counts(commit_changes(store, c)) if kv_summary else None
        if out.json_mode:
            docs.append(commit_json(c, counts))
            continue
        deco = labels.get(c["id"])
        deco_text = f" ({', '.join(deco)})" if deco else ""
        summary = (f"+{counts['added']} ~{counts['modified']} -{counts['deleted']}"
                   if counts else "")
        if oneline:
            parts = [(c["id"][:12], "yellow"), (deco_text, "cyan"),
                     (" " + first_line(c["message"]), None)]
            if summary:
                parts.append((f"  [{summary}]", "green"))
            out.styled(parts)
            continue
        _commit_header(out, c, deco_text)
        if summary:
            out.line(f"Keys:   {counts['added']} added, {counts['modified']} modified, "
                     f"{counts['deleted']} deleted", style="green")
        out.line()
        _message_lines(out, c["message"])
    if out.json_mode:
        out.json(docs)


@cli.command("show")
@click.argument("ref", required=False, default="HEAD")
@click.option("--keys-only", is_flag=True, help="List the changed keys without values.")
@json_option
@pass_app
def show_(app: App, ref: str, keys_only: bool) -> None:
    """Show a commit and the key changes it made (against its first parent).

    \b
    Examples:
      git-prolly show HEAD
      git-prolly show main~2 --keys-only
    """
    from .dataset import commit_changes
    store = app.store()
    out = app.out
    c = store.commit_info(ref)
    changes = commit_changes(store, c)
    if out.json_mode:
        doc = commit_json(c)
        doc["changes"] = [dict(put_bytes({}, "key", d.key), change=change_kind(d)) if keys_only
                          else diff_json(d) for d in changes]
        out.json(doc)
        return
    _commit_header(out, c, "")
    out.line()
    _message_lines(out, c["message"])
    print_changes(out, changes, "compact" if not keys_only else "keys")


def _commit_header(out: Output, c: dict, deco_text: str) -> None:
    out.styled([("commit " + c["id"], "yellow"), (deco_text, "cyan")])
    if len(c["parents"]) > 1:
        out.line("Merge:  " + " ".join(p[:12] for p in c["parents"]))
    out.line(f"Author: {c['author']}")
    out.line(f"Date:   {timestamp_text(c['timestamp'], c['tz_offset'])}")


def _message_lines(out: Output, message: str) -> None:
    for line in (message.splitlines() or [""]):
        out.line(("    " + line) if line.strip() else "")
    out.line()


@cli.command()
@click.argument("key")
@click.option("-n", "--limit", type=click.IntRange(min=0), metavar="N",
              help="Show at most N commits.")
@json_option
@pass_app
def history(app: App, key: str, limit: int | None) -> None:
    """Show the commits that changed KEY (newest first) and its value after each.

    \b
    Example:
      git-prolly history user:alice
    """
    store = app.store()
    out = app.out
    k = enc(key)
    commits = store.get_commits_for_key(k)
    if limit is not None:
        commits = commits[:limit]
    rows = []
    for c in commits:
        new = store.get_at(c["id"], k)
        old = store.get_at(c["parents"][0], k) if c["parents"] else None
        change = "added" if old is None else "deleted" if new is None else "modified"
        rows.append((c, change, new))
    if out.json_mode:
        out.json([dict(commit_json(c), change=change, **put_bytes({}, "value", v))
                  for c, change, v in rows])
        return
    if not rows:
        out.note(f"no commit changed {show(k)}")
        return
    out.table(["Commit", "Date", "Change", "Value", "Message"],
              ([c["id"][:12], timestamp_text(c["timestamp"], c["tz_offset"]), change,
                show(v) if v is not None else "(deleted)",
                first_line(c["message"]).replace("\t", " ")] for c, change, v in rows),
              styles=["yellow", None, "cyan", None, None], nowrap=(0, 1, 2))


@cli.command("keys-at")
@click.argument("ref")
@click.option("--values", is_flag=True, help="Print values next to keys.")
@click.option("--prefix", metavar="P", default="", help="Only keys starting with P.")
@json_option
@pass_app
def keys_at(app: App, ref: str, values: bool, prefix: str) -> None:
    """List the keys (with --values, the pairs) at a branch, tag or commit.

    \b
    Example:
      git-prolly keys-at HEAD~3 --values
    """
    ctx = click.get_current_context()
    from .keys import list_
    ctx.invoke(list_, values=values, prefix=prefix, ref=ref, graph=False)
