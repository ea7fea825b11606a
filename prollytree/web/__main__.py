"""``python -m prollytree.web [PATH] [--host H] [--port N] [--write]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prollytree.web",
        description="Serve a web UI over the prollytree dataset at or above PATH.")
    parser.add_argument("path", nargs="?", default=".", help="dataset directory (default .)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--write", action="store_true",
                        help="allow staging, commit, branch, checkout and merge from the UI")
    args = parser.parse_args(argv)
    try:
        from .app import serve
    except ImportError as e:
        sys.stderr.write(f"error: the web UI needs the web extra ({e.name} is missing): "
                         "pip install 'prollytree-py[web]'\n")
        return 2
    try:
        serve(args.path, args.host, args.port, args.write,
              on_ready=lambda url: print(f"prollytree web UI at {url} (Ctrl-C to stop)",
                                         flush=True))
    except (ValueError, OSError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
