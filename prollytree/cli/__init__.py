"""The ``git-prolly`` command line: a Git-like shell over :class:`VersionedKvStore`.

``main.py`` holds the click commands, ``output.py`` the printing (escaping, JSON, tables,
colour), ``dataset.py`` the way a command finds and opens its dataset and the operations
built on the store's public methods, ``transfer.py`` import and export. Heavy modules
(rich, dulwich, the store itself) are imported inside the commands that need them, so
that ``git-prolly get`` starts quickly.
"""
