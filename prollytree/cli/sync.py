"""``git-prolly clone | fetch | pull | push | remote | serve``: Git remotes and the HTTP
server of Git-backed datasets (see :mod:`prollytree.sync.git_remote`,
:mod:`prollytree.sync.http_server` and ``docs/sync-http.md``).

Registered on the main group by :func:`register`; the sync modules (dulwich, httpx,
starlette, uvicorn) are imported only when one of these commands runs. Exit codes follow
``docs/cli.md``: 1 for a refused push that is not a fast-forward and for merge conflicts
of ``pull``, 2 for an unreachable remote, a wrong token, bad usage.
"""

from __future__ import annotations

import os

import click

from .app import Fail, json_option, pass_app, short

#: phases whose counts are bytes (drawn with sizes and speed)
_BYTE_PHASES = {"Receiving objects", "Sending objects"}


class _PhaseProgress:
    """Adapts ``progress(phase, done, total)`` of the sync functions to one rich bar per
    phase (on a terminal only; see :meth:`Output.progress`)."""

    def __init__(self, out) -> None:
        self.out = out
        self._ctx = None
        self._advance = None
        self._phase = None
        self._done = 0

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase != self._phase:
            self.close()
            self._phase = phase
            self._done = 0
            self._ctx = self.out.progress(
                phase, total, unit="bytes" if phase in _BYTE_PHASES else "items")
            self._advance = self._ctx.__enter__()
        if done > self._done:
            self._advance(done - self._done)
            self._done = done

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def __enter__(self) -> "_PhaseProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _git_store(app):
    store = app.store()
    if store.storage_backend().name != "Git":
        raise Fail(f"these commands need a Git-backed dataset; this one is "
                   f"{store.storage_backend().name}: use VersionedKvStore.push / pull / "
                   f"clone (see docs/sync.md)", 2)
    return store


def _token(token: str | None) -> str | None:
    return token if token is not None else (os.environ.get("GIT_PROLLY_TOKEN") or None)


def _non_ff(e: Exception) -> Fail:
    return Fail(str(e), 1)


@click.command()
@click.argument("url")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("-b", "--branch", metavar="NAME", help="Check out NAME instead of the "
                                                     "remote's default branch.")
@click.option("--dataset", metavar="DIR", help="The dataset's directory inside the "
                                               "repository (when it holds several).")
@json_option
@pass_app
def clone(app, url: str, directory: str | None, branch: str | None,
          dataset: str | None) -> None:
    """Clone the repository at URL into DIRECTORY and open its dataset.

    URL is a path, file://, git://, ssh:// or http(s):// (a 'git-prolly serve'
    server). DIRECTORY defaults to the last part of URL without '.git'.

    \b
    Examples:
      git-prolly clone /srv/data.git mydata
      git-prolly clone git://example.org/data.git
      git-prolly clone http://127.0.0.1:8765 copy
    """
    from prollytree.sync import git_remote
    if directory is None:
        tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        directory = tail[:-4] if tail.endswith(".git") else tail
        if not directory or directory in (".", ".."):
            raise click.UsageError("cannot guess a directory name from URL: name one")
    out = app.out
    with _PhaseProgress(out) as progress:
        store = git_remote.clone(url, directory, branch=branch, dataset=dataset,
                                 progress=progress, token=_token(None))
    app.use_store(store)
    info = {"path": store.path, "repository": os.path.abspath(directory),
            "branch": store.current_branch(), "commit": store.current_commit(),
            "keys": store.tree_at().size()}
    if out.json_mode:
        out.json(info)
        return
    out.line(f"Cloned into {directory}: dataset {store.path} on {info['branch']} at "
             f"{short(info['commit'])} ({info['keys']} key(s))")


@click.command()
@click.argument("remote", default="origin")
@click.option("--token", metavar="T", help="Token of an http(s) remote (default: "
                                           "$GIT_PROLLY_TOKEN or the one in its URL).")
@json_option
@pass_app
def fetch(app, remote: str, token: str | None) -> None:
    """Fetch the branches and tags of REMOTE (default origin) into
    refs/remotes/REMOTE/*; the current branch does not move.

    \b
    Examples:
      git-prolly fetch
      git-prolly fetch backup --json
    """
    from prollytree.sync import git_remote
    store = _git_store(app)
    with _PhaseProgress(app.out) as progress:
        report = git_remote.fetch(store, remote, progress=progress, token=_token(token))
    _print_fetch(app, report)


def _print_fetch(app, report: dict, json_too: bool = True) -> None:
    out = app.out
    if out.json_mode:
        if json_too:
            out.json(_fetch_json(report))
        return
    if not report["updated"] and not report["new_tags"]:
        out.line(f"{report['remote']}: up to date")
        return
    out.line(f"From {report['url']}")
    for branch, (old, new) in sorted(report["updated"].items()):
        target = f"{report['remote']}/{branch}"
        if new is None:
            out.line(f" - [deleted]  {target}")
        elif old is None:
            out.line(f" * [new branch] {branch} -> {target}")
        else:
            out.line(f"   {short(old)}..{short(new)}  {branch} -> {target}")
    for tag in report["new_tags"]:
        out.line(f" * [new tag]  {tag}")


def _fetch_json(report: dict) -> dict:
    return {"remote": report["remote"], "url": report["url"],
            "updated": {b: {"old": o, "new": n} for b, (o, n) in report["updated"].items()},
            "new_tags": report["new_tags"], "bytes": report["bytes"]}


_STRATEGIES = {"take-source": "TakeSource", "take-destination": "TakeDestination",
               "ignore-all": "IgnoreAll"}


@click.command()
@click.argument("remote", default="origin")
@click.argument("branch", required=False)
@click.option("--strategy", type=click.Choice(sorted(_STRATEGIES)),
              help="Settle conflicting keys this way (default: stop on conflicts).")
@click.option("--token", metavar="T", help="Token of an http(s) remote.")
@json_option
@pass_app
def pull(app, remote: str, branch: str | None, strategy: str | None,
         token: str | None) -> None:
    """Fetch REMOTE, then merge its BRANCH (default: the current branch's name) into the
    current branch: a fast-forward, or a merge commit with two parents. Conflicting keys
    stop the merge (exit code 1, the branch unchanged) unless --strategy settles them.

    \b
    Examples:
      git-prolly pull
      git-prolly pull origin main --strategy take-source
    """
    from prollytree.errors import MergeConflictError
    from prollytree.sync import git_remote
    from prollytree.versioning import ConflictResolution, Unresolved
    store = _git_store(app)
    if strategy is None:
        resolution = lambda c: Unresolved  # noqa: E731 - refuse every conflict
    else:
        resolution = getattr(ConflictResolution, _STRATEGIES[strategy])
    with _PhaseProgress(app.out) as progress:
        try:
            report = git_remote.pull(store, remote, branch, resolution, progress=progress,
                                     token=_token(token))
        except MergeConflictError as e:
            keys = ", ".join(repr(c.key) for c in e.conflicts[:10])
            raise Fail(f"pull stopped on {len(e.conflicts)} conflict(s) ({keys}); the "
                       f"branch is unchanged (the fetch happened); rerun with --strategy "
                       f"take-source, take-destination or ignore-all", 1) from None
    out = app.out
    if out.json_mode:
        d = _fetch_json(report)
        d.update({"result": report["merged"], "branch": report["branch"],
                  "commit": report["commit"]})
        out.json(d)
        return
    _print_fetch(app, report, json_too=False)
    kind = report["merged"]
    if kind == "up-to-date":
        out.line("Already up to date.")
    elif kind == "fast-forward":
        out.line(f"Fast-forward to {short(report['commit'])}")
    else:
        out.line(f"Merged {remote}/{report['branch']} into {store.current_branch()}: "
                 f"{short(report['commit'])}")


@click.command()
@click.argument("remote", default="origin")
@click.argument("branch", required=False)
@click.option("-f", "--force", is_flag=True, help="Replace the remote branch even when "
                                                  "that loses its commits.")
@click.option("--token", metavar="T", help="Token of an http(s) remote (default: "
                                           "$GIT_PROLLY_TOKEN or the one in its URL).")
@json_option
@pass_app
def push(app, remote: str, branch: str | None, force: bool, token: str | None) -> None:
    """Push BRANCH (default: the current branch) to REMOTE (default origin). A push that
    is not a fast-forward is refused (exit code 1) unless --force.

    \b
    Examples:
      git-prolly push
      GIT_PROLLY_TOKEN=s3cret git-prolly push web main
    """
    from prollytree.errors import NonFastForwardError
    from prollytree.sync import git_remote
    store = _git_store(app)
    with _PhaseProgress(app.out) as progress:
        try:
            r = git_remote.push(store, remote, branch, force, progress=progress,
                                token=_token(token))
        except NonFastForwardError as e:
            raise _non_ff(e) from None
    out = app.out
    if out.json_mode:
        out.json(r)
        return
    target = f"{r['branch']} -> {r['branch']}"
    if r["status"] == "up-to-date":
        out.line(f"{r['remote']}: everything up to date")
    elif r["status"] == "created":
        out.line(f"To {r['url']}\n * [new branch] {target}")
    elif r["status"] == "forced":
        out.line(f"To {r['url']}\n + {short(r['old'])}...{short(r['new'])} {target} "
                 f"(forced update)")
    else:
        out.line(f"To {r['url']}\n   {short(r['old'])}..{short(r['new'])}  {target}")


@click.group()
def remote() -> None:
    """Manage remotes (Git's own: 'git remote -v' lists the same).

    \b
    Examples:
      git-prolly remote add origin /srv/data.git
      git-prolly remote list -v
      git-prolly remote remove origin
    """


@remote.command("add")
@click.argument("name")
@click.argument("url")
@json_option
@pass_app
def remote_add(app, name: str, url: str) -> None:
    """Add remote NAME at URL."""
    from prollytree.sync import git_remote
    store = _git_store(app)
    git_remote.add_remote(store, name, url)
    if app.out.json_mode:
        app.out.json({"name": name,
                      "url": git_remote.redact_url(git_remote.remote_url(store, name))})


@remote.command("list")
@click.option("-v", "--verbose", is_flag=True, help="Show URLs.")
@json_option
@pass_app
def remote_list(app, verbose: bool) -> None:
    """List the remotes."""
    from prollytree.sync import git_remote
    # a token kept in a URL (http://TOKEN@host) is never printed
    remotes = {n: git_remote.redact_url(u)
               for n, u in git_remote.list_remotes(_git_store(app)).items()}
    out = app.out
    if out.json_mode:
        out.json([{"name": n, "url": u} for n, u in remotes.items()])
        return
    for n, u in remotes.items():
        out.line(f"{n}\t{u}" if verbose else n)


@remote.command("remove")
@click.argument("name")
@json_option
@pass_app
def remote_remove(app, name: str) -> None:
    """Remove remote NAME and its remote-tracking refs."""
    from prollytree.sync import git_remote
    git_remote.remove_remote(_git_store(app), name)
    if app.out.json_mode:
        app.out.json({"removed": name})


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; mind the security "
                   "notes in docs/sync-http.md).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--allow-push", is_flag=True, help="Accept pushes (needs a token).")
@click.option("--token", metavar="T", help="Token for pushes (default: $GIT_PROLLY_TOKEN; "
                                           "the environment keeps it out of 'ps').")
@click.option("--max-push-bytes", type=click.IntRange(min=1), default=1 << 30,
              show_default=True, help="Largest push body accepted.")
@pass_app
def serve(app, host: str, port: int, allow_push: bool, token: str | None,
          max_push_bytes: int) -> None:
    """Serve the dataset over HTTP for clone/fetch (and push with --allow-push).

    \b
    Examples:
      git-prolly serve --port 8765
      GIT_PROLLY_TOKEN=s3cret git-prolly serve --allow-push
    """
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise Fail("serve needs the sync extra: pip install 'prollytree-py[sync]'", 2) \
            from None
    store = app.store()
    path = store.path
    kind = store.storage_backend().name
    if kind == "InMemory":
        raise Fail("an InMemory dataset cannot be served", 2)
    app.close()  # the server opens the dataset itself
    token = _token(token)
    if allow_push and not token:
        raise click.UsageError("--allow-push needs --token T (or $GIT_PROLLY_TOKEN)")
    app.out.note(f"serving {path} on http://{host}:{port} "
                 f"({'push allowed with the token' if allow_push else 'read-only'})")
    if kind == "Git":
        from prollytree.sync.http_server import serve as run
        run(path, host, port, allow_push=allow_push, token=token if allow_push else None,
            max_push_bytes=max_push_bytes)
    else:      # a store-backed dataset: its node store (prollytree.sync.http_store)
        from prollytree.sync.http_store import serve_store
        serve_store(path, host, port, allow_push=allow_push,
                    token=token if allow_push else None, max_put_bytes=max_push_bytes)


def register(group: click.Group) -> None:
    """Add the sync commands to the ``git-prolly`` group."""
    for cmd in (clone, fetch, pull, push, remote, serve):
        group.add_command(cmd)
