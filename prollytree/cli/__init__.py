"""The ``git-prolly`` command line: a Git-like shell over :class:`VersionedKvStore`.

``main.py`` holds the click commands, ``output.py`` the printing (escaping, JSON, tables,
colour), ``dataset.py`` the way a command finds and opens its dataset and the operations
built on the store's public methods, ``transfer.py`` import and export. Heavy modules
(rich, dulwich, the store itself) are imported inside the commands that need them, so
that ``git-prolly get`` starts quickly.
"""


def run() -> None:
    """Console entry point: a clear message, not a traceback, when the ``cli`` extra
    (click, rich) is not installed."""
    try:
        from .main import main
    except ImportError as e:
        import sys
        sys.stderr.write(f"error: git-prolly needs the cli extra ({e.name} is missing): "
                         "pip install 'prollytree-py[cli]'\n")
        raise SystemExit(2) from None
    main()
