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

import click

# one module per command group; importing the core ones registers their commands on the
# group, the others hand theirs over
from . import branches, history, keys, maintenance, transfer_cmds  # noqa: F401
from .app import Fail, cli
from .ns import ns_group
from .output import Output
from .sql import sql as sql_command
from .sync import register as register_sync
from .ui import ui as ui_command
from .worktree import worktree_group

register_sync(cli)          # clone, fetch, pull, push, remote, serve
for _command in (ns_group, worktree_group, sql_command, ui_command):
    cli.add_command(_command)


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


if __name__ == "__main__":  # pragma: no cover
    main()


