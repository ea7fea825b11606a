"""Commands on keys of the working copy: ``init``, ``set``, ``get``, ``delete``, ``list``,
``status``."""

from __future__ import annotations

import os
import sys

import click

from .app import (CHANGE_MARKS, KIND_TO_NAME, PERSISTENT_KINDS, App, Fail, cli,
                  enc, first_line, json_option, pass_app,
                  short)
from .output import put_bytes, show, show_text



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
        app.store().insert(enc(key), enc(value))
    elif file_ == "-" or (file_ is None and sys.stdin is not None
                          and not sys.stdin.isatty()):
        app.store().insert_stream(enc(key), sys.stdin.buffer)  # streamed: any size
    elif file_ is not None:
        with open(file_, "rb") as f:
            app.store().insert_stream(enc(key), f)
    else:
        raise click.UsageError("missing VALUE (or --file FILE, or a value on standard input)")


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

    A value longer than 64 KiB (stored in chunks) is written raw and streamed chunk by
    chunk, as with --raw: 'git-prolly get KEY > FILE' copies it byte for byte.

    \b
    Examples:
      git-prolly get user:alice
      git-prolly get user:alice --ref HEAD~1
      git-prolly get avatar:alice --raw > alice.png
    """
    from prollytree.tree.values import DEFAULT_THRESHOLD

    store = app.store()
    k = enc(key)
    out = app.out
    f = store.open_value(k) if ref is None else store.open_value_at(ref, k)
    if f is not None and not out.json_mode and (raw or f.seek(0, 2) > DEFAULT_THRESHOLD):
        f.seek(0)
        with f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                out.write_bytes(block)
        return
    if f is not None:
        f.seek(0)
    value = None if f is None else f.read()
    if value is None:
        where = f" at {ref}" if ref else ""
        raise Fail(f"key not found{where}: {show(k)}", 1)
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
        style = CHANGE_MARKS.get(s, ("", None))[1]
        out.styled([(f"  {s + ':':<10}", style), (show(k), style)])
