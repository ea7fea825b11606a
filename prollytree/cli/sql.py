"""``git prolly sql``: SQL over the dataset (a :class:`ProllySQLStore`).

``git prolly sql "SELECT ..." [--ref REF] [--format table|csv|json]`` runs statements and
prints the last result; with no query it reads SQL from standard input (a script), or on a
terminal starts an interactive shell (statements end with ``;``, ``.quit`` leaves). Writes are
staged in the dataset like every other change: ``git prolly commit`` (or ``SELECT
prolly_commit('message')``) makes the version.
"""

from __future__ import annotations

import os
import sys

import click

from .app import Fail, pass_app

__all__ = ["sql"]


def _open():
    try:
        from prollytree.sql import ProllySQLStore
    except ImportError as e:  # apsw missing
        raise Fail(f"git-prolly sql needs the sql extra: pip install 'prollytree-py[sql]' "
                   f"({e})", 2) from None
    from prollytree.versioning import StorageBackend
    from .dataset import locate
    loc = locate(os.getcwd())
    return ProllySQLStore.open(loc.path, StorageBackend[loc.backend])


def _cell(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        return "x'" + v.hex() + "'"
    return str(v)


def _show(app, result, fmt: str) -> None:
    out = app.out
    if isinstance(result, dict):  # not a query
        if out.json_mode or fmt == "json":
            out.json(result)
        elif "count" in result:
            out.line(f"{result['type']}: {result['count']} row(s)")
        else:
            out.line(f"{result['type']}: ok")
        return
    labels, rows = result
    if out.json_mode or fmt == "json":
        out.json([{k: (v.hex() if isinstance(v, bytes) else v) for k, v in zip(labels, r)}
                  for r in rows])
    elif fmt == "csv":
        from prollytree.sql.store import format_rows
        out.write(format_rows(labels, rows, "csv"))
    else:
        out.table(labels, ([_cell(v) for v in r] for r in rows), empty="(no rows)")


def _run(app, store, query: str, ref: str | None, fmt: str) -> None:
    import apsw
    try:
        if ref is not None:
            result = store.query_at_commit(ref, query, "tuples")
        else:
            result = store.execute(query, "tuples")
    except apsw.Error as e:
        raise Fail(f"SQL: {e}", 2) from None
    if isinstance(result, list):  # query_at_commit with no statements
        result = ([], [])
    _show(app, result, fmt)


@click.command("sql")
@click.argument("query", required=False)
@click.option("--ref", metavar="REF",
              help="Query the database as it was at a branch, tag or commit (read-only).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="How to print query results.")
@pass_app
def sql(app, query: str | None, ref: str | None, fmt: str) -> None:
    """Run SQL (the SQLite dialect) on the dataset's tables.

    With no QUERY: SQL from standard input, or an interactive shell on a terminal.
    Changes are staged; SELECT prolly_commit('message') makes a version.

    \b
    Examples:
      git-prolly sql "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"
      git-prolly sql "SELECT * FROM users WHERE id = 1" --format json
      git-prolly sql "SELECT * FROM users" --ref HEAD~1 --format csv
      git-prolly sql < migrate.sql
    """
    store = _open()
    try:
        if query is not None:
            _run(app, store, query, ref, fmt)
        elif not sys.stdin.isatty():
            _run(app, store, sys.stdin.read(), ref, fmt)
        else:
            _shell(app, store, ref, fmt)
    finally:
        store.close()


def _shell(app, store, ref: str | None, fmt: str) -> None:
    import apsw
    where = f" at {ref}" if ref else f" on {store.current_branch() or 'detached HEAD'}"
    app.out.note(f"prollytree SQL{where}; end statements with ';', '.quit' to leave")
    buf = ""
    while True:
        try:
            line = input("sql> " if not buf else "...> ")
        except EOFError:
            break
        if not buf and line.strip() in (".quit", ".exit"):
            break
        buf += line + "\n"
        if not apsw.complete(buf):
            continue
        try:
            _run(app, store, buf, ref, fmt)
        except Fail as e:
            app.out.error(e.message or "")
        except (ValueError, TypeError) as e:
            app.out.error(str(e))
        buf = ""
