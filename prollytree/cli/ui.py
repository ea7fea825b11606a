"""``git-prolly ui``: serve the web UI (``prollytree.web``) over the dataset."""

from __future__ import annotations

import os

import click


@click.command("ui")
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind: the default answers this machine only.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on.")
@click.option("--write", is_flag=True,
              help="Allow staging, commit, branch, checkout and merge from the browser "
                   "(protected by a per-session token).")
def ui(path: str | None, host: str, port: int, write: bool) -> None:
    """Serve a web UI over the dataset at PATH (default: the one at or above the current
    directory) and print its URL. Read-only unless --write. Stop with Ctrl-C.

    \b
    Examples:
      git-prolly ui
      git-prolly ui data/ --port 9000 --write
    """
    try:
        from prollytree.web import serve
    except ImportError as e:
        raise click.ClickException(
            f"the web UI needs the web extra ({e.name} is missing): "
            f"pip install 'prollytree-py[web]'") from None
    try:
        serve(path or os.getcwd(), host, port, write,
              on_ready=lambda url: click.echo(f"prollytree web UI at {url} (Ctrl-C to stop)"))
    except OSError as e:        # the port is taken, the host unknown
        raise click.ClickException(str(e)) from None
