"""The ``git-prolly`` application object, the command group and the helpers every
command module shares (JSON shapes, the ``--json`` option, failures with exit codes).

Only click and the small output helpers are imported at start-up; the store (and with it
dulwich), rich, and everything else are imported by the commands that need them.
"""

from __future__ import annotations

import os
from typing import Iterable

import click

from .._version import __version__
from .output import Output, put_bytes, show, timestamp_text

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


def change_kind(d) -> str:
    return "added" if d.old_value is None else "deleted" if d.new_value is None else "modified"


CHANGE_MARKS = {"added": ("+", "green"), "deleted": ("-", "red"), "modified": ("~", "yellow")}


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


def report_commit(app: App, store, cid: str, message: str, counts: dict) -> None:
    out = app.out
    branch = store.current_branch()
    if out.json_mode:
        out.json({"commit": cid, "branch": branch, "message": message, "changes": counts})
        return
    out.styled([(f"[{branch} ", None), (cid[:12], "yellow"), (f"] {first_line(message)}",
                                                               None)])
    out.line(f" {counts['added']} added, {counts['modified']} modified, "
             f"{counts['deleted']} deleted")


def print_changes(out: Output, changes: Iterable, fmt: str) -> int:
    n = 0
    for d in changes:
        n += 1
        kind = change_kind(d)
        mark, style = CHANGE_MARKS[kind]
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
