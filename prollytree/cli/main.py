"""``git-prolly``: a Git-like command line over :class:`VersionedKvStore`.

Installed as the ``git-prolly`` executable, so ``git prolly <command>`` works too. Every
command runs in the dataset found at or above the current directory (or ``-C PATH``);
see ``docs/cli.md`` for each command, the output rules and the exit codes:

* 0 - success;
* 1 - a negative answer: key not found, merge or revert conflicts, nothing to commit, a
  proof that does not verify, damage found by ``fsck``;
* 2 - the command could not run: bad usage, unknown ref, not a dataset, a file that does
  not exist, bad input, a locked or damaged store;
* 3 - an internal error (a bug: set ``GIT_PROLLY_DEBUG=1`` for the traceback).

Only click and the small output helpers are imported at start-up; the store (and with it
dulwich), rich, and everything else are imported by the commands that need them.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable

import click

from .._version import __version__
from .output import Output, put_bytes, show, show_text, timestamp_text

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Fail(Exception):
    """A command ends with ``error: <message>`` on stderr and exit ``code``."""

    def __init__(self, message: str | None, code: int = 1) -> None:
        super().__init__(message or "")
        self.message = message
        self.code = code


# the persistent history backends, from the one registry (lazy imports inside it)
from ..versioning.registry import BACKENDS as _BACKENDS  # noqa: E402

PERSISTENT_KINDS = [spec.kind for spec in _BACKENDS if spec.persistent]
KIND_TO_NAME = {spec.kind: spec.name for spec in _BACKENDS}


class App:
    """Per-invocation state: output settings and the (lazily opened) store."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._store = None
        self.location = None

    def store(self):
        if self._store is None:
            from .dataset import locate, open_store
            self.location = locate(os.getcwd())
            self._store = open_store(self.location)
        return self._store

    def use_store(self, store) -> None:
        """Make ``store`` the one later commands of this invocation use (and close)."""
        self._store = store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(App)


def enc(text: str) -> bytes:
    """Command-line text to bytes: UTF-8, with any undecodable bytes of the original
    argument restored (Python keeps them as surrogate escapes)."""
    return text.encode("utf-8", "surrogateescape")


def _json_callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(App).out.json_mode = True


def json_option(f):
    return click.option("--json", "json_flag", is_flag=True, expose_value=False,
                        callback=_json_callback, is_eager=True,
                        help="Print JSON (see 'Output' in docs/cli.md).")(f)


def short(cid: str | None) -> str:
    return cid[:12] if cid else "(none)"


def first_line(message: str) -> str:
    return (message.splitlines() or [""])[0]


def commit_json(c: dict, changes: dict | None = None) -> dict:
    """The JSON form of a commit (a ``log``/``commit_info`` entry of the store)."""
    d = {"id": c["id"], "parents": list(c["parents"]), "author": c["author"],
         "committer": c["committer"], "timestamp": c["timestamp"],
         "date": timestamp_text(c["timestamp"], c["tz_offset"]), "message": c["message"]}
    if changes is not None:
        d["changes"] = changes
    return d


def diff_json(d) -> dict:
    obj = put_bytes({}, "key", d.key)
    obj["change"] = ("added" if d.old_value is None else
                     "deleted" if d.new_value is None else "modified")
    put_bytes(obj, "old", d.old_value)
    put_bytes(obj, "new", d.new_value)
    return obj


def _kind(d) -> str:
    return "added" if d.old_value is None else "deleted" if d.new_value is None else "modified"


_MARK = {"added": ("+", "green"), "deleted": ("-", "red"), "modified": ("~", "yellow")}


# -- the group ------------------------------------------------------------------------------


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("-C", "chdir", metavar="PATH",
              type=click.Path(exists=True, file_okay=False),
              help="Run as if started in PATH (like git -C).")
@click.option("--color", "--colour", "color", type=click.Choice(["auto", "always", "never"]),
              default="auto", show_default=True,
              help="Colour and tables: auto = only on a terminal (and not with NO_COLOR).")
@click.option("--json", "json_mode", is_flag=True, help="Print JSON from every command.")
@click.version_option(__version__, prog_name="git-prolly", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, chdir: str | None, color: str, json_mode: bool) -> None:
    """A Git-like shell over a versioned prollytree key-value dataset.

    Runs in the dataset at or above the current directory (or -C PATH). Start with
    'git-prolly init', then 'set', 'commit', 'log', 'diff', 'merge'... Every command has
    --help; docs/cli.md has examples.
    """
    if chdir:
        os.chdir(chdir)
    app = App(Output(color=color, json_mode=json_mode))
    ctx.obj = app
    ctx.call_on_close(app.close)


# -- init -----------------------------------------------------------------------------------


@cli.command()
@click.argument("path", required=False, default=".", type=click.Path(file_okay=False))
@click.option("--storage", type=click.Choice(PERSISTENT_KINDS),
              help="git (the default): commits are real Git commits in the enclosing "
                   "repository (one is created when there is none); the others keep "
                   "everything under PATH.")
@json_option
@pass_app
def init(app: App, path: str, storage: str | None) -> None:
    """Create a dataset in PATH (default: the current directory).

    \b
    Example:
      git init myrepo && cd myrepo && git-prolly init data
    """
    from .dataset import Location, NotADataset, locate, open_store
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        raise Fail(f"{path} exists and is not a directory", 2)
    existing = None
    if os.path.isdir(target):
        try:
            loc = locate(target)
            if loc.path == target:
                existing = loc
        except NotADataset:
            pass
    backend = KIND_TO_NAME[storage or "git"]
    if existing is not None:
        if storage is not None and existing.backend != backend:
            raise Fail(f"{target} is already a {existing.backend} dataset", 2)
        backend = existing.backend
    store = open_store(existing or Location(target, backend), create=existing is None)
    app.use_store(store)
    branch = store.current_branch()
    out = app.out
    if out.json_mode:
        out.json({"path": target, "backend": backend, "branch": branch,
                  "created": existing is None, "commit": store.current_commit()})
        return
    verb = "Reinitialized existing" if existing is not None else "Initialized empty"
    out.line(f"{verb} prollytree dataset in {target} ({backend} backend, branch {branch})")


# -- set / get / delete -------------------------------------------------------------------


@cli.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("-f", "--file", "file_", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Read the value from FILE ('-': standard input), byte for byte.")
@pass_app
def set_(app: App, key: str, value: str | None, file_: str | None) -> None:
    """Stage KEY = VALUE (commit it with 'git-prolly commit').

    The value comes from VALUE, from --file, or from standard input when VALUE is omitted
    and standard input is not a terminal (exact bytes: 'printf' does not add a newline,
    'echo' does).

    \b
    Examples:
      git-prolly set user:alice "Alice Johnson"
      git-prolly set avatar:alice --file alice.png
      curl -s https://example.org/cfg.json | git-prolly set config
    """
    if value is not None and file_ is not None:
        raise click.UsageError("give either VALUE or --file, not both")
    if value is not None:
        data = enc(value)
    elif file_ == "-" or (file_ is None and sys.stdin is not None
                          and not sys.stdin.isatty()):
        data = sys.stdin.buffer.read()
    elif file_ is not None:
        with open(file_, "rb") as f:
            data = f.read()
    else:
        raise click.UsageError("missing VALUE (or --file FILE, or a value on standard input)")
    app.store().insert(enc(key), data)


@cli.command()
@click.argument("key")
@click.option("--ref", metavar="REF", help="Read at a branch, tag or commit instead of the "
                                            "current view (which includes staged changes).")
@click.option("--raw", is_flag=True, help="Write the exact value bytes, no newline, no "
                                          "escaping (for binary values).")
@json_option
@pass_app
def get(app: App, key: str, ref: str | None, raw: bool) -> None:
    """Print the value of KEY (exit code 1 when KEY is absent).

    \b
    Examples:
      git-prolly get user:alice
      git-prolly get user:alice --ref HEAD~1
      git-prolly get avatar:alice --raw > alice.png
    """
    store = app.store()
    k = enc(key)
    value = store.get(k) if ref is None else store.get_at(ref, k)
    if value is None:
        where = f" at {ref}" if ref else ""
        raise Fail(f"key not found{where}: {show(k)}", 1)
    out = app.out
    if out.json_mode:
        out.json(put_bytes(put_bytes({}, "key", k), "value", value))
    elif raw:
        out.write_bytes(value)
    else:
        out.write(show_text(value) + "\n")


@cli.command()
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@pass_app
def delete(app: App, keys: tuple[str, ...]) -> None:
    """Stage the deletion of each KEY (exit code 1, deleting nothing, when one is absent).

    \b
    Example:
      git-prolly delete user:bob user:carol
    """
    store = app.store()
    ks = [enc(k) for k in keys]
    missing = [k for k in ks if store.get(k) is None]
    if missing:
        raise Fail("key not found: " + ", ".join(show(k) for k in missing)
                   + "; nothing was deleted", 1)
    for k in ks:
        store.delete(k)


# -- list / status ----------------------------------------------------------------------------


@cli.command("list")
@click.option("--values", is_flag=True, help="Print values next to keys.")
@click.option("--prefix", metavar="P", default="", help="Only keys starting with P.")
@click.option("--ref", metavar="REF", help="List at a branch, tag or commit instead of the "
                                            "current view (which includes staged changes).")
@click.option("--graph", is_flag=True,
              help="Show the prolly tree's nodes (of the current commit, or --ref).")
@json_option
@pass_app
def list_(app: App, values: bool, prefix: str, ref: str | None, graph: bool) -> None:
    """List keys (with --values, key/value pairs) in key order.

    \b
    Examples:
      git-prolly list --prefix user: --values
      git-prolly list --ref v1 --json
      git-prolly list --graph
    """
    store = app.store()
    if graph:
        return _graph(app, store, ref)
    from .dataset import items_at
    out = app.out
    items = items_at(store, ref, enc(prefix))
    if out.json_mode:
        if values:
            out.json([put_bytes(put_bytes({}, "key", k), "value", v) for k, v in items])
        else:
            out.json([put_bytes({}, "key", k) for k, _ in items])
        return
    if values:
        out.table(["Key", "Value"], ([show(k), show(v)] for k, v in items),
                  styles=["cyan", None])
    else:
        out.lines(show(k) for k, _ in items)


def _graph(app: App, store, ref: str | None) -> None:
    out = app.out
    cid = store.resolve_ref(ref or "HEAD")
    tree = store.tree_at(cid)
    root = tree.get_root_hash()
    load = tree.node_cache.load
    if ref is None and store.status():
        out.warn("staged changes are not in the graph: it shows the current commit")

    def node_info(addr: bytes) -> tuple:
        n = load(addr)
        first = n.keys[0] if n.keys else None
        last = n.keys[-1] if n.keys else None
        return n, first, last

    if out.json_mode:
        def build(addr: bytes) -> dict:
            n, first, last = node_info(addr)
            d = {"address": addr.hex(), "level": n.level, "entries": len(n.keys),
                 "pairs": n.total}
            put_bytes(d, "first_key", first)
            put_bytes(d, "last_key", last)
            if n.level:
                d["children"] = [build(c) for c in n.vals]
            return d
        out.json({"commit": cid, "root": root.hex(), "tree": build(root)})
        return

    lines: list[tuple[str, str]] = []

    def walk(addr: bytes, prefix: str, tail: str) -> None:
        n, first, last = node_info(addr)
        kind = "leaf" if n.level == 0 else f"level {n.level}"
        span = f"[{show(first)} .. {show(last)}]" if n.keys else "(empty)"
        label = (f"{addr.hex()[:12]} {kind}, {len(n.keys)} "
                 f"{'entries' if n.level == 0 else 'children'}, {n.total} pairs {span}")
        lines.append((prefix, label))
        if n.level:
            kids = n.vals
            for i, child in enumerate(kids):
                last_child = i == len(kids) - 1
                walk(child, tail + ("└── " if last_child else "├── "),
                     tail + ("    " if last_child else "│   "))

    walk(root, "", "")
    out.line(f"commit {cid}  root {root.hex()}", style="yellow")
    for prefix, label in lines:
        out.styled([(prefix, "dim"), (label[:12], "yellow"), (label[12:], None)])


@cli.command()
@json_option
@pass_app
def status(app: App) -> None:
    """Show the branch, the current commit and the staged changes.

    \b
    Example:
      git-prolly status
    """
    store = app.store()
    out = app.out
    branch = store.current_branch()
    head = store.current_commit()
    changes = store.status()
    if out.json_mode:
        out.json({"branch": branch, "detached": branch is None, "commit": head,
                  "staged": [dict(put_bytes({}, "key", k), status=s) for k, s in changes]})
        return
    if branch is not None:
        out.line(f"On branch {branch}")
    else:
        out.line(f"HEAD detached at {short(head)} (read-only: 'git-prolly checkout -b NAME' "
                 f"to write from here)")
    c = store.commit_info(head)
    out.styled([("Commit ", None), (short(head), "yellow"),
                (" " + first_line(c["message"]), None)])
    if not changes:
        out.line("nothing to commit (stage changes with 'git-prolly set' or 'delete')")
        return
    out.line("Changes to be committed:")
    for k, s in changes:
        style = _MARK.get(s, ("", None))[1]
        out.styled([(f"  {s + ':':<10}", style), (show(k), style)])


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
    cid = store.commit(message)
    counts = {"added": 0, "modified": 0, "deleted": 0}
    for _, key, s in staged:
        if key is not None:           # (tree, None, "created" | "dropped") are not keys
            counts[s] = counts.get(s, 0) + 1
    _report_commit(app, store, cid, message, counts)


def _report_commit(app: App, store, cid: str, message: str, counts: dict) -> None:
    out = app.out
    branch = store.current_branch()
    if out.json_mode:
        out.json({"commit": cid, "branch": branch, "message": message, "changes": counts})
        return
    out.styled([(f"[{branch} ", None), (cid[:12], "yellow"), (f"] {first_line(message)}",
                                                               None)])
    out.line(f" {counts['added']} added, {counts['modified']} modified, "
             f"{counts['deleted']} deleted")


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
        doc["changes"] = [dict(put_bytes({}, "key", d.key), change=_kind(d)) if keys_only
                          else diff_json(d) for d in changes]
        out.json(doc)
        return
    _commit_header(out, c, "")
    out.line()
    _message_lines(out, c["message"])
    _print_changes(out, changes, "compact" if not keys_only else "keys")


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


def _print_changes(out: Output, changes: Iterable, fmt: str) -> int:
    n = 0
    for d in changes:
        n += 1
        kind = _kind(d)
        mark, style = _MARK[kind]
        key = show(d.key)
        if fmt == "keys":
            out.styled([(f"{mark} {key}", style)])
        elif kind == "added":
            out.styled([(f"+ {key} = {show(d.new_value)}", style)])
        elif kind == "deleted":
            out.styled([(f"- {key} = {show(d.old_value)}", style)])
        else:
            out.styled([(f"~ {key}: {show(d.old_value)} -> {show(d.new_value)}", style)])
    return n


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
    ctx.invoke(list_, values=values, prefix=prefix, ref=ref, graph=False)


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
        _print_changes(out, changes, "compact")
        return
    counts = {"added": 0, "modified": 0, "deleted": 0}
    for d in changes:
        counts[_kind(d)] += 1
    out.table(["Change", "Key", "Old value", "New value"],
              ([_kind(d), show(d.key),
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
    _report_commit(app, store, new, store.commit_info(new)["message"],
                   change_counts(store.diff(head, new)))


# -- stats / proofs / fsck / gc -------------------------------------------------------------------


@cli.command()
@click.argument("ref", required=False, default="HEAD")
@json_option
@pass_app
def stats(app: App, ref: str) -> None:
    """Show the shape of the tree at REF: keys, depth, nodes, node sizes, bytes.

    \b
    Example:
      git-prolly stats main
    """
    store = app.store()
    out = app.out
    cid = store.resolve_ref(ref)
    tree = store.tree_at(cid)
    s = tree.stats()
    nodes = s["num_nodes"]
    doc = {"commit": cid, "root": tree.get_root_hash().hex(),
           "backend": store.storage_backend().name,
           "keys": s["total_key_value_pairs"], "depth": s["depth"], "nodes": nodes,
           "leaves": s["num_leaves"], "internal_nodes": s["num_internal_nodes"],
           "avg_entries_per_node": round(s["avg_node_size"], 2),
           "bytes": s["total_node_bytes"],
           "avg_node_bytes": round(s["total_node_bytes"] / nodes, 1) if nodes else 0.0}
    if out.json_mode:
        out.json(doc)
        return
    labels = [("commit", "Commit"), ("root", "Root hash"), ("backend", "Backend"),
              ("keys", "Keys"), ("depth", "Depth"), ("nodes", "Nodes"),
              ("leaves", "Leaf nodes"), ("internal_nodes", "Internal nodes"),
              ("avg_entries_per_node", "Average node size (entries)"),
              ("avg_node_bytes", "Average node size (bytes)"), ("bytes", "Total bytes")]
    out.table(["Statistic", "Value"], ([label, str(doc[k])] for k, label in labels),
              styles=["bold", None], nowrap=(0, 1))


@cli.command()
@click.argument("key")
@click.option("--ref", metavar="REF", default="HEAD", show_default=True,
              help="Prove the value at this branch, tag or commit.")
@click.option("-o", "--output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the proof to FILE instead of standard output.")
@pass_app
def proof(app: App, key: str, ref: str, output: str | None) -> None:
    """Print a portable proof of KEY's value (or of its absence) at REF.

    The proof is a JSON document holding the root hash, the key, the claimed value and
    the proof bytes (base64). Anyone holding the root hash can check it with
    'git-prolly verify-proof', without the dataset.

    \b
    Example:
      git-prolly proof user:alice -o alice.proof
    """
    import base64
    import json

    store = app.store()
    out = app.out
    k = enc(key)
    cid = store.resolve_ref(ref)
    tree = store.tree_at(cid)
    value = tree.find(k)
    doc = {"format": "prollytree-proof", "version": 1, "commit": cid,
           "root": tree.get_root_hash().hex()}
    put_bytes(doc, "key", k)
    doc["present"] = value is not None
    put_bytes(doc, "value", value)
    doc["proof"] = base64.b64encode(tree.generate_proof(k)).decode("ascii")
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        what = f"value of {show(k)}" if value is not None else f"absence of {show(k)}"
        if out.json_mode:
            out.json({"written": output, "root": doc["root"], "present": doc["present"]})
        else:
            out.line(f"Wrote proof of the {what} under root {doc['root'][:16]}... to {output}")
    else:
        out.write(text)


@cli.command("verify-proof")
@click.argument("file", required=False, default="-",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--root", "root_hex", metavar="HASH",
              help="The trusted root hash (64 hex digits) to check against.")
@click.option("--ref", metavar="REF",
              help="Check against the root of REF in the current dataset.")
@click.option("--key", "key_text", metavar="KEY", help="The key to check (default: the "
                                                        "proof's).")
@click.option("--value", "value_text", metavar="VALUE",
              help="The value to check (default: the value the proof claims).")
@json_option
@pass_app
def verify_proof(app: App, file: str, root_hex: str | None, ref: str | None,
                 key_text: str | None, value_text: str | None) -> None:
    """Check a proof (from 'git-prolly proof', in FILE or on standard input) against a
    trusted root hash: --root HASH, --ref REF, or by default the current commit of the
    dataset you are in. Exit code 0 when it verifies, 1 when it does not.

    \b
    Examples:
      git-prolly verify-proof alice.proof --root 3f5a...e1
      git-prolly proof user:alice | git-prolly verify-proof
    """
    import base64
    import binascii
    import json

    from prollytree import ProofError, proven_value

    from .output import get_bytes
    out = app.out
    if root_hex and ref:
        raise click.UsageError("give either --root or --ref")
    try:
        if file == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(file, "rb") as f:
                raw = f.read()
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != "prollytree-proof":
            raise ValueError("not a prollytree proof document")
        proof_bytes = base64.b64decode(doc["proof"], validate=True)
        key = enc(key_text) if key_text is not None else get_bytes(doc, "key")
        claimed_present = bool(doc.get("present", True))
        if value_text is not None:
            expected = enc(value_text)
        else:
            expected = get_bytes(doc, "value") if claimed_present else None
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise Fail(f"cannot read the proof in {file if file != '-' else 'standard input'}: "
                   f"{detail}", 2) from None
    if root_hex:
        try:
            root = bytes.fromhex(root_hex)
            if len(root) != 32:
                raise ValueError
        except ValueError:
            raise Fail(f"--root must be 64 hex digits, got {root_hex!r}", 2) from None
    else:
        root = app.store().commit_info(ref or "HEAD")["root"]
    reason = None
    try:
        proven = proven_value(root, proof_bytes, key)
    except ProofError as e:
        proven, reason = None, str(e)
    if reason is None and proven != expected:
        if expected is None:
            reason = f"the proof shows {show(key)} present, not absent"
        elif proven is None:
            reason = f"the proof shows {show(key)} absent"
        else:
            reason = f"the proof shows another value for {show(key)}: {show(proven)}"
    valid = reason is None
    if out.json_mode:
        d = {"valid": valid, "root": root.hex()}
        put_bytes(d, "key", key)
        d["present"] = expected is not None
        put_bytes(d, "value", expected)
        d["reason"] = reason
        out.json(d)
    elif valid:
        what = (f"{show(key)} = {show(expected)}" if expected is not None
                else f"{show(key)} is absent")
        out.styled([("OK", "green"), (f": proof verifies: {what} under root {root.hex()}",
                                      None)])
    if not valid:
        raise Fail(f"proof does not verify: {reason}", 1)


@cli.command()
@json_option
@pass_app
def fsck(app: App) -> None:
    """Check every node reachable from every branch, tag and HEAD: present, hashing to its
    address, decodable. Exit code 1 when anything is damaged.

    \b
    Example:
      git-prolly fsck
    """
    from prollytree.errors import CorruptNodeError, MissingNodeError
    out = app.out
    try:
        store = app.store()
    except (CorruptNodeError, MissingNodeError) as e:
        # the current commit's tree cannot even be loaded: that is damage to report
        kind = "damaged-node" if isinstance(e, CorruptNodeError) else "missing-node"
        report = {"ok": False, "refs": 0, "commits": 0, "trees": 0, "nodes": 0, "bytes": 0,
                  "problems": [{"kind": kind, "object": e.address.hex(), "commit": "",
                                "reached_from": "HEAD",
                                "detail": f"the dataset cannot be opened: {e}"}]}
    else:
        with out.progress("checking nodes", None) as advance:
            report = store.fsck(advance)
    if out.json_mode:
        out.json(report)
    else:
        out.line(f"Checked {report['refs']} ref(s), {report['commits']} commit(s), "
                 f"{report['trees']} tree(s), {report['nodes']} node(s), "
                 f"{report['bytes']} bytes")
        if report["ok"]:
            out.line("no damage found", style="green")
        else:
            out.table(["Problem", "Object", "Commit", "Reached from", "Detail"],
                      ([p["kind"], p["object"], p.get("commit", "")[:12],
                        p.get("reached_from", ""), p.get("detail", "")]
                       for p in report["problems"]), styles=["red", None, "yellow", None,
                                                             None])
    if not report["ok"]:
        raise Fail(f"{len(report['problems'])} problem(s) found", 1)


@cli.command()
@click.option("--dry-run", "-n", is_flag=True, help="Count what would be removed; remove "
                                                     "nothing.")
@json_option
@pass_app
def gc(app: App, dry_run: bool) -> None:
    """Remove nodes and commits that no branch, tag or HEAD reaches.

    On a Git dataset the nodes are Git objects: 'git gc' reclaims them, so gc only
    counts the unreachable ones and forgets the ones 'git gc' already deleted.

    \b
    Example:
      git-prolly gc --dry-run
    """
    store = app.store()
    out = app.out
    with out.progress("collecting", None) as advance:
        report = store.gc(dry_run, advance)
    if out.json_mode:
        out.json(report)
        return
    out.line(f"{report['commits']} reachable commit(s), {report['live_nodes']} live node(s)")
    if report["managed_by_git"]:
        out.line(f"{report['unreachable_nodes']} node(s) no branch reaches; on the Git "
                 f"backend Git manages object lifetime, nothing removed ('git gc' "
                 f"reclaims them)")
        if report["map_entries_dropped"]:
            verb = "would drop" if dry_run else "dropped"
            out.line(f"{verb} {report['map_entries_dropped']} node map entries of objects "
                     f"git gc deleted")
    elif dry_run:
        out.line(f"would remove {report['unreachable_nodes']} node(s) and "
                 f"{report['unreachable_commits']} commit(s)")
    else:
        out.line(f"removed {report['removed']} node(s) and {report['removed_commits']} "
                 f"commit(s)")


# -- import / export ---------------------------------------------------------------------------


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]),
              help="File format (default: from the file name: .jsonl/.ndjson/.json, .csv).")
@click.option("--no-header", is_flag=True, help="CSV without a header row: the first two "
                                                "columns are key and value.")
@click.option("-m", "--message", metavar="MSG", help="Commit the imported pairs with MSG.")
@json_option
@pass_app
def import_(app: App, file: str, fmt: str | None, no_header: bool, message: str | None) -> None:
    """Stage every key/value pair of a JSON Lines or CSV file (and commit with -m).

    The whole file is checked first: a bad line stops the import with its line number
    and stages nothing. Large files show a progress bar on a terminal.

    \b
    Examples:
      git-prolly import users.jsonl -m "Load users"
      git-prolly import prices.csv
    """
    from .transfer import guess_format, parse_file
    out = app.out
    if file == "-" and not fmt:
        raise click.UsageError("--format is needed to import from standard input")
    fmt = guess_format(file, fmt)
    store = app.store()
    if store.current_branch() is None:
        raise Fail("HEAD is detached: checkout a branch to import into", 2)
    records = parse_file(file, fmt, not no_header, out.progress)
    store.insert_batch(records)  # one append to the staging journal
    cid = store.commit(message) if message else None
    if out.json_mode:
        out.json({"imported": len(records), "format": fmt, "commit": cid})
        return
    msg = f"Imported {len(records)} pair(s) from {file if file != '-' else 'standard input'}"
    out.line(msg + (f" and committed {short(cid)}" if cid else
                    " (staged: 'git-prolly commit -m MSG' to record them)"))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]),
              help="File format (default: from the file name).")
@click.option("--ref", metavar="REF", help="Export at a branch, tag or commit instead of the "
                                            "current view.")
@click.option("--prefix", metavar="P", default="", help="Only keys starting with P.")
@json_option
@pass_app
def export(app: App, file: str, fmt: str | None, ref: str | None, prefix: str) -> None:
    """Write every key/value pair (in key order) to a JSON Lines or CSV file ('-':
    standard output).

    \b
    Examples:
      git-prolly export backup.jsonl
      git-prolly export users.csv --prefix user: --ref v1
    """
    from .dataset import items_at
    from .transfer import PROGRESS_ITEMS, guess_format, needs_binary_columns, write_records
    out = app.out
    if file == "-" and not fmt:
        fmt = "jsonl"
    fmt = guess_format(file, fmt)
    store = app.store()
    p = enc(prefix)
    binary = fmt == "csv" and needs_binary_columns(items_at(store, ref, p))
    total = None
    if file != "-" and not p:
        total = store.tree_at(ref or "HEAD").size()
    if file == "-":
        import io
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="",
                                  write_through=False)
        n = write_records(stream, fmt, items_at(store, ref, p), binary, lambda _n: None)
        stream.flush()
        stream.detach()
        if out.json_mode:
            out.note(f"exported {n} pair(s)")
        return
    tmp = f"{file}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            with out.progress(f"writing {os.path.basename(file)}", total,
                              enabled=bool(total and total >= PROGRESS_ITEMS)) as adv:
                n = write_records(f, fmt, items_at(store, ref, p), binary, adv)
        os.replace(tmp, file)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if out.json_mode:
        out.json({"exported": n, "format": fmt, "file": file})
    else:
        out.line(f"Exported {n} pair(s) to {file}")


# -- sync: clone, fetch, pull, push, remote, serve (prollytree/cli/sync.py) --------------------

from .sync import register as _register_sync  # noqa: E402 - needs the group defined above

_register_sync(cli)
# -- web UI (prollytree/cli/ui.py) --------------------------------------------------------------

from .ui import ui as _ui  # noqa: E402  (registered after the group exists)

cli.add_command(_ui)


# -- entry point ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run ``git-prolly`` and exit with its code (see the module docstring)."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    out_err = Output()
    try:
        cli.main(args=argv, prog_name="git-prolly", standalone_mode=False)
        return 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        hint = ""
        if e.ctx is not None:
            hint = f" (see '{e.ctx.command_path} --help')"
        out_err.error(e.format_message() + hint)
        return 2
    except click.ClickException as e:
        out_err.error(e.format_message())
        return e.exit_code
    except click.Abort:
        sys.stderr.write("\naborted\n")
        return 130
    except Fail as e:
        if e.message:
            out_err.error(e.message)
        return e.code
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `git-prolly list | head`): quietly stop
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except Exception as e:  # noqa: BLE001 - the top level decides what users see
        return _report_exception(out_err, e)


def _report_exception(out: Output, e: Exception) -> int:
    from prollytree.errors import ProllyError

    if isinstance(e, (ProllyError, ValueError, TypeError)):
        out.error(_message(e))
        return 2
    if isinstance(e, OSError):
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        out.error(f"{e.strerror or e}{where}")
        return 2
    if os.environ.get("GIT_PROLLY_DEBUG"):
        import traceback
        traceback.print_exc()
    out.error(f"internal error: {type(e).__name__}: {e} (set GIT_PROLLY_DEBUG=1 for a "
              f"traceback)")
    return 3


def _message(e: Exception) -> str:
    text = str(e)
    if isinstance(e, KeyError) and e.args and text.startswith(("'", '"')):
        text = str(e.args[0])
    return text or type(e).__name__


# -- namespaces and worktrees (issue #11): their own modules ---------------------------------
def _register_ns_worktree() -> None:
    from .ns import ns_group
    from .worktree import worktree_group
    cli.add_command(ns_group)
    cli.add_command(worktree_group)


_register_ns_worktree()
# SQL over the dataset (issue 12); the module imports only click at start-up
from .sql import sql as _sql_command  # noqa: E402

cli.add_command(_sql_command)


if __name__ == "__main__":  # pragma: no cover
    main()

