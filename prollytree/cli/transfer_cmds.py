"""``import`` and ``export`` commands (formats in :mod:`.transfer`)."""

from __future__ import annotations

import os
import sys

import click

from .app import (App, Fail, cli,
                  enc, json_option, pass_app,
                  short)



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
